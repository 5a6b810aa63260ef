"""Notes printed under a table that are not about evaluation profiles: completions cut by the budget, mixed code
versions, a held-out set that looks like the test set; and the re-scored (``--reeval``) results swapped in."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sspo_exp import keys
from sspo_exp.report.table_model import BASE, LABELS, metric_key


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


def selection_equals_test(done: pd.DataFrame, select_metric: str, columns: list[str]) -> list[str]:
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
