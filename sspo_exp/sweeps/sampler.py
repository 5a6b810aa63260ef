"""The Optuna sampler of a study: seeded per trial, so every worker samples differently however it was started.

A sampler seeded once per worker made every hand-started ``sspo-exp optuna worker`` propose the same points (two
workers, one point trained twice or waited on). Optuna hands out trial numbers atomically from the storage, so no two
trials share one: trial ``n`` samples with a fresh sampler seeded by :func:`trial_seed` ``(sampler.seed, n)``,
recorded on the trial as the user attribute ``sampler_seed`` (``sspo_exp.sweeps.optuna_cli``). TPE and random
sampling keep no state between trials but their random stream (TPE reads the history from the study), so this is
Optuna's own sampler with a per-trial seed and nothing else; a study run by one worker replays exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def trial_seed(study_seed: int, number: int) -> int:
    """The sampler seed of trial ``number``: numpy's ``SeedSequence`` of (the study's ``sampler.seed``, the trial
    number), so neighbouring seeds and numbers give unrelated streams and the same pair always the same one."""
    return int(np.random.SeedSequence([int(study_seed), int(number)]).generate_state(1)[0])


def make_sampler(space: dict[str, Any]):
    """The study's sampler (``sampler: {name: tpe | random, seed: int | absent}``), seeded per trial when the space
    gives a seed (see the module docstring); without one, Optuna's unseeded sampler."""
    import optuna  # ~1 s: kept out of `sspo-exp optuna --help`, as optuna_cli does

    spec = space["sampler"]
    kind = optuna.samplers.TPESampler if spec["name"] == "tpe" else optuna.samplers.RandomSampler
    if spec.get("seed") is None:
        return kind()

    class TrialSeeded(optuna.samplers.BaseSampler):  # every call goes to the current trial's own sampler
        def __init__(self):
            self.inner = kind(seed=int(spec["seed"]))

        def before_trial(self, study, trial):
            self.inner = kind(seed=trial_seed(spec["seed"], trial.number))
            self.inner.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self.inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self.inner.after_trial(study, trial, state, values)

        def reseed_rng(self):
            self.inner.reseed_rng()

    return TrialSeeded()
