"""The vocabulary of the paper's tables: specs, cells, row keys and labels, and which row and configuration each
run belongs to (``annotate``). The rules are in ``sspo_exp.report.tables``' docstring."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field

import pandas as pd

from sspo_exp import keys

BASE = "base"
OURS = ("sspo",)
METHOD_ORDER = ["base", "grpo", "gspo", "gmpo", "sapo", "sspo"]
GATE_ORDER = ["expsig", "expatan", "gumbel", "siglog", "atanlog"]
LABELS = {"gsm8k": "GSM8K", "math500": "MATH-500", "aime24": "AIME24", "aime25": "AIME25", "codeact": "CodeAct",
          "arithmetic": "Arithmetic", "delta_avg": "Δ Avg"}
DECIMALS = 1
#: Problems per benchmark, for checking whether a printed Pass@1 can be k/n (codeact: M3ToolEval's 82 tasks, our
#: reading of "the CodeAct test set", docs/codeact.md).
BENCHMARK_SIZES = {"gsm8k": 1319, "math500": 500, "aime24": 30, "aime25": 30, "codeact": 82, "arithmetic": None}
#: What it means when a benchmark's paper cells are not k/n, printed after that column's § note.
SIZE_NOTES = {"codeact": "the paper's CodeAct test set is therefore likely not M3ToolEval's 82 tasks (the paper does "
                         "not name it); our CodeAct cells are solved rates on those 82 under M3ToolEval's own protocol "
                         "(docs/codeact.md) and are not directly comparable with the paper's."}
PAPER_SEEDS = 3  # the paper's seeds per cell (§4.3, Table 2's transfer study)
DEFAULT_SELECT_METRIC = keys.HELDOUT


@dataclass(frozen=True)
class TableSpec:
    """Which benchmarks are columns, whether SSPO rows split by gate, whether Δ Avg is shown, paper file."""

    name: str
    columns: tuple[str, ...]
    gate_rows: bool
    delta_avg: bool
    paper: str | None = None
    paper_caveat: str | None = None  # what the paper itself says about this table, printed beside its numbers


SPECS = {
    "1": TableSpec("Table 1", ("gsm8k", "math500", "aime25"), gate_rows=True, delta_avg=True, paper="table1.csv"),
    "2": TableSpec("Table 2", ("aime24", "aime25", "math500", "codeact"), gate_rows=False, delta_avg=False,
                   paper="table2.csv",
                   paper_caveat="the paper's Limitations call Table 2 \"a calibrated transfer study rather than "
                                "completed training\": its numbers are not all end points of training runs."),
    "mini": TableSpec("CPU mini-grid", ("arithmetic",), gate_rows=True, delta_avg=True),
}


def metric_key(benchmark: str) -> str:
    """Summary key of a run's Pass@1 on ``benchmark`` (``sspo_exp.keys``, the one owner of key names)."""
    return keys.eval_key(benchmark)


def before_key(benchmark: str) -> str:
    """Summary key of a training run's evaluation of its initial policy (before any RL step)."""
    return keys.eval_key(benchmark, stage=keys.BEFORE)


@dataclass
class Cell:
    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    marks: set = field(default_factory=set)  # best / second / baseline / few_seeds / missing
    config: str = ""
    note: str = ""
    cut: float = math.nan  # mean share of the cell's runs' completions cut by the budget before </answer>


@dataclass
class Table:
    spec: TableSpec
    columns: list[str]
    blocks: list[str]
    rows: dict[str, list[str]]  # block -> row keys ("grpo", "sspo/atanlog", ...)
    cells: dict[tuple[str, str, str], Cell]
    selections: pd.DataFrame  # block, row, columns, config, select value, seeds, candidates
    excluded: pd.DataFrame  # runs not counted (state != finished)
    notes: list[str]
    select_metric: str
    expected_seeds: int
    paper: dict[tuple[str, str, str], float] = field(default_factory=dict)
    paper_notes: list[str] = field(default_factory=list)  # caveats about the paper's own numbers
    paper_unrepresentable: set = field(default_factory=set)  # paper cells that are neither k/n nor k/(seeds·n)
    paper_in_ci: dict = field(default_factory=dict)  # cell -> "inside" / "outside" / "n < 2" (paper vs our t-interval)


def natural_key(name: str) -> list:
    """Sort "Qwen3-8B" before "Qwen3-14B": digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(name))]


def row_label(row: str) -> str:
    method, _, gate = row.partition("/")
    label = "Base" if method == BASE else method.upper()
    return f"{label} ({gate})" if gate else label


def _method(r: pd.Series) -> str:
    name = r.get("objective.name")
    if isinstance(name, str) and name:
        return name.lower()
    return str(r.get("job_type") or "unknown").lower()


def _config_key(r: pd.Series, config_cols: list[str]) -> str:
    """The configuration a run is a seed of: ``<label>·<setting hash>`` when the run recorded its setting hash (the
    W&B config's ``identity`` block; runs logged before the group carried the hash key the same way as after), else
    its W&B group, else a hash of its config without the seed."""
    group = r.get("group") if isinstance(r.get("group"), str) else ""
    setting = r.get("identity.setting_hash")
    if isinstance(setting, str) and setting:
        return f"{group.removesuffix('·' + setting)}·{setting}"
    if group:
        return group
    blob = json.dumps({c: r[c] for c in config_cols if c != "seed" and not is_missing(r[c])}, sort_keys=True,
                      default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def row_sort_key(row: str):
    method, _, gate = row.partition("/")
    m = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    g = GATE_ORDER.index(gate) if gate in GATE_ORDER else len(GATE_ORDER)
    return (m, method, g, gate)


def annotate(runs: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Add ``block``, ``row``, ``config`` columns (see the module docstring)."""
    runs = runs.copy()
    config_cols = [c for c in runs.attrs.get("config_columns", []) if c in runs.columns]
    runs["method"] = [_method(r) for _, r in runs.iterrows()]
    gate = runs["gate.name"] if "gate.name" in runs else pd.Series("", index=runs.index)
    runs["row"] = [
        f"{m}/{g}" if spec.gate_rows and m in OURS and isinstance(g, str) and g else m
        for m, g in zip(runs["method"], gate)
    ]
    runs["block"] = runs["model.name"].fillna("?").astype(str) if "model.name" in runs else "?"
    runs["config"] = [_config_key(r, config_cols) for _, r in runs.iterrows()]
    return runs
