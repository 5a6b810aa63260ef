"""Pruning: the study file's pruner, held-out accuracy reported to the trial through the callback run.train adds
(sspo_exp/sweeps/pruning.py), PRUNED trials, marked runs (pruned.json, W&B summary and tag) that the report lists
as pruned; and the trial's user attributes (run id, W&B run path) that optuna-dashboard shows."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from sspo_exp import keys
from sspo_exp.sweeps import optuna_cli, pruning
from sweeps_helpers import TINY, set_env

SPACE = {
    "study": "prune", "seeds": [0, 1], "sampler": {"name": "random", "seed": 0}, "overrides": ["objective=sspo"],
    "params": {"gate.tau_pos": {"low": 0.05, "high": 1.0}},
    "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
}  # fmt: skip
STEPS = 4  # optimizer steps of each stand-in run


def _stand_in_training(root: Path):
    """Training reduced to what the pruning hook sees: the callbacks the objective passes to run.train get
    a log row with ``keys.HELDOUT_LOG`` after each of STEPS steps, as transformers' Trainer calls ``on_log``;
    the accuracy is gate.tau_pos at every step. An exception from the callback stops training, as in Trainer."""
    from transformers import TrainerControl, TrainerState

    from sspo_exp.train.run import run_id

    def train(cfg, callbacks=()) -> dict:
        rid = run_id(cfg)
        state, args = TrainerState(max_steps=STEPS), SimpleNamespace(output_dir=str(root / rid))
        for step in range(1, STEPS + 1):
            state.global_step = step
            for cb in callbacks:
                cb.on_log(args, state, TrainerControl(), logs={keys.HELDOUT_LOG: cfg.gate.tau_pos, "loss": 0.0})
        return {"run_id": rid, keys.HELDOUT: cfg.gate.tau_pos}

    return train


def test_median_pruner_prunes_trials_below_the_median_and_marks_their_runs(tmp_path):
    import optuna

    storage = str(tmp_path / "study.journal")
    study = optuna_cli.create(optuna_cli.check_space(dict(SPACE)), storage)
    for acc in (0.9, 0.7, 0.2, 0.95, 0.5):
        study.enqueue_trial({"gate.tau_pos": acc})
    assert optuna_cli.worker("prune", storage, n_trials=5, train_fn=_stand_in_training(tmp_path / "runs")) == 5
    trials = optuna.load_study(study_name="prune", storage=optuna_cli.open_storage(storage)).trials
    # 2 startup trials complete; then a trial is pruned at its first report when below the median of the completed
    # trials at that step: 0.2 < median(0.9, 0.7); 0.95 completes; 0.5 < median(0.9, 0.7, 0.95)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]
    # seed k reports at k * max_steps + step: both seeds of a completed trial, on disjoint steps
    assert trials[0].intermediate_values == {s: 0.9 for s in range(1, 2 * STEPS + 1)}
    assert trials[2].intermediate_values == {1: 0.2}
    for t in trials:
        rid = t.user_attrs["run_id_seed0"]
        mark = tmp_path / "runs" / rid / pruning.PRUNED_FILE
        assert mark.exists() == (t.state.name == "PRUNED")
        if t.state.name == "PRUNED":
            assert json.loads(mark.read_text()) == {"study": "prune", "trial": t.number, "reported_step": 1,
                                                    "global_step": 1, keys.HELDOUT: t.params["gate.tau_pos"]}  # fmt: skip
            assert "run_id_seed1" not in t.user_attrs  # stopped at seed 0: the second seed never started
        assert t.user_attrs["wandb_run_seed0"] == f"sspo-exp/{rid}"  # for optuna-dashboard: which W&B run


def test_without_a_pruner_every_trial_completes_and_outside_a_trial_training_gets_no_callback(tmp_path):
    import optuna

    storage = str(tmp_path / "study.journal")
    study = optuna_cli.create(optuna_cli.check_space({**SPACE, "pruner": {"name": "none"}}), storage)
    for acc in (0.9, 0.7, 0.2):
        study.enqueue_trial({"gate.tau_pos": acc})
    optuna_cli.worker("prune", storage, n_trials=3, train_fn=_stand_in_training(tmp_path / "runs"))
    trials = optuna.load_study(study_name="prune", storage=optuna_cli.open_storage(storage)).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 and trials[2].intermediate_values[8] == 0.2
    import inspect

    from sspo_exp.train.run import train

    assert inspect.signature(train).parameters["callbacks"].default == ()  # plain `sspo-exp train`: nothing added


def test_pruners_are_built_from_the_study_file():
    import optuna

    def build(spec):
        return pruning.make_pruner(optuna_cli.check_space({**SPACE, "pruner": spec})["pruner"])

    assert isinstance(build({"name": "none"}), optuna.pruners.NopPruner)
    assert isinstance(optuna_cli.check_space({k: v for k, v in SPACE.items() if k != "pruner"})["pruner"], dict)
    median = build({"name": "median", "n_startup_trials": 3, "n_warmup_steps": 10, "interval_steps": 2})
    assert isinstance(median, optuna.pruners.MedianPruner) and median._n_warmup_steps == 10
    hyper = build({"name": "hyperband", "min_resource": 2, "max_resource": 60, "reduction_factor": 3})
    assert isinstance(hyper, optuna.pruners.HyperbandPruner) and hyper._max_resource == 60


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pruner": {"name": "percentile"}}, r"pruner.name='percentile'; choose one of none, median, hyperband"),
        ({"pruner": "median"}, r"pruner.name='median'.*must be a mapping"),
        ({"pruner": {"name": "median", "warmup": 3}}, r"pruner.warmup is not an option of the median pruner; allowed: n_startup"),
        ({"pruner": {"name": "median", "n_warmup_steps": "10"}}, r"pruner.n_warmup_steps='10'; must be an integer"),
        ({"pruner": {"name": "hyperband", "max_resource": "all"}}, r"pruner.max_resource='all'; must be an integer or auto"),
        ({"pruner": {"name": "hyperband", "reduction_factor": 0}}, r"pruner.reduction_factor=0; must be >= 1"),
        ({"pruner": {"name": "median"}, "metric": "train_reward_last"}, r"needs metric: eval/heldout/accuracy"),
        ({"heartbeat": {"interval": 60}}, r"heartbeat=.*interval: SECONDS, grace_period: SECONDS"),
        ({"heartbeat": {"interval": 60, "grace_period": 30}}, r"heartbeat.grace_period=30 must exceed"),
        ({"heartbeat": {"interval": 0, "grace_period": 30}}, r"heartbeat.interval=0; must be an integer"),
    ],
)
def test_bad_pruner_and_heartbeat_blocks_are_rejected_naming_the_key(change, message):
    with pytest.raises(optuna_cli.SpaceError, match=message):
        optuna_cli.check_space({**SPACE, **change})


def test_shipped_study_files_choose_a_pruner():
    from sspo_exp import SWEEPS_DIR

    names = {p.stem: optuna_cli.load_space(p)["pruner"]["name"] for p in SWEEPS_DIR.glob("optuna_*.yaml")}
    assert names and all(n in pruning.PRUNERS for n in names.values()) and "median" in names.values()


@pytest.mark.slow
def test_a_real_training_trial_is_pruned_marked_and_listed_as_pruned_by_the_report(tmp_path, monkeypatch):
    """Real tiny training with held-out accuracy every step; the study already holds a trial that scored 100% at
    every step, so the median pruner (1 startup trial) must prune this one at step 1 (8 problems, 10-step cold
    start: far below 100%)."""
    import optuna

    from sspo_exp.report.sources import offline_runs
    from sspo_exp.sweeps import preemption

    set_env(monkeypatch, tmp_path)
    monkeypatch.setattr(preemption, "exit_on_sigterm", lambda: False)  # keep pytest's own SIGTERM handling
    runs = tmp_path / "runs"
    space = optuna_cli.check_space({
        "study": "real", "seeds": [0], "overrides": [*TINY, "trainer.eval_steps=1", f"output_root={runs}", "objective=sspo"],
        "params": {"gate.tau_pos": {"low": 0.05, "high": 1.0}}, "pruner": {"name": "median", "n_startup_trials": 1},
    })  # fmt: skip
    storage = str(tmp_path / "study.journal")
    study = optuna_cli.create(space, storage)
    study.add_trial(optuna.trial.create_trial(
        params={"gate.tau_pos": 0.5}, distributions={"gate.tau_pos": optuna.distributions.FloatDistribution(0.05, 1.0)},
        value=1.0, intermediate_values={s: 1.0 for s in range(1, 5)},
    ))  # fmt: skip
    assert optuna_cli.worker("real", storage, n_trials=2) == 1
    trial = optuna.load_study(study_name="real", storage=optuna_cli.open_storage(storage)).trials[1]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [1]
    run_dir = runs / trial.user_attrs["run_id_seed0"]
    mark = json.loads((run_dir / pruning.PRUNED_FILE).read_text())
    assert mark["global_step"] == 1 and mark[keys.HELDOUT] == trial.intermediate_values[1] < 1.0
    assert not (run_dir / "summary.json").exists()  # training stopped: no final evaluation, no summary
    assert (run_dir / "checkpoint-2").exists() is False  # it stopped at step 1, before the first checkpoint
    (run,) = offline_runs([run_dir])
    assert run.state == "pruned" and pruning.PRUNED_TAG in run.tags
    assert run.summary[pruning.PRUNED_STEP_KEY] == 1 and run.summary["optuna/trial"] == trial.number
    assert run.history["step"].max() == 1  # the pruned step's W&B row was logged


def test_the_report_lists_a_pruned_run_as_pruned_until_a_later_launch_trains_past_that_step():
    from sspo_exp.report.sources import api_runs

    class Run:  # what wandb.Api().runs() yields, reduced to what api_runs reads
        name, group, job_type, tags, config = "r", "", "sspo", ["pruned"], {}

        def __init__(self, rid, state, summary):
            self.id, self.state, self.summary_metrics = rid, state, summary

        def scan_history(self, page_size):
            return iter([{"train/global_step": self.summary_metrics["train/global_step"]}])

    class Api:
        def runs(self, path, filters=None):
            return [Run("pruned", "finished", {pruning.PRUNED_STEP_KEY: 3, "train/global_step": 3}),
                    Run("resumed", "finished", {pruning.PRUNED_STEP_KEY: 3, "train/global_step": 60}),
                    Run("live", "running", {pruning.PRUNED_STEP_KEY: 3, "train/global_step": 3}),
                    Run("plain", "crashed", {"train/global_step": 7})]  # fmt: skip

    states = {r.run_id: r.state for r in api_runs("e/p", api=Api())}
    assert states == {"pruned": "pruned", "resumed": "finished", "live": "running", "plain": "crashed"}
