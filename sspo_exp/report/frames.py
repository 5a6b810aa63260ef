"""The two pandas tables every report is built from, whatever the source (offline files or the W&B API).

``runs``: one row per run: ``run_id, name, state, group, job_type, tags, project, n_segments, last_step,
read_error``, the flattened config (``objective.name``, ``gate.name``, ``model.name``, ``dataset.name``,
``trainer.mu``, ``seed``, ...) and the summary (``eval/<benchmark>/pass@1``, ...).

``history``: one row per (run, optimizer step): ``run_id, step`` (= ``train/global_step``, or W&B's ``_step``
for a run that never logged it), ``_step`` and every logged metric (``train/reward``, ``train/entropy``, ...).
Rows logged at the same step are combined (last non-missing value of each metric wins).

Both tables use the current key names: an old run's spellings (``keys.LEGACY``, e.g. ``train/heldout_accuracy`` before
held-out accuracy moved to ``eval/heldout/accuracy``) are read under the current name (:func:`current_names`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from sspo_exp.keys import GLOBAL_STEP as STEP_KEY  # the one owner of key names
from sspo_exp.keys import LEGACY

RUN_COLUMNS = ["run_id", "name", "state", "group", "job_type", "tags", "project", "n_segments", "last_step",
               "read_error"]


@dataclass
class RunData:
    """One run (all its segments merged), source-independent."""

    run_id: str
    name: str = ""
    state: str = ""
    group: str = ""
    job_type: str = ""
    tags: tuple[str, ...] = ()
    project: str = ""
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_segments: int = 1
    read_error: str | None = None


def normalize_history(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Index rows by optimizer step: ``step`` = ``train/global_step`` (rows without it take the previous row's
    step), or ``_step`` if the run never logged it; rows at one step are combined, last value winning."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(rows)
    if df.empty:
        return pd.DataFrame({"step": pd.Series(dtype="int64")})
    if STEP_KEY in df.columns:
        step = pd.to_numeric(df[STEP_KEY], errors="coerce").ffill().bfill()
    elif "_step" in df.columns:
        step = pd.to_numeric(df["_step"], errors="coerce")
    else:
        step = pd.Series(range(len(df)), index=df.index)
    df = df.assign(step=step.fillna(0).astype("int64"))
    out = df.groupby("step", sort=True).last().reset_index()
    return out


def merge_segments(histories: list[pd.DataFrame]) -> pd.DataFrame:
    """Merge the normalized histories of one run's segments, given in time order.

    A later segment (a resumed launch) restarts from some step s: it supersedes every earlier row at step >= s,
    so a killed-and-resumed run reads with no gap and no duplicate step.
    """
    merged = None
    for h in histories:
        if merged is None:
            merged = h
        elif not h.empty:
            merged = pd.concat([merged[merged["step"] < h["step"].min()], h], ignore_index=True)
    return merged if merged is not None else normalize_history([])


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (W&B's own dotted names for nested config)."""
    out: dict = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v and "_type" not in v:  # a W&B media/table summary has "_type"
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


def current_names(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every old spelling of a key (``keys.LEGACY``) read under its current name: a run with both keeps
    the current name's value; of two old spellings the later in ``LEGACY`` wins (``heldout_accuracy/after``, the final
    evaluation, over ``train/heldout_accuracy``, the last logged value)."""
    old = [c for c in reversed(list(LEGACY)) if c in df.columns]
    if not old:
        return df
    df = df.copy()
    for c in old:
        new = LEGACY[c]
        df[new] = df[new].combine_first(df[c]) if new in df.columns else df[c]
    return df.drop(columns=old)


def to_frames(runs: list[RunData]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(runs, history)`` DataFrames (see the module docstring)."""
    rows, config_cols = [], set()
    for r in runs:
        last = int(r.history["step"].max()) if len(r.history) else None
        row = {"run_id": r.run_id, "name": r.name, "state": r.state, "group": r.group, "job_type": r.job_type,
               "tags": ",".join(r.tags), "project": r.project, "n_segments": r.n_segments, "last_step": last,
               "read_error": r.read_error}
        config = flatten(r.config)
        config_cols.update(config)
        row.update(config)
        row.update({k: v for k, v in r.summary.items() if not isinstance(v, dict)})
        rows.append(row)
    runs_df = current_names(pd.DataFrame.from_records(rows, columns=None if rows else RUN_COLUMNS))
    runs_df.attrs["config_columns"] = sorted(config_cols)
    hist = [r.history.assign(run_id=r.run_id) for r in runs if len(r.history)]
    history = current_names(pd.concat(hist, ignore_index=True) if hist else pd.DataFrame(columns=["run_id", "step"]))
    cols = ["run_id", "step"] + [c for c in history.columns if c not in ("run_id", "step")]
    return runs_df, history[cols]
