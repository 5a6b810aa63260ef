"""Where runs come from: offline W&B directories or a W&B project through the public API; same tables out."""

from __future__ import annotations

import os
from collections import defaultdict

import pandas as pd

from sspo_exp.report.frames import RunData, merge_segments, normalize_history, to_frames
from sspo_exp.report.wandb_offline import RUNNING_IDLE_SECONDS, read_offline
from sspo_exp.keys import is_pruned


def offline_runs(roots: list[str | os.PathLike], idle_seconds: float = RUNNING_IDLE_SECONDS,
                 workers: int | None = None) -> list[RunData]:
    """Read every offline-run directory under ``roots``; directories of one run id (a resumed run writes one per
    launch) are merged in time order: later config/summary values win, later segments replace re-logged steps.
    The run's state is its last segment's, except that "finished" must come from its first segment or one that
    logged training steps: a summary-only segment (``sspo-exp eval eval.model=runs/<id>`` resumes the run id and
    exits 0) appended to a crashed or killed training run leaves it crashed/killed.

    Files are read by ``workers`` processes (None: one per CPU, see ``wandb_offline.default_workers``)."""
    by_id: dict[str, list] = defaultdict(list)
    for seg in read_offline(roots, idle_seconds, workers, frame=True):  # in time order, histories normalized
        by_id[seg.run_id].append(seg)
    runs = []
    for run_id, segs in by_id.items():
        last = segs[-1]
        config, summary = {}, {}
        for s in segs:
            config.update(s.config)
            summary.update(s.summary)
        errors = [f"{s.path}: {s.read_error}" for s in segs if s.read_error]
        runs.append(RunData(
            run_id=run_id,
            name=next((s.name for s in reversed(segs) if s.name), ""),
            state=_pruned_or(_state(segs), summary),
            group=next((s.group for s in reversed(segs) if s.group), ""),
            job_type=next((s.job_type for s in reversed(segs) if s.job_type), ""),
            tags=last.tags,
            project=last.project,
            config=config,
            summary=summary,
            history=merge_segments([s.history for s in segs]),
            n_segments=len(segs),
            read_error="; ".join(errors) or None,
        ))
    return runs


def _state(segs: list) -> str:
    """See :func:`offline_runs`."""
    if segs[-1].state != "finished":
        return segs[-1].state
    training = [s for i, s in enumerate(segs) if i == 0 or len(s.history)]
    return training[-1].state


def _pruned_or(state: str, summary: dict) -> str:
    """``pruned`` for a run an Optuna pruner stopped (its W&B run closes normally), else ``state``."""
    return "pruned" if state != "running" and is_pruned(summary) else state


def api_runs(project: str, filters: dict | None = None, api=None) -> list[RunData]:
    """Runs of ``entity/project`` matching ``filters`` (W&B's MongoDB-style run filters) via ``wandb.Api``.

    The server already merges a resumed run's launches; history is read unsampled with ``scan_history``.
    ``api`` may be any object with the ``wandb.Api`` interface (tests pass a fake).
    """
    if api is None:
        import wandb

        api = wandb.Api()
    out = []
    for run in api.runs(project, filters=filters or {}):
        summary = dict(run.summary_metrics)
        out.append(RunData(
            run_id=run.id,
            name=run.name or "",
            state=_pruned_or(run.state, summary),
            group=run.group or "",
            job_type=run.job_type or "",
            tags=tuple(run.tags or ()),
            project=project,
            config={k: v for k, v in dict(run.config).items() if k != "_wandb"},
            summary={k: v for k, v in summary.items() if not k.startswith("_wandb")},
            history=normalize_history(list(run.scan_history(page_size=10_000))),
        ))
    return out


def load(offline: list[str] | None = None, project: str | None = None, filters: dict | None = None,
         api=None, idle_seconds: float = RUNNING_IDLE_SECONDS,
         workers: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(runs, history)`` from offline directories or from a W&B project (exactly one of the two)."""
    if bool(offline) == bool(project):
        raise ValueError("give exactly one source: offline=[DIR, ...] or project='entity/project'")
    runs = offline_runs(offline, idle_seconds, workers) if offline else api_runs(project, filters, api)
    return to_frames(runs)
