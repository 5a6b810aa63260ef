"""Optuna pruning inside training: held-out accuracy → ``trial.report`` → ``trial.should_prune()``.

The study file chooses the pruner (``pruner:`` block, :data:`PRUNERS`)::

    pruner: {name: median, n_startup_trials: 4, n_warmup_steps: 10}   # or hyperband / none (the default)
    overrides: [..., trainer.eval_steps=10]                           # held-out accuracy every 10 steps

How a trial reaches training: the Optuna objective (``optuna_cli.make_objective``) builds
``reporter(trial, seed_index)`` and passes it to ``sspo_exp.train.run.train(cfg, callbacks=[...])``; plain training
gets no such callback. In a multi-process run every process sees the same log row (each evaluates the same held-out
rows); process 0 reports and asks the pruner, and its answer is broadcast, so every process stops together.

The callback sees each held-out evaluation (``callbacks.HeldoutEval`` puts ``keys.HELDOUT_LOG`` into that step's
log row; ``logging_steps=1``) and reports it at step ``seed_index * max_steps + global_step`` (a trial's seeds run
one after another, so they report on disjoint steps and every trial reports the same steps). When the pruner says
so it marks the run — ``<run_dir>/pruned.json``, the W&B summary keys :data:`PRUNED_STEP_KEY` / ``optuna/trial`` /
``optuna/study`` and the W&B tag ``pruned`` — and raises ``optuna.TrialPruned``: training stops after that step's
W&B row is logged, ``run.train`` closes the W&B run, no final evaluation runs and no ``summary.json`` is written, and
Optuna records the trial PRUNED. ``sspo-exp report`` lists such runs as ``pruned`` (never counted in a table); a
later launch of the same config resumes from its last checkpoint like any cut-off run.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from sspo_exp import keys
from sspo_exp.rundir import PRUNED_FILE, RunDir  # noqa: F401  (PRUNED_FILE: the run directory's name for the mark)
from sspo_exp.sweeps.errors import SpaceError

#: Pruner name -> {option: type} accepted in the study file's ``pruner`` block (Optuna's own arguments).
PRUNERS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "none": {},
    "median": {"n_startup_trials": int, "n_warmup_steps": int, "interval_steps": int, "n_min_trials": int},
    "hyperband": {"min_resource": int, "max_resource": (int, str), "reduction_factor": int, "bootstrap_count": int},
}
PRUNED_STEP_KEY, PRUNED_TAG = keys.PRUNED_STEP, keys.PRUNED_TAG  # the key vocabulary's (sspo_exp.keys)


def check_pruner(spec: Any, where: str, metric: str, direction: str) -> dict[str, Any]:
    """The validated ``pruner`` block (absent = ``{name: none}``); errors name the key and the allowed values."""
    spec = {"name": "none"} if spec is None else spec
    if not isinstance(spec, dict) or spec.get("name") not in PRUNERS:
        name = spec.get("name") if isinstance(spec, dict) else spec
        raise SpaceError(f"{where}: pruner.name={name!r}; choose one of {', '.join(PRUNERS)} "
                         f"(pruner must be a mapping, e.g. {{name: median, n_warmup_steps: 10}})")  # fmt: skip
    allowed = PRUNERS[spec["name"]]
    for key, value in spec.items():
        if key == "name":
            continue
        if key not in allowed:
            raise SpaceError(f"{where}: pruner.{key} is not an option of the {spec['name']} pruner; allowed: "
                             f"{', '.join(allowed) or 'none'}")  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, allowed[key]) or (isinstance(value, str) and value != "auto"):
            want = "an integer or auto" if allowed[key] == (int, str) else "an integer"
            raise SpaceError(f"{where}: pruner.{key}={value!r}; must be {want}")
        if isinstance(value, int) and value < (1 if key in ("interval_steps", "n_min_trials", "min_resource",
                                                             "max_resource", "reduction_factor") else 0):  # fmt: skip
            raise SpaceError(f"{where}: pruner.{key}={value!r}; must be >= {1 if key != 'n_startup_trials' else 0}")
    if spec["name"] != "none" and (metric != keys.HELDOUT or direction != "maximize"):
        raise SpaceError(f"{where}: pruner.name={spec['name']!r} prunes on held-out accuracy during training; it needs "
                         f"metric: {keys.HELDOUT} and direction: maximize (got {metric}, {direction})")  # fmt: skip
    return dict(spec)


def make_pruner(spec: dict[str, Any]):
    """Optuna's pruner for a validated ``pruner`` block."""
    import optuna

    options = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] == "median":
        return optuna.pruners.MedianPruner(**options)
    if spec["name"] == "hyperband":
        return optuna.pruners.HyperbandPruner(**options)
    return optuna.pruners.NopPruner()


def reporter(trial, seed_index: int = 0):
    """The trainer callback that reports a trial's seed ``seed_index`` to ``trial`` (pass it to ``run.train``)."""
    return _callback_class()(trial, seed_index)


def _agreed(decision: bool) -> bool:
    """Process 0's decision, on every process of a distributed run (one process: the decision itself)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return decision
    box = [decision]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


@functools.cache
def _callback_class():
    from transformers import TrainerCallback  # imported only inside a trial: this module stays light

    class ReportHeldoutToTrial(TrainerCallback):
        """Report each held-out accuracy to the Optuna trial; mark the run and stop when it should be pruned."""

        def __init__(self, trial, seed_index: int):
            self.trial, self.seed_index = trial, seed_index

        def on_log(self, args, state, control, logs=None, **kwargs):
            accuracy = keys.read(logs or {}, keys.HELDOUT_LOG)
            if accuracy is None:
                return
            step = self.seed_index * state.max_steps + state.global_step
            main = state.is_world_process_zero
            if main:
                self.trial.report(float(accuracy), step)
            if _agreed(main and self.trial.should_prune()):
                import optuna

                if main:
                    mark_pruned(Path(args.output_dir), self.trial, step, state.global_step, accuracy)
                raise optuna.TrialPruned(f"held-out accuracy {accuracy:.3f} at step {step}")

    return ReportHeldoutToTrial


def mark_pruned(run_dir: Path, trial, step: int, global_step: int, accuracy: float) -> None:
    """``<run_dir>/pruned.json`` and, when a W&B run is open, its summary keys and the ``pruned`` tag."""
    import wandb

    study = trial.study.study_name
    mark = {"study": study, "trial": trial.number, "reported_step": step, "global_step": global_step,
            keys.HELDOUT: accuracy}  # fmt: skip
    RunDir(run_dir.parent, run_dir.name).mark_pruned(mark)
    if wandb.run is not None:
        wandb.run.summary.update({keys.PRUNED_STEP: global_step, keys.PRUNED_TRIAL: trial.number, keys.PRUNED_STUDY: study})
        wandb.run.tags = tuple(dict.fromkeys([*wandb.run.tags, PRUNED_TAG]))
