"""Hand-started Optuna workers sample different points (issue 25 item 1): each trial is sampled with a seed
derived from the study's ``sampler.seed`` and its trial number (``sspo_exp.sweeps.sampler``), recorded on the trial.

Before, every worker seeded its sampler with ``sampler.seed`` (+ ``SLURM_ARRAY_TASK_ID`` when there was one), so two
plain ``sspo-exp optuna worker`` processes proposed the same first point: the test below failed on that code.
"""

from __future__ import annotations

import multiprocessing

import optuna
import pytest
from waiting import CEILING

import sspo_exp.train.run  # noqa: F401 - the trial's run id imports it (TRL): once here, not in each forked worker
from sspo_exp.sweeps import optuna_cli
from sspo_exp.sweeps.sampler import trial_seed

SPACE = {
    "study": "two-workers",
    "direction": "maximize",
    "metric": "heldout_accuracy_after",
    "seeds": [0],
    "sampler": {"name": "tpe", "seed": 0},
    "overrides": ["objective=sspo", "gate=atanlog"],
    "params": {"gate.tau_pos": {"low": 0.05, "high": 2.0, "log": True}, "trainer.mu": {"low": 1, "high": 8, "type": "int"}},
}
BARRIER = None  # set before the fork: both workers' first trials are running before either reports


def _fake_train(cfg, callbacks=()) -> dict:
    if BARRIER is not None:
        BARRIER.wait(timeout=CEILING)  # both trials sampled, neither finished: neither saw the other's point
    return {"heldout_accuracy_after": float(cfg.gate.tau_pos)}


def _worker(storage: str) -> None:
    optuna_cli.worker("two-workers", storage, n_trials=2, train_fn=_fake_train)  # as `optuna worker` does


def _trials(storage: str):
    return optuna.load_study(study_name="two-workers", storage=optuna_cli.open_storage(storage)).trials


def test_two_hand_started_workers_on_one_storage_sample_distinct_points(tmp_path, monkeypatch):
    global BARRIER
    for var in ("SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID", "SSPO_OPTUNA_WORKER"):  # started by hand: nothing tells them apart
        monkeypatch.delenv(var, raising=False)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna_cli.create(optuna_cli.check_space(dict(SPACE)), storage)
    ctx = multiprocessing.get_context("fork")
    BARRIER = ctx.Barrier(2)
    try:
        procs = [ctx.Process(target=_worker, args=(storage,)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(CEILING)
    finally:
        BARRIER = None
    assert [p.exitcode for p in procs] == [0, 0]
    trials = sorted(_trials(storage), key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # one trial in each worker process
    assert trials[0].params != trials[1].params  # the bug: both proposed the same point
    assert [t.user_attrs["sampler_seed"] for t in trials] == [trial_seed(0, 0), trial_seed(0, 1)]

    # reproducible: the same study seed run by one worker gives every trial number the same point
    alone = f"sqlite:///{tmp_path / 'alone.db'}"
    optuna_cli.create(optuna_cli.check_space(dict(SPACE)), alone)
    assert optuna_cli.worker("two-workers", alone, n_trials=2, train_fn=_fake_train) == 2
    assert [t.params for t in sorted(_trials(alone), key=lambda t: t.number)] == [t.params for t in trials]


def test_trial_seeds_differ_across_trials_and_studies_and_repeat_for_the_same_pair():
    seeds = {trial_seed(s, n) for s in range(5) for n in range(50)}
    assert len(seeds) == 250 and trial_seed(3, 7) == trial_seed(3, 7)
    assert all(0 <= x < 2**32 for x in seeds)


@pytest.mark.parametrize("name", ["tpe", "random"])
def test_an_unseeded_space_gets_optunas_own_sampler(name):
    from sspo_exp.sweeps.sampler import make_sampler

    sampler = make_sampler({"sampler": {"name": name}})
    assert type(sampler) is (optuna.samplers.TPESampler if name == "tpe" else optuna.samplers.RandomSampler)
