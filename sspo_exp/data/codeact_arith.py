"""``codeact_arith``: the CPU-sized CodeAct task — 3-digit products (``482*739``) to solve in the sandbox.

Too long for the tiny char-level model to multiply in its head, one line of Python to compute: running code helps.
Rows are the generated arithmetic task's (``sspo_exp.data.arithmetic``, ``operations: ["*"]``, disjoint splits)
with the CodeAct columns ``checker: math`` (exact integer comparison) and ``setup: ""``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sspo_exp.data import register_loader
from sspo_exp.data.arithmetic import ArithmeticConfig, generate

SOURCE = "codeact_arith"


def rows(cfg: Mapping[str, Any], split: str) -> list[dict[str, str]]:
    knobs = ArithmeticConfig.from_config({"digits": 3, "operations": ["*"], **dict(cfg)})
    out = generate(knobs, split, seed=int(cfg.get("seed", 0) or 0))
    return [{**r, "id": r["id"].replace("arithmetic", SOURCE, 1), "source": SOURCE, "checker": "math", "setup": ""}
            for r in out]


@register_loader(SOURCE)
def load(cfg: Mapping[str, Any], split: str) -> list[dict[str, str]]:
    return rows(cfg, split)
