"""An Optuna search-space file (``sweeps/optuna_*.yaml``, format in ``sspo_exp.sweeps.optuna_cli``): loaded, checked
(every error names the key and the allowed values, ``SpaceError``) and sampled through Optuna's suggest_* API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sspo_exp import keys
from sspo_exp.sweeps import pruning
from sspo_exp.sweeps.errors import SpaceError, SweepError
from sspo_exp.sweeps.grid import sweep_path

#: Metrics a trial can return: numeric keys of the run's summary.json (sspo_exp/train/run.py). A space file written
#: before held-out accuracy moved under eval/ names it heldout_accuracy_after: read as keys.HELDOUT.
METRICS = {
    keys.HELDOUT: "held-out greedy Pass@1 in [0, 1] after RL (trainer.eval_samples problems)",
    "train_reward_last": "mean training reward (answer + format, in [0, 2]) over the last 5 rollouts",
}
SPACE_KEYS = ("study", "direction", "metric", "seeds", "sampler", "pruner", "heartbeat", "overrides", "params")
#: RDB heartbeats (seconds) when the study file has no ``heartbeat`` block: a dead worker's trial fails after 4 min.
HEARTBEAT = {"interval": 60, "grace_period": 240}
SAMPLERS = ("tpe", "random")


def load_space(path: str | Path) -> dict[str, Any]:
    try:
        path = sweep_path(path)  # a path, or a shipped name (optuna_sspo)
    except SweepError as err:
        raise SpaceError(str(err).replace("sweep file", "search-space file")) from None
    return check_space(yaml.safe_load(path.read_text()) or {}, str(path))


def check_space(space: dict[str, Any], where: str = "search space") -> dict[str, Any]:
    """Validate and fill defaults; every error names the key and what is allowed."""
    if not isinstance(space, dict):
        raise SpaceError(f"{where}: must be a mapping with keys {', '.join(SPACE_KEYS)}, got {type(space).__name__}")
    unknown = sorted(set(space) - set(SPACE_KEYS))
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(SPACE_KEYS)}")
    space = {"direction": "maximize", "metric": keys.HELDOUT, "seeds": [0], "sampler": {"name": "tpe"},
             "pruner": {"name": "none"}, "heartbeat": dict(HEARTBEAT), "overrides": [], **space}  # fmt: skip
    space["metric"] = keys.current_name(space["metric"]) if isinstance(space["metric"], str) else space["metric"]
    if not space.get("study"):
        raise SpaceError(f"{where}: `study` (the study name) is required")
    if space["direction"] not in ("maximize", "minimize"):
        raise SpaceError(f"{where}: direction={space['direction']!r}; choose maximize or minimize")
    if space["metric"] not in METRICS:
        raise SpaceError(f"{where}: metric={space['metric']!r}; choose one of {', '.join(METRICS)}")
    overrides, seeds, sampler = space["overrides"], space["seeds"], space["sampler"]
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise SpaceError(f"{where}: overrides={overrides!r}; must be a list of Hydra override strings, "
                         f"e.g. [experiment=cpu_minigrid, objective=sspo]")  # fmt: skip
    if not isinstance(seeds, list) or not seeds or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
        raise SpaceError(f"{where}: seeds={seeds!r}; must be a non-empty list of integers, e.g. [0] or [0, 1, 2]")
    if not isinstance(sampler, dict):
        raise SpaceError(f"{where}: sampler={sampler!r}; must be a mapping {{name: {' | '.join(SAMPLERS)}[, seed: int]}}")
    if sampler.get("seed") is not None and (not isinstance(sampler["seed"], int) or isinstance(sampler["seed"], bool)):
        raise SpaceError(f"{where}: sampler.seed={sampler['seed']!r}; must be an integer or absent")
    if sampler.get("name") not in SAMPLERS:
        raise SpaceError(f"{where}: sampler.name={sampler.get('name')!r}; choose one of {', '.join(SAMPLERS)}")
    space["pruner"] = pruning.check_pruner(space["pruner"], where, space["metric"], space["direction"])
    space["heartbeat"] = check_heartbeat(space["heartbeat"], where)
    if not isinstance(space.get("params"), dict) or not space["params"]:
        raise SpaceError(f"{where}: `params` must map Hydra keys to distributions, e.g. gate.tau_pos: {{low: 0.1, high: 1}}")
    for key, dist in space["params"].items():
        if not isinstance(dist, dict) or not ("choices" in dist or {"low", "high"} <= set(dist)):
            raise SpaceError(f"{where}: params.{key}={dist!r}; use {{low, high[, log, step, type: int]}} or {{choices: [...]}}")
    return space


def check_heartbeat(beat: Any, where: str) -> dict[str, int]:
    if not isinstance(beat, dict) or set(beat) != {"interval", "grace_period"}:
        raise SpaceError(f"{where}: heartbeat={beat!r}; must be a mapping {{interval: SECONDS, grace_period: SECONDS}}")
    for key in ("interval", "grace_period"):
        if not isinstance(beat[key], int) or isinstance(beat[key], bool) or beat[key] < 1:
            raise SpaceError(f"{where}: heartbeat.{key}={beat[key]!r}; must be an integer number of seconds >= 1")
    if beat["grace_period"] <= beat["interval"]:
        raise SpaceError(f"{where}: heartbeat.grace_period={beat['grace_period']} must exceed heartbeat.interval="
                         f"{beat['interval']} (a live worker would be declared dead)")  # fmt: skip
    return dict(beat)


def suggest(trial, params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One value per parameter through Optuna's suggest_* API."""
    values = {}
    for key, dist in params.items():
        if "choices" in dist:
            values[key] = trial.suggest_categorical(key, list(dist["choices"]))
        elif dist.get("type") == "int":
            values[key] = trial.suggest_int(key, int(dist["low"]), int(dist["high"]), step=int(dist.get("step", 1)), log=bool(dist.get("log", False)))  # fmt: skip
        else:
            values[key] = trial.suggest_float(key, float(dist["low"]), float(dist["high"]), step=dist.get("step"), log=bool(dist.get("log", False)))  # fmt: skip
    return values
