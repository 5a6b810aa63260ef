"""A resumed run's W&B history as users see it: every optimizer step once, in increasing order.

A run that is killed and relaunched resumes from its last checkpoint ``C``; W&B may already hold history up to
some step ``H`` (what the killed process got written: ``H < C`` when the tail of its buffer was lost, ``H > C``
when it logged steps after its last checkpoint). :func:`resume` then

- logs the before-RL held-out row (``train/global_step`` 0) only if W&B does not hold step 0 yet;
- re-logs, from the checkpoint's ``trainer_state.json`` (the exact values TRL logged), only the steps in
  ``(H, C]``;
- keeps the trainer's ``WandbCallback`` quiet for the steps ``C+1 .. H`` it re-runs, which W&B already holds;
- offline: continues W&B's own row counter ``_step`` after the previous segments' (a new offline segment would
  restart it at 0), so that ``wandb sync`` of the segments in start order uploads one increasing history.

Where ``H`` comes from (:func:`held_steps`): online, the resumed run's summary (``train/global_step`` and
``_step``: the server's last values); offline, the run's previous ``offline-run-*``/``run-*`` directories, read
with the report's reader. A step that W&B holds keeps the values it was first logged with: under a bit-exact
resume (CPU, deterministic kernels) they equal the re-run's; otherwise the re-run's values of steps ``C+1..H``
are not logged, and the report (which merges segments the same way) and the dashboard agree.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sspo_exp.keys import GLOBAL_STEP as STEP_KEY  # the one owner of key names
from sspo_exp.keys import HELDOUT
from sspo_exp.report.wandb_offline import read_segment


@dataclass(frozen=True)
class Held:
    """What W&B already holds for a run: the last optimizer step and the last W&B row counter (``_step``)."""

    global_step: int | None = None  #: None: no training row yet (not even the before-RL row at step 0)
    wandb_step: int | None = None  #: None: no history row at all


def held_steps(run) -> Held:
    """The last ``train/global_step`` and ``_step`` W&B holds for ``run`` (see the module docstring)."""
    if run is None:
        return Held()
    if not getattr(run.settings, "_offline", False):
        if not run.resumed:
            return Held()
        gs, ws = run.summary.get(STEP_KEY), run.summary.get("_step")  # the server's last values
        if ws is None and getattr(run, "step", 0):
            ws = run.step - 1  # the step the resumed run starts from, minus one
        return Held(None if gs is None else int(gs), None if ws is None else int(ws))
    return held_offline(Path(run.dir).parent, run.id)


def held_offline(current_segment: str | os.PathLike, run_id: str) -> Held:
    """The last optimizer step and ``_step`` in the run's other segment directories beside ``current_segment``."""
    current = Path(current_segment).resolve()
    global_steps, wandb_steps = [], []
    for seg_dir in sorted(current.parent.glob(f"*-{run_id}")):
        log = seg_dir / f"run-{run_id}.wandb"
        if seg_dir.resolve() == current or not log.exists():
            continue
        history = read_segment(log).history
        global_steps += [int(row[STEP_KEY]) for row in history if row.get(STEP_KEY) is not None]
        wandb_steps += [int(row["_step"]) for row in history if row.get("_step") is not None]
    gs = max(global_steps) if global_steps else None
    ws = max(wandb_steps) if wandb_steps else None
    return Held(gs, ws)


def missing_rows(checkpoint: str | None, before: float, held: Held) -> list[dict]:
    """The rows W&B does not hold: the before-RL row (step 0) and the checkpoint's logged steps after ``held``."""
    from transformers.integrations.integration_utils import rewrite_logs

    rows = []
    last = -1 if held.global_step is None else held.global_step
    if last < 0:
        rows.append({HELDOUT: before, STEP_KEY: 0})
    if checkpoint:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
        for entry in state["log_history"]:
            if entry["step"] > last:
                logs = {k: v for k, v in entry.items() if k != "step"}
                rows.append({**rewrite_logs(logs), STEP_KEY: entry["step"]})
    return rows


def resume(run, trainer, checkpoint: str | None, before: float) -> Held:
    """Log what W&B lacks up to ``checkpoint`` and silence the trainer's W&B rows for steps W&B already holds.

    Call it once, after the trainer is built and before ``trainer.train``; ``checkpoint`` is None for a fresh
    start (which may still follow a launch killed before its first checkpoint). Returns what W&B held."""
    held = held_steps(run)
    rows = missing_rows(checkpoint, before, held)
    offline = getattr(run.settings, "_offline", False)
    next_wandb_step = None if held.wandb_step is None or not offline else held.wandb_step + 1
    for i, row in enumerate(rows):
        if i == 0 and next_wandb_step is not None:
            run.log(row, step=next_wandb_step, commit=True)  # with step=, W&B would otherwise wait for more
        else:
            run.log(row)
    if not rows and next_wandb_step is not None:  # the first training row continues the previous segments' rows
        run.log({}, step=next_wandb_step, commit=False)
    if held.global_step is not None:
        skip_logged_steps(trainer, held.global_step)
    return held


def skip_logged_steps(trainer, through: int) -> None:
    """Make the trainer's ``WandbCallback`` skip its rows for optimizer steps ``<= through``."""
    from transformers.integrations import WandbCallback

    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, WandbCallback):
            on_log = cb.on_log

            def quiet(args, state, control, *a, _on_log=on_log, **kw):
                if state.global_step <= through:
                    return None
                return _on_log(args, state, control, *a, **kw)

            cb.on_log = quiet
