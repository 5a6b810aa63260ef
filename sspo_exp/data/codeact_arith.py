"""``codeact_arith``: the CPU-sized CodeAct task — 2-digit products (``47*68``) to solve in the sandbox.

Too long for the tiny char-level model to multiply in its head, one line of Python to compute: running code helps.
Operands are drawn from ``min_operand .. max_operand`` (default 32..99, so every product has exactly 4 digits:
32*32 = 1024, 99*99 = 9801). A fixed answer length makes the one skill the cold start must teach besides the format,
copying the observation's number into ``<solution>``, a copy at a fixed distance, which a tiny transformer learns
reliably (a variable-length copy needs an induction mechanism it did not learn in 1,000 cold-start steps; see
docs/codeact.md). The test split is ``test_size`` distinct operand pairs; the train split draws ``train_size``
problems from the other pairs, so the splits are disjoint by construction. Rows carry the CodeAct columns
``checker: math`` (exact integer comparison) and ``setup: ""``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sspo_exp.data import register_loader

SOURCE = "codeact_arith"
SPLITS = ("train", "test")


def _knob(cfg: Mapping[str, Any], key: str, default: int, low: int = 0) -> int:
    value = cfg.get(key, default)
    value = default if value is None else value
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"dataset.{key}={value!r}: must be an integer >= {low}")
    return value


def rows(cfg: Mapping[str, Any], split: str) -> list[dict[str, str]]:
    if split not in SPLITS:
        raise ValueError(f"codeact_arith split must be one of {list(SPLITS)}, got {split!r}")
    low, high = _knob(cfg, "min_operand", 32), _knob(cfg, "max_operand", 99)
    train_size, test_size = _knob(cfg, "train_size", 20000, 1), _knob(cfg, "test_size", 200, 1)
    seed = _knob(cfg, "seed", 0)
    pairs = [(a, b) for a in range(low, high + 1) for b in range(low, high + 1)]
    if test_size >= len(pairs):
        raise ValueError(f"dataset.test_size={test_size}: must leave training problems; operands "
                         f"{low}..{high} give {len(pairs)} distinct products")  # fmt: skip
    random.Random(f"{SOURCE}|{seed}|{low}|{high}").shuffle(pairs)
    if split == "test":
        chosen = pairs[:test_size]
    else:
        rng, rest = random.Random(f"{SOURCE}|{seed}|train"), pairs[test_size:]
        chosen = [rng.choice(rest) for _ in range(train_size)]
    return [{"id": f"{SOURCE}-{split}-{i}", "question": f"{a}*{b}", "answer": str(a * b), "source": SOURCE,
             "checker": "math", "setup": ""} for i, (a, b) in enumerate(chosen)]  # fmt: skip


@register_loader(SOURCE)
def load(cfg: Mapping[str, Any], split: str) -> list[dict[str, str]]:
    return rows(cfg, split)
