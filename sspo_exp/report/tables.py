"""The paper's Tables 1-2 (and the CPU mini-grid in the same shape), recomputed from the ``runs`` table.

Rules (printed under every table):

- A cell is Pass@1 (percent) from the run summary ``eval/<benchmark>/pass@1``: mean ± sample std over seeds (n).
  Only runs in state ``finished`` count; every other run (crashed, killed, running, failed, pruned) is listed.
- Rows: ``method`` = config ``objective.name``; Table 1 and the mini-grid split SSPO by ``gate.name``; blocks =
  ``model.name``. The Base row is the untrained model: runs with ``objective.name == "base"`` (or, with no
  objective in their config, ``job_type == "base"``), e.g. ``sspo-exp eval`` of the base model. A Base cell
  with no such finished run is derived from the model's finished training runs' ``eval_before/<benchmark>/pass@1``
  (their greedy evaluation of the initial policy): one value per seed (runs of one seed share their initial
  weights; their mean if they disagree, which is noted), then mean ± sample std over seeds, (n) = number of seeds
  (e.g. tiny-model cold starts that differ by seed), flagged ``‡`` and explained under the table. An explicit base
  run always wins (a disagreeing ``eval_before`` is noted).
- Best configuration per method: a hyper-parameter configuration is a W&B ``group`` (the setting without the
  seed; a hash of the config without ``seed`` when the run has no group). Per (model, row) and benchmark, among
  configurations with finished runs reporting that benchmark, the one with the highest mean over seeds of the
  selection metric (a summary key, default ``train/heldout_accuracy``, the held-out accuracy) is shown; ties ->
  more seeds -> name. Selecting on a test benchmark itself is allowed but flagged as optimistic; so is a selection
  metric equal to a test benchmark's Pass@1 in every finished run (a held-out set that looks like the test set).
- Δ Avg = mean over the table's benchmarks of (cell − Base cell) of the same model, from the shown means.
- Marks per model and column, on the values as printed (1 decimal): best bold, second underlined, strongest
  baseline (best non-SSPO, non-Base row) italic. ``†`` = fewer seeds than expected, ``—`` = no finished run.
- One evaluation protocol per table: per (model, column), every finished run reporting the column (and, for a
  derived Base cell, the training runs' ``eval_before``) must carry the same evaluation profile
  (``<stage>/<benchmark>/profile.<field>``: backend, dtype, budget, prompt, chat template and its arguments, stop
  rule, checker; ``sspo_exp.evaluation.profile``). A run without one (results from before profiles were recorded)
  has an *unknown* profile, which agrees with nothing. Otherwise the table is refused (:class:`MixedProfiles`, whose
  message names the fields that differ and the rows on each side) unless ``allow_mixed_profiles``
  (``--allow-mixed-profiles``), which lists the differences under the table. The profiles in use are printed
  under every table.
- ``reeval``: the trained rows' cells come from ``reeval/<profile_id>/eval/…`` (``sspo-exp eval`` of each run's
  checkpoint under another profile) instead of training's own ``eval/…``; a run not re-scored shows no value.
- Under each table, per model and column, the share of completions cut by the generation budget before
  ``</answer>`` (``<stage>/<benchmark>/cut_before_answer``), as the range over the shown rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sspo_exp import PAPER_DIR, keys  # PAPER_DIR re-exported: the report CLI reads it from here

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
    blob = json.dumps({c: r[c] for c in config_cols if c != "seed" and not _missing(r[c])}, sort_keys=True,
                      default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def _missing(v) -> bool:
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


def build_table(runs: pd.DataFrame, spec: TableSpec, select_metric: str = DEFAULT_SELECT_METRIC,
                expected_seeds: int | None = None, columns: tuple[str, ...] | None = None,
                paper_dir: Path | None = PAPER_DIR, reeval: str | None = None,
                allow_mixed_profiles: bool = False) -> Table:  # fmt: skip
    """The table (see the module docstring); raises :class:`MixedProfiles` when its rows were scored under
    different evaluation profiles, unless ``allow_mixed_profiles``."""
    columns = list(columns or spec.columns)
    runs = annotate(runs, spec) if len(runs) else runs.assign(block=[], row=[], config=[], method=[])
    notes: list[str] = []
    if reeval:
        runs = use_reeval(runs, reeval, columns)
        notes.append(f"trained rows: re-scored results {keys.reeval_prefix(reeval)}eval/… (`sspo-exp eval` of each "
                     "run's checkpoint); Base rows: their own evaluation.")
    if select_metric in {metric_key(c) for c in columns}:
        notes.append(f"selection metric {select_metric} is a reported test metric: the table is optimistic.")
    for c in columns:
        if metric_key(c) not in runs:
            runs[metric_key(c)] = np.nan
    if select_metric not in runs:
        runs[select_metric] = np.nan
        notes.append(f"no run has the selection metric {select_metric}; configurations tie and are chosen by "
                     "seed count, then name.")
    done = runs[runs["state"] == "finished"]
    derived = _derived_base(done, columns)
    excluded = runs[runs["state"] != "finished"][
        ["run_id", "name", "state", "block", "row", "config", "last_step", "read_error"]].reset_index(drop=True)
    blocks = sorted(runs["block"].unique(), key=natural_key)
    rows = {b: sorted(set(runs.loc[runs["block"] == b, "row"]) | ({BASE} if any(k[0] == b for k in derived) else set()),
                      key=row_sort_key) for b in blocks}
    cells: dict = {}
    selections = []
    for b in blocks:
        for row in rows[b]:
            mine = done[(done["block"] == b) & (done["row"] == row)]
            for col in columns:
                cells[(b, row, col)], sel = _cell(mine, metric_key(col), select_metric)
                if row == BASE and (b, col) in derived and _use_derived(cells, derived[(b, col)], b, col, notes):
                    continue
                if sel:
                    selections.append({"block": b, "row": row, "column": col, **sel})
                else:
                    n_bad = int(((excluded["block"] == b) & (excluded["row"] == row)).sum())
                    cells[(b, row, col)].note = (f"no finished run ({n_bad} not finished)" if n_bad
                                                 else "no run")
    if any("derived" in c.marks for c in cells.values()):
        notes.append("‡ Base derived from the training runs' eval_before/<benchmark>/pass@1 (their greedy "
                     "evaluation of the initial policy); (n) = number of seeds.")
    counts = [c.n for (_, row, _), c in cells.items() if c.n and row != BASE]
    expected = expected_seeds or (max(counts) if counts else 0)
    for (_, row, _), c in cells.items():
        if not c.n:
            c.marks.add("missing")
        elif c.n < expected and row != BASE:  # the Base row is one deterministic (greedy) evaluation
            c.marks.add("few_seeds")
    if spec.delta_avg:
        columns = columns + ["delta_avg"]
        for b in blocks:
            for row in rows[b]:
                cells[(b, row, "delta_avg")] = _delta_avg(cells, b, row, columns[:-1])
    for b in blocks:
        for col in columns:
            _mark(cells, b, [r for r in rows[b] if r != BASE], col)
    same = _selection_equals_test(done, select_metric, [c for c in columns if c != "delta_avg"])
    if same and any(s["candidates"] > 1 for s in selections) and select_metric not in map(metric_key, same):
        notes.append(f"{select_metric} equals {', '.join(map(metric_key, same))} (as a fraction or in percent) in "
                     "every finished run reporting both: the held-out set looks like the test set (or a copy of "
                     "it), so choosing among configurations on it may make the table optimistic.")
    mixed = profile_mismatches(done, cells, blocks, rows, [c for c in columns if c != "delta_avg"])
    if mixed and not allow_mixed_profiles:
        raise MixedProfiles(mixed_profiles_message(spec.name, mixed))
    if mixed:
        notes += [f"rows scored under different evaluation profiles (--allow-mixed-profiles): {m}" for m in mixed]
    notes += profile_notes(done, [c for c in columns if c != "delta_avg"],
                           derived=any("derived" in c.marks for c in cells.values()))
    notes += cut_notes(done, cells, blocks, rows, [c for c in columns if c != "delta_avg"])
    notes += code_version_notes(done)
    table = Table(spec, columns, blocks, rows, cells, _selection_frame(selections), excluded, notes,
                  select_metric, expected)
    if spec.paper and paper_dir is not None:
        table.paper = paper_values(Path(paper_dir) / spec.paper, table)
        check_paper_cells(table)
    return table


class MixedProfiles(ValueError):
    """The rows of one table were scored under different evaluation profiles (or some under an unknown one)."""


UNKNOWN = "unknown"  #: the profile of a result from before profiles were recorded


def profile_of(run: pd.Series, col: str, stage: str = keys.AFTER) -> tuple | None:
    """The evaluation profile a run's ``<stage>/<col>/…`` result was scored under, as a tuple over
    ``keys.PROFILE_FIELDS``; None when the run recorded none."""
    values = [run.get(keys.eval_key(col, keys.profile_stat(f), stage)) for f in keys.PROFILE_FIELDS]
    if all(_missing(v) for v in values):
        return None
    # a column with gaps holds integers as floats (512.0): compare and print them as integers
    return tuple(None if _missing(v) else int(v) if isinstance(v, float) and v.is_integer() else v for v in values)


def _cell_profiles(done: pd.DataFrame, cells: dict, block: str, rows: list[str], col: str) -> dict[str, list]:
    """``{row label: [profile of each run behind the (block, row, col) cell]}``: every finished run of the row
    reporting the column; a derived Base cell's training runs' ``eval_before``."""
    mine = done[done["block"] == block] if len(done) else done
    out: dict[str, list] = {}
    for row in rows:
        cell = cells.get((block, row, col))
        if cell is None or not cell.n:
            continue
        if "derived" in cell.marks:
            train = mine[(mine["method"] != BASE) & mine[before_key(col)].notna()]
            out[f"{row_label(row)} (eval_before)"] = [profile_of(r, col, keys.BEFORE) for _, r in train.iterrows()]
        else:
            have = mine[(mine["row"] == row) & mine[metric_key(col)].notna()]
            out[row_label(row)] = [profile_of(r, col) for _, r in have.iterrows()]
    return out


def _shown(value) -> str:
    return UNKNOWN if value is None else str(value)


def profile_mismatches(done: pd.DataFrame, cells: dict, blocks: list[str], rows: dict[str, list[str]],
                       columns: list[str]) -> list[str]:  # fmt: skip
    """One line per (model, column) whose rows do not share one known evaluation profile, naming the fields that
    differ, each value with the rows that have it, and the rows with no recorded profile."""
    out = []
    for b in blocks:
        for col in columns:
            by_row = _cell_profiles(done, cells, b, rows[b], col)
            distinct = {p for ps in by_row.values() for p in ps}
            if len(distinct) <= 1 and None not in distinct:
                continue
            parts = []
            for i, f in enumerate(keys.PROFILE_FIELDS):
                who: dict[str, list[str]] = {}
                for label, ps in by_row.items():
                    for v in dict.fromkeys(_shown(p[i]) for p in ps if p is not None):
                        who.setdefault(v, []).append(label)
                if len(who) > 1:
                    parts.append(f"{f}: " + "; ".join(f"{v} ({', '.join(labels)})" for v, labels in who.items()))
            unknown = [label for label, ps in by_row.items() if None in ps]
            if unknown:
                parts.append(f"no profile recorded ({', '.join(unknown)})")
            out.append(f"{b} / {LABELS.get(col, col)}: " + " | ".join(parts))
    return out


def mixed_profiles_message(table_name: str, mismatches: list[str]) -> str:
    """Why a table is refused (the report CLI prints it and exits 2)."""
    return (f"{table_name} would put rows scored under different evaluation profiles side by side:\n"
            + "\n".join(f"  {m}" for m in mismatches)
            + "\nScore every row under one profile (docs/evaluation.md, 'One evaluation profile per table': e.g. "
            "`sspo-exp eval eval.model=runs/<id>` per run and `sspo-exp report --reeval <profile_id>`), or pass "
            "--allow-mixed-profiles to build the table anyway (the differences are then listed under it).")


def profile_notes(done: pd.DataFrame, columns: list[str], derived: bool) -> list[str]:
    """One line per evaluation profile the table's finished runs were scored under (the caption's protocol); the
    training runs' ``eval_before`` profiles too when a Base cell is ``derived`` from them."""
    seen: dict[str, tuple] = {}
    for col in columns:
        for stage in (keys.AFTER, keys.BEFORE) if derived else (keys.AFTER,):
            key = keys.eval_key(col, keys.profile_stat("id"), stage)
            if key not in done:
                continue
            for _, r in done[done[key].notna()].iterrows():
                seen.setdefault(str(r[key]), profile_of(r, col, stage))
    return [f"evaluation profile {pid}: " + ", ".join(f"{f}={_shown(v)}" for f, v in zip(keys.PROFILE_FIELDS, p))
            for pid, p in sorted(seen.items())]


def cut_notes(done: pd.DataFrame, cells: dict, blocks: list[str], rows: dict[str, list[str]],
              columns: list[str]) -> list[str]:  # fmt: skip
    """Per model, the share of completions cut by the budget before ``</answer>``: per column, the range over the
    shown rows (each row: the mean over the runs behind its cell; a derived Base: over the eval_before results)."""
    out = []
    for b in blocks:
        parts = []
        for col in columns:
            shares = []
            for row in rows[b]:
                cell = cells.get((b, row, col))
                if cell is None or not cell.n:
                    continue
                cut = cell.cut
                if "derived" in cell.marks:
                    key = keys.eval_key(col, keys.CUT, keys.BEFORE)
                    train = done[(done["block"] == b) & (done["method"] != BASE)]
                    cut = pd.to_numeric(train[key], errors="coerce").mean() if key in train else math.nan
                if np.isfinite(cut):
                    shares.append(100 * cut)
            if shares:
                lo, hi = min(shares), max(shares)
                parts.append(f"{LABELS.get(col, col)} {lo:.1f}%" + (f"–{hi:.1f}%" if hi - lo >= 0.05 else ""))
        if parts:
            out.append(f"{b}: completions cut at the generation budget before </answer> (range over rows): "
                       + ", ".join(parts))
    return out


def use_reeval(runs: pd.DataFrame, profile_id: str, columns: list[str]) -> pd.DataFrame:
    """The trained runs' ``eval/<column>/<stat>`` replaced by their ``reeval/<profile_id>/eval/<column>/<stat>``
    (missing when the run was not re-scored); Base runs keep their own."""
    runs = runs.copy()
    trained = runs["method"] != BASE
    prefix = keys.reeval_prefix(profile_id)
    for col in columns:
        stats = [*keys.STATS, *map(keys.profile_stat, (*keys.PROFILE_FIELDS, "id"))]
        for stat in stats:
            key = keys.eval_key(col, stat)
            source = runs[prefix + key] if prefix + key in runs else pd.Series(np.nan, index=runs.index)
            runs[key] = source.where(trained, runs[key] if key in runs else np.nan)
    return runs


def code_version_notes(done: pd.DataFrame) -> list[str]:
    """A note when the finished runs come from more than one code version (W&B config ``code.version`` and
    ``code.commit``, recorded by training): a table may then mix numbers made by different code."""
    if "code.version" not in done and "code.commit" not in done:
        return []
    version = done.get("code.version", pd.Series("?", index=done.index)).fillna("?").astype(str)
    commit = done.get("code.commit", pd.Series("?", index=done.index)).fillna("?").astype(str).str[:10]
    made_by = (version + " @ " + commit).value_counts()
    if len(made_by) <= 1:
        return []
    shown = "; ".join(f"{n} run(s) by sspo-exp {who}" for who, n in made_by.items())
    return [f"finished runs come from {len(made_by)} code versions ({shown}): rerun the older ones, or read the "
            "cells knowing they mix code versions."]


def representable(value: float, n: int, decimals: int = DECIMALS) -> bool:
    """Can the printed percentage ``value`` (rounded to ``decimals``) be ``100·k/n`` for an integer 0 ≤ k ≤ n?

    True when some k/n lies within half a unit of the last printed digit (boundaries included: either rounding
    of a tie counts).
    """
    half = 0.5 * 10.0**-decimals
    lo = math.ceil((value - half) * n / 100 - 1e-9)
    hi = math.floor((value + half) * n / 100 + 1e-9)
    return max(lo, 0) <= min(hi, n)


def check_paper_cells(table: Table, seeds: int = PAPER_SEEDS) -> None:
    """Note, beside the paper's numbers, which of its cells can be neither a Pass@1 on the benchmark's n problems
    (k/n) nor a mean over ``seeds`` seeds of such values (k/(seeds·n)), at their printed precision; and the
    paper's own caveat about the table (``TableSpec.paper_caveat``). Computed from the cells, nothing hard-coded."""
    if table.spec.paper_caveat:
        table.paper_notes.append(f"{table.spec.name}: {table.spec.paper_caveat}")
    for col in table.columns:
        n = BENCHMARK_SIZES.get(col)
        cells = {k: v for k, v in table.paper.items() if k[2] == col}
        if not n or not cells:
            continue
        bad = {k: v for k, v in cells.items() if not representable(v, n) and not representable(v, seeds * n)}
        table.paper_unrepresentable |= set(bad)
        if bad:
            shown = ", ".join(f"{b} / {row_label(r)} {v:.{DECIMALS}f}" for (b, r, _), v in sorted(bad.items()))
            table.paper_notes.append(
                f"§ {len(bad)} of the paper's {len(cells)} {LABELS.get(col, col)} cells can be neither a Pass@1 on "
                f"{n} problems (k/{n}) nor a mean over {seeds} seeds (k/{seeds * n}) at their printed precision: "
                f"{shown}.")
            if col in SIZE_NOTES:
                table.paper_notes.append(f"{LABELS.get(col, col)}: {SIZE_NOTES[col]}")


def rank_configs(runs: pd.DataFrame, select_metric: str) -> pd.DataFrame:
    """Configurations of ``runs`` best first: highest mean of ``select_metric`` over seeds (missing last), then
    more seeds, then name. Columns: config, sel, n."""
    sel = runs[select_metric] if select_metric in runs else pd.Series(np.nan, index=runs.index)
    per_cfg = (runs.assign(_sel=pd.to_numeric(sel, errors="coerce")).groupby("config")
               .agg(sel=("_sel", "mean"), n=("_sel", "size")).reset_index())
    per_cfg["has_sel"] = per_cfg["sel"].notna()
    order = per_cfg.sort_values(["has_sel", "sel", "n", "config"], ascending=[False, False, False, True])
    return order.drop(columns="has_sel").reset_index(drop=True)


def _cell(runs: pd.DataFrame, key: str, select_metric: str) -> tuple[Cell, dict | None]:
    have = runs[runs[key].notna()]
    if have.empty:
        return Cell(), None
    per_cfg = rank_configs(have, select_metric)
    best = per_cfg.iloc[0]
    mine = have[have["config"] == best["config"]]
    vals = mine[key].astype(float)
    cut_key = key.rsplit("/", 1)[0] + "/" + keys.CUT
    cut = pd.to_numeric(mine[cut_key], errors="coerce").mean() if cut_key in mine else math.nan
    cell = Cell(mean=float(vals.mean()), std=float(vals.std(ddof=1)) if len(vals) > 1 else math.nan,
                n=int(len(vals)), config=str(best["config"]), cut=float(cut))
    return cell, {"config": best["config"], "select_value": best["sel"], "seeds": int(best["n"]),
                  "candidates": len(per_cfg)}


def _selection_equals_test(done: pd.DataFrame, select_metric: str, columns: list[str]) -> list[str]:
    """Benchmarks whose Pass@1 equals the selection metric (itself, or x100 for a fraction) in every finished run
    reporting both: a sign that the held-out set is the test set (or a copy of it)."""
    sel = pd.to_numeric(done[select_metric], errors="coerce")
    out = []
    for col in columns:
        val = pd.to_numeric(done[metric_key(col)], errors="coerce")
        both = sel.notna() & val.notna()
        a, b = sel[both].to_numpy(float), val[both].to_numpy(float)
        if both.any() and (np.isclose(a * 100, b, atol=1e-6) | np.isclose(a, b, atol=1e-6)).all():
            out.append(col)
    return out


def _derived_base(done: pd.DataFrame, columns: list[str]) -> dict[tuple[str, str], pd.DataFrame]:
    """``{(block, column): the eval_before values of the block's finished training runs}`` where any exist, as
    a frame with columns ``seed`` (the run id when the config has no seed) and ``value``."""
    out = {}
    train = done[done["method"] != BASE] if len(done) else done
    for col in columns:
        if before_key(col) not in train:
            continue
        seed = train["seed"] if "seed" in train else pd.Series(np.nan, index=train.index)
        vals = pd.DataFrame({"block": train["block"],
                             "seed": seed.astype(object).where(seed.notna(), "run " + train["run_id"].astype(str)),
                             "value": pd.to_numeric(train[before_key(col)], errors="coerce")}).dropna()
        for b, v in vals.groupby("block"):
            out[(b, col)] = v[["seed", "value"]].astype({"value": float})
    return out


def _use_derived(cells: dict, vals: pd.DataFrame, block: str, col: str, notes: list[str]) -> bool:
    """Fill an empty Base cell from ``vals`` (seed, value; see the module docstring; True if filled); note a
    disagreeing explicit one."""
    per_seed = vals.groupby("seed", sort=False)["value"]
    seed_vals = per_seed.mean()  # one value per seed: its runs start from the same weights
    distinct = sorted(set(np.round(vals["value"].to_numpy(), 6)))
    shown = ", ".join(f"{v:.{DECIMALS}f}" for v in distinct)
    label = LABELS.get(col, col)
    cell = cells[(block, BASE, col)]
    if cell.n:  # an explicit base run wins
        if any(abs(v - cell.mean) > 1e-6 for v in distinct):
            notes.append(f"{block} / {label}: Base from the explicit base run(s) ({cell.mean:.{DECIMALS}f}); the "
                         f"training runs' eval_before gave {shown}.")
        return False
    n = len(seed_vals)
    cells[(block, BASE, col)] = Cell(mean=float(seed_vals.mean()), std=float(seed_vals.std(ddof=1)) if n > 1
                                     else math.nan, n=n, marks={"derived"}, config="eval_before",
                                     note=f"eval_before of {len(vals)} training runs, {n} seeds")
    if (per_seed.max() - per_seed.min() > 1e-6).any():
        notes.append(f"{block} / {label}: finished training runs of the same seed disagree on eval_before "
                     f"({shown}): each seed counts once, with the mean of its runs.")
    if len(distinct) > 1:
        notes.append(f"{block} / {label}: the {len(vals)} finished training runs' eval_before differ ({shown}; e.g. "
                     f"different cold-start seeds): Base = mean ± std over the {n} seeds, one value per seed.")
    return True


def _delta_avg(cells: dict, block: str, row: str, columns: list[str]) -> Cell:
    if row == BASE:
        return Cell(note="base")
    diffs = [cells[(block, row, c)].mean - cells.get((block, BASE, c), Cell()).mean for c in columns]
    if not all(np.isfinite(diffs)):
        return Cell(marks={"missing"}, note="needs every column and the Base row")
    return Cell(mean=float(np.mean(diffs)), n=min(cells[(block, row, c)].n for c in columns))


def _mark(cells: dict, block: str, rows: list[str], col: str) -> None:
    shown = {r: round(cells[(block, r, col)].mean, DECIMALS) for r in rows
             if np.isfinite(cells[(block, r, col)].mean)}
    ranked = sorted(set(shown.values()), reverse=True)
    baselines = [v for r, v in shown.items() if r.partition("/")[0] not in OURS]
    for r, v in shown.items():
        if v == ranked[0]:
            cells[(block, r, col)].marks.add("best")
        elif len(ranked) > 1 and v == ranked[1]:
            cells[(block, r, col)].marks.add("second")
        if baselines and r.partition("/")[0] not in OURS and v == max(baselines):
            cells[(block, r, col)].marks.add("baseline")


def _selection_frame(selections: list[dict]) -> pd.DataFrame:
    cols = ["block", "row", "columns", "config", "select_value", "seeds", "candidates"]
    if not selections:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(selections)
    keys = ["block", "row", "config", "select_value", "seeds", "candidates"]
    out = df.groupby(keys, sort=False, dropna=False)["column"].agg(",".join).reset_index(name="columns")
    return out[cols]


def _norm_model(name: str) -> str:
    return str(name).rsplit("/", 1)[-1].strip().lower()


def paper_values(path: Path, table: Table) -> dict[tuple[str, str, str], float]:
    """The paper's cells keyed like ours (models matched by name, case-insensitively, ignoring an org prefix)."""
    if not path.exists():
        table.notes.append(f"paper numbers not found at {path}")
        return {}
    paper = pd.read_csv(path)
    ours = {_norm_model(b): b for b in table.blocks}
    out = {}
    for _, p in paper.iterrows():
        block = ours.get(_norm_model(p["model"]))
        if block is None:
            continue
        gate = p.get("gate")
        row = f"{p['method']}/{gate}" if table.spec.gate_rows and isinstance(gate, str) and gate else p["method"]
        for col in table.columns:
            if col in p and pd.notna(p[col]):
                out[(block, row, col)] = float(p[col])
    unmatched = sorted(set(table.blocks) - {b for b, _, _ in out})
    if unmatched:
        table.notes.append(f"no paper numbers for model(s) {', '.join(unmatched)} in {path.name}")
    return out
