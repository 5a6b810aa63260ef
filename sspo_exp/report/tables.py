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
  selection metric (a summary key, default ``eval/heldout/accuracy``, the held-out accuracy) is shown; ties ->
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

import math
from pathlib import Path

import numpy as np
import pandas as pd

from sspo_exp import PAPER_DIR, keys  # PAPER_DIR re-exported: the report CLI reads it from here
from sspo_exp.report.base_row import derived_base, use_derived
from sspo_exp.report.paper import check_paper_cells, paper_intervals, paper_values, representable  # noqa: F401
from sspo_exp.report.profiles import (  # noqa: F401  (re-exported: the report's table API in one place)
    UNKNOWN, MixedProfiles, mixed_profiles_message, profile_mismatches, profile_notes, profile_of)
from sspo_exp.report.table_model import (  # noqa: F401
    BASE, BENCHMARK_SIZES, DECIMALS, DEFAULT_SELECT_METRIC, GATE_ORDER, LABELS, METHOD_ORDER, OURS, PAPER_SEEDS, SPECS,
    Cell, Table, TableSpec, _config_key, annotate, before_key, metric_key, natural_key, row_label, row_sort_key)
from sspo_exp.report.table_notes import (  # noqa: F401
    code_version_notes, cut_notes, selection_equals_test, use_reeval)


def build_table(runs: pd.DataFrame, spec: TableSpec, select_metric: str = DEFAULT_SELECT_METRIC,
                expected_seeds: int | None = None, columns: tuple[str, ...] | None = None,
                paper_dir: Path | None = PAPER_DIR, reeval: str | None = None,
                allow_mixed_profiles: bool = False) -> Table:  # fmt: skip
    """The table (see the module docstring); raises :class:`MixedProfiles` when its rows were scored under
    different evaluation profiles, unless ``allow_mixed_profiles``."""
    columns = list(columns or spec.columns)
    select_metric = keys.spelling_in(runs.columns, select_metric)  # a stored frame with old names (the CPU study's)
    runs, notes = _prepare(runs, spec, columns, select_metric, reeval)
    done = runs[runs["state"] == "finished"]
    derived = derived_base(done, columns)
    excluded = runs[runs["state"] != "finished"][
        ["run_id", "name", "state", "block", "row", "config", "last_step", "read_error"]].reset_index(drop=True)
    blocks = sorted(runs["block"].unique(), key=natural_key)
    rows = {b: sorted(set(runs.loc[runs["block"] == b, "row"]) | ({BASE} if any(k[0] == b for k in derived) else set()),
                      key=row_sort_key) for b in blocks}
    cells, selections = _fill_cells(done, blocks, rows, columns, select_metric, derived, excluded, notes)
    expected = _mark_seeds(cells, expected_seeds, notes)
    if spec.delta_avg:
        columns = columns + ["delta_avg"]
        for b in blocks:
            for row in rows[b]:
                cells[(b, row, "delta_avg")] = _delta_avg(cells, b, row, columns[:-1])
    for b in blocks:
        for col in columns:
            _mark(cells, b, [r for r in rows[b] if r != BASE], col)
    benchmarks = [c for c in columns if c != "delta_avg"]
    notes += _selection_notes(done, select_metric, benchmarks, selections)
    mixed = profile_mismatches(done, cells, blocks, rows, benchmarks)
    if mixed and not allow_mixed_profiles:
        raise MixedProfiles(mixed_profiles_message(spec.name, mixed))
    notes += [f"rows scored under different evaluation profiles (--allow-mixed-profiles): {m}" for m in mixed]
    notes += profile_notes(done, benchmarks, derived=any("derived" in c.marks for c in cells.values()))
    notes += cut_notes(done, cells, blocks, rows, benchmarks)
    notes += code_version_notes(done)
    table = Table(spec, columns, blocks, rows, cells, _selection_frame(selections), excluded, notes,
                  select_metric, expected)
    if spec.paper and paper_dir is not None:
        table.paper = paper_values(Path(paper_dir) / spec.paper, table)
        check_paper_cells(table)
        paper_intervals(table)
    return table


def _prepare(runs: pd.DataFrame, spec: TableSpec, columns: list[str], select_metric: str,
             reeval: str | None) -> tuple[pd.DataFrame, list[str]]:  # fmt: skip
    """The runs annotated with block/row/config, re-scored results swapped in, missing columns added; the notes
    these steps call for."""
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
    return runs, notes


def _fill_cells(done: pd.DataFrame, blocks: list[str], rows: dict[str, list[str]], columns: list[str],
                select_metric: str, derived: dict, excluded: pd.DataFrame,
                notes: list[str]) -> tuple[dict, list[dict]]:  # fmt: skip
    """Every (block, row, column) cell from its best configuration's finished runs (a derived Base where no base
    run exists), and the configurations chosen."""
    cells: dict = {}
    selections = []
    for b in blocks:
        for row in rows[b]:
            mine = done[(done["block"] == b) & (done["row"] == row)]
            for col in columns:
                cells[(b, row, col)], sel = _cell(mine, metric_key(col), select_metric)
                if row == BASE and (b, col) in derived and use_derived(cells, derived[(b, col)], b, col, notes):
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
    return cells, selections


def _mark_seeds(cells: dict, expected_seeds: int | None, notes: list[str]) -> int:
    """Mark missing cells and cells with fewer seeds than expected (default: the most seen); the expected count."""
    counts = [c.n for (_, row, _), c in cells.items() if c.n and row != BASE]
    expected = expected_seeds or (max(counts) if counts else 0)
    for (_, row, _), c in cells.items():
        if not c.n:
            c.marks.add("missing")
        elif c.n < expected and row != BASE:  # the Base row is one deterministic (greedy) evaluation
            c.marks.add("few_seeds")
    return expected


def _selection_notes(done: pd.DataFrame, select_metric: str, benchmarks: list[str], selections: list[dict]) -> list[str]:
    same = selection_equals_test(done, select_metric, benchmarks)
    if same and any(s["candidates"] > 1 for s in selections) and select_metric not in map(metric_key, same):
        return [f"{select_metric} equals {', '.join(map(metric_key, same))} (as a fraction or in percent) in "
                "every finished run reporting both: the held-out set looks like the test set (or a copy of "
                "it), so choosing among configurations on it may make the table optimistic."]
    return []


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
