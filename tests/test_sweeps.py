"""Sweep files, experiment and launcher configs: the paper's grid, composition, skip/resume, Optuna (stand-ins)."""

from __future__ import annotations

import json
import math
import multiprocessing
import re
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sspo_exp import CONF_DIR, SWEEPS_DIR
from sspo_exp.sweeps import grid, optuna_cli
from sspo_exp.train.run import run_id
from waiting import CEILING

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = SWEEPS_DIR


def _compose(overrides, hydra=False):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def _kv(point: list[str]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in point)


# ------------------------------------------------------------------------------------------ experiments
@pytest.mark.parametrize(
    "experiment, model, dataset, trainer_use_cpu, mu",
    [
        ("table1", "qwen2.5-7b-instruct", "gsm8k_deepmath", False, 2),
        ("table2_math", "qwen3-8b", "dapo_math", False, 4),
        ("cpu_minigrid", "tiny", "arithmetic", True, 2),
        ("cpu_study", "tiny", "arithmetic", True, 4),
    ],
)
def test_experiment_configs_compose_to_the_papers_settings(experiment, model, dataset, trainer_use_cpu, mu):
    cfg = _compose([f"experiment={experiment}"])
    assert (cfg.model.name, cfg.dataset.name, cfg.trainer.use_cpu, cfg.trainer.mu) == (model, dataset, trainer_use_cpu, mu)
    assert cfg.trainer.num_generations == 8 and cfg.trainer.beta == 0.0  # paper: G = 8, no KL
    # an experiment keeps the command line in charge of the objective
    assert _compose([f"experiment={experiment}", "objective=gmpo"]).objective.name == "gmpo"


def test_every_experiment_file_is_covered_and_codeact_composes():
    files = {p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")}
    assert files == {"table1", "table2_math", "table2_code", "cpu_minigrid", "cpu_codeact", "cpu_study"}
    cpu = _compose(["experiment=cpu_codeact"])
    assert (cpu.dataset.name, cpu.model.name, cpu.trainer.use_cpu) == ("codeact_arith", "tiny", True)
    cfg = _compose(["experiment=table2_code"])
    assert (cfg.dataset.name, cfg.trainer.mu, cfg.trainer.rollout, list(cfg.final_eval.benchmarks)) == (
        "codeact", 4, "hf", ["codeact"])


@pytest.mark.parametrize("name", ["table2_math", "table2_code"])
def test_table2_sweeps_pass_validation(name, tmp_path, capsys):
    """--dry-run validates every point with make_plan: mu = 4 needs a checkpoint period that is a multiple of 4
    (gpu.yaml's 50 was refused for all 36 points of both Table 2 sweeps)."""
    # the coding sweep needs M3ToolEval's local file, as its header's command line gives it (without it every point
    # is refused before anything launches: the codeact benchmark has no Hub copy)
    data = ["final_eval.data.codeact=/data/m3tooleval.jsonl"] if name == "table2_code" else []
    assert grid.main([str(SWEEPS / f"{name}.yaml"), f"output_root={tmp_path}", *data, "--dry-run"]) == 0, \
        capsys.readouterr().out
    if name == "table2_code":
        assert grid.main([str(SWEEPS / f"{name}.yaml"), f"output_root={tmp_path}", "--dry-run"]) == 2
        assert "final_eval.data.codeact=FILE" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ launchers
@pytest.mark.parametrize(
    "launcher, target",
    [
        ("local", "hydra._internal.core_plugins.basic_launcher.BasicLauncher"),
        ("local_parallel", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
        ("submitit_local", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"),
        ("submitit_slurm", "hydra_plugins.sspo_exp_launcher.slurm.SlurmLauncher"),  # hydra-submitit-launcher's, subclassed
    ],
)
def test_launcher_option_selects_the_hydra_launcher(launcher, target):
    cfg = _compose([f"launcher={launcher}"], hydra=True)
    assert cfg.hydra.launcher._target_ == target
    # launching never changes what is trained: same run id whatever the launcher
    assert run_id(_compose([f"launcher={launcher}"])) == run_id(_compose([]))


def test_submitit_slurm_requeues_on_preemption_and_on_timeout():
    """With submitit's own rule (job_environment.SignalHandler.has_timed_out), an early SIGUSR2 must count as a
    preemption (requeued for free), and a real timeout must still be requeued (max_num_timeout > 0)."""
    from submitit.core.job_environment import SignalHandler

    launcher = _compose(["launcher=submitit_slurm"], hydra=True).hydra.launcher

    def timed_out_after(minutes: float, timeout_min: int) -> bool:
        handler = SignalHandler.__new__(SignalHandler)
        handler._delayed = type("D", (), {"_timeout_min": timeout_min})()
        handler._start_time = time.time() - 60 * minutes
        handler._logger = type("L", (), {"info": staticmethod(lambda *a: None)})()
        return handler.has_timed_out()

    assert not timed_out_after(5, launcher.timeout_min)  # a preemption 5 minutes in is not a timeout
    assert timed_out_after(launcher.timeout_min - 1, launcher.timeout_min)
    assert launcher.max_num_timeout >= 1
    assert timed_out_after(0, 10)  # the trap the config avoids: timeout_min <= 10 makes every signal a timeout
    assert launcher.signal_delay_s > 0 and launcher.array_parallelism >= 1
    assert launcher.setup and "slurm/env.sh" in launcher.setup[0]


# ------------------------------------------------------------------------------------------ the paper's grids
def test_table1_grid_is_exactly_the_papers_appendix_a_grid():
    sweep = grid.load_sweep(SWEEPS / "table1.yaml")
    points = [_kv(p) for p in grid.expand_grid(sweep["grid"])]
    assert len(points) == 18 and sweep["seeds"] == [0, 1, 2] and sweep["experiment"] == "table1"
    eps = {(p["objective"], float(p["objective.eps_low"])) for p in points if p["objective"] in ("grpo", "gmpo")}
    assert eps == {(o, e) for o in ("grpo", "gmpo") for e in (0.1, 0.2, 0.3)}
    sapo = {(float(p["objective.tau_neg"]), float(p["objective.tau_pos"])) for p in points if p["objective"] == "sapo"}
    assert sapo == {(1, 1.05), (3, 4), (7, 8)}  # pairs, not the 9-point product
    sspo = [p for p in points if p["objective"] == "sspo"]
    tempered = {(p["gate"], float(p["gate.tau_neg"]), float(p["gate.tau_pos"])) for p in sspo if p["gate"] != "gumbel"}
    assert tempered == {(g, *t) for g in ("expsig", "expatan", "atanlog", "siglog") for t in ((0.3, 0.2), (0.6, 0.5))}
    assert [p for p in sspo if p["gate"] == "gumbel"] == [{"objective": "sspo", "gate": "gumbel"}]
    assert len(grid.sweep_jobs(sweep)) == 18 * 3


def test_table2_and_cpu_grids():
    t2 = grid.load_sweep(SWEEPS / "table2_math.yaml")
    points = {(p["model"], p["objective"]) for p in map(_kv, grid.expand_grid(t2["grid"]))}
    assert points == {(m, o) for m in ("qwen3-8b", "qwen3-14b", "qwen3-30b-a3b") for o in ("grpo", "gspo", "sapo", "sspo")}
    assert len(grid.sweep_jobs(t2)) == 12 * 3
    code = grid.load_sweep(SWEEPS / "table2_code.yaml")
    assert code["experiment"] == "table2_code" and code["grid"] == t2["grid"]
    cpu = grid.load_sweep(SWEEPS / "cpu_minigrid.yaml")
    assert cpu["experiment"] == "cpu_minigrid" and cpu["grid"] == grid.load_sweep(SWEEPS / "table1.yaml")["grid"]
    assert len(grid.sweep_jobs(code)) == 12 * 3


def test_cpu_study_sweeps_share_their_mu_4_defaults_with_the_grid():
    """The study's staleness ablation reuses the grid's runs at mu = 4 (same run ids: done once) for every method
    the grid has at its default configuration (GSPO is not in the Appendix A grid), 5 seeds each."""
    study = grid.load_sweep(SWEEPS / "cpu_study_grid.yaml")
    assert study["grid"] == grid.load_sweep(SWEEPS / "table1.yaml")["grid"] and study["seeds"] == [0, 1, 2, 3, 4]
    stale = grid.load_sweep(SWEEPS / "cpu_study_staleness.yaml")
    assert stale["seeds"] == [0, 1, 2, 3, 4]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        ids = lambda sw: {run_id(compose("train", overrides=o)): _kv(o) for o in grid.sweep_jobs({**sw, "seeds": [0]})}  # noqa: E731
        grid_ids, stale_ids = ids(study), ids(stale)
    shared = {p["objective"] for rid, p in stale_ids.items() if rid in grid_ids}
    assert shared == {"grpo", "gmpo", "sapo", "sspo"}
    assert {int(p["trainer.mu"]) for p in stale_ids.values()} == {1, 2, 4, 8}
    assert all(p["trainer.mu"] == "4" for rid, p in stale_ids.items() if rid in grid_ids)


@pytest.mark.parametrize("name, settings", [("table1", 18), ("table2_math", 12), ("table2_code", 12), ("cpu_minigrid", 18),
                                            ("table1_swapped_tau", 11), ("cpu_study_grid", 18),
                                            ("cpu_study_staleness", 20)])
def test_every_sweep_point_composes_with_its_values_and_a_distinct_run_id(name, settings):
    sweep = grid.load_sweep(SWEEPS / f"{name}.yaml")
    sweep["seeds"] = [0]
    ids = set()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        for overrides in grid.sweep_jobs(sweep):
            cfg = compose("train", overrides=overrides)
            ids.add(run_id(cfg))
            for key, value in _kv(overrides).items():  # the swept values reach the config
                if key not in ("experiment", "objective", "gate", "model"):
                    assert str(OmegaConf.select(cfg, key)) == value
                elif key != "experiment":
                    assert cfg[key].name == value
            if cfg.objective.name in ("grpo", "gmpo"):
                assert cfg.objective.eps_high == cfg.objective.eps_low  # symmetric clip, as in the paper
    assert len(ids) == settings  # no two points of the grid are the same run


@pytest.mark.parametrize(
    "content, message",
    [
        ("grid: []", "non-empty list"),
        ("experiment: table1\ngrid: [{objective: sapo}]\nsweep: 1", "unknown key"),
        ("grid:\n  - {objective: sapo, 'objective.tau_neg,objective.tau_pos': [[1, 2, 3]]}", "2-element lists"),
        ("grid: [{objective: sapo}]\nseeds: 0", "list of integers"),
        ("grid: [{objective: [{a: 1}]}]", "only scalars"),
    ],
)
def test_malformed_sweep_files_are_rejected_with_the_reason(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(grid.SweepError, match=message):
        grid.sweep_jobs(grid.load_sweep(path))


def _documented_sweep_commands() -> list[tuple[str, list[str]]]:
    """Every ``sspo-exp sweep ...`` command shown in sweeps/*.yaml, conf/**/*.yaml and grid.py's docstring, as
    (where, argv); optional ``[...]`` groups after a space and trailing ``# comments`` are dropped."""
    sources = [*SWEEPS.glob("*.yaml"), *CONF_DIR.rglob("*.yaml"), Path(grid.__file__)]
    found = []
    for path in sources:
        for line in path.read_text().splitlines():
            if "sspo-exp sweep " not in line:
                continue
            cmd = line.split("sspo-exp sweep ", 1)[1].split(" #")[0]
            found.append((f"{path.name}: {line.strip()}", re.sub(r"\s\[[^\]]*\]", "", " " + cmd).split()))
    return found


def test_documented_sweep_commands_parse_and_compose():
    """The usage comments are commands a user copies: each parses and its first run composes (``seeds=[0]``
    instead of ``--seeds 0`` would fail: `seeds` is not a config key)."""
    commands = _documented_sweep_commands()
    assert {Path(argv[0]).name for _, argv in commands} >= {"table1.yaml", "cpu_minigrid.yaml"}
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        for where, argv in commands:
            args = grid.build_parser().parse_args(argv)
            sweep = grid.load_sweep(ROOT / args.sweep)
            if args.seeds is not None:
                sweep["seeds"] = args.seeds
            try:
                compose("train", overrides=grid.sweep_jobs(sweep, args.overrides)[0])
            except Exception as e:  # noqa: BLE001 - name the documented command that is wrong
                pytest.fail(f"{where}: {e}")
    old_form = [p.name for p in [*SWEEPS.glob("*.yaml"), *CONF_DIR.rglob("*.yaml")] if "python -m sspo_exp.sweeps.grid" in p.read_text()]
    assert old_form == []  # the README's form, `sspo-exp sweep FILE`, everywhere


def test_sweep_help_names_the_sspo_exp_command(capsys):
    from sspo_exp import cli

    with pytest.raises(SystemExit):
        cli.main(["sweep", "--help"])
    assert capsys.readouterr().out.startswith("usage: sspo-exp sweep ")


def test_a_typo_in_a_sweep_point_fails_before_anything_runs(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("grid: [{objective: [grpo, gpro]}]")
    calls = []
    with pytest.raises(grid.SweepError, match="gpro"):
        grid.run_sweep(path, [f"output_root={tmp_path}"], task=calls.append)
    assert calls == []


# ------------------------------------------------------------------------------------------ skip / resume
def _stand_in_task(cfg):
    """Instead of training: write the run's summary.json where train() would, and return it."""
    run_dir = Path(cfg.output_root) / run_id(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = {"run_id": run_id(cfg), "heldout_accuracy_after": float(cfg.seed)}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    _stand_in_task.calls.append(run_id(cfg))
    return summary


def test_relaunching_a_sweep_skips_finished_runs_and_relaunches_cut_off_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text("seeds: [0, 1]\ngrid: [{objective: grpo, objective.eps_low: [0.1, 0.2]}, {objective: sspo, gate: gumbel}]")
    common = [f"output_root={tmp_path / 'runs'}"]
    _stand_in_task.calls = []
    report = grid.run_sweep(path, common, task=_stand_in_task)
    assert report == {"points": 6, "skipped": 0, "launched": 6, "failed": []}
    assert len(set(_stand_in_task.calls)) == 6 and (tmp_path / "runs" / ".hydra").is_dir()  # a Hydra multirun dir

    # one run cut off (checkpoints, no summary), one never started
    planned = grid.plan(grid.sweep_jobs(grid.load_sweep(path), common))
    (planned[0].run_dir / "summary.json").unlink()
    (planned[0].run_dir / "checkpoint-2").mkdir()  # a complete checkpoint: the one rule of sspo_exp.rundir
    for name, text in (("trainer_state.json", "{}"), ("model.safetensors", "x"), ("optimizer.pt", "x")):
        (planned[0].run_dir / "checkpoint-2" / name).write_text(text)
    import shutil

    shutil.rmtree(planned[1].run_dir)
    (planned[1].run_dir / "checkpoint-4").mkdir(parents=True)  # cut while saving: nothing to resume from
    assert [j.status for j in grid.plan(grid.sweep_jobs(grid.load_sweep(path), common))][:3] == ["resume", "new", "done"]
    _stand_in_task.calls = []
    report = grid.run_sweep(path, common, task=_stand_in_task)
    assert report["skipped"] == 4 and _stand_in_task.calls == [planned[0].run_id, planned[1].run_id]
    _stand_in_task.calls = []
    assert grid.run_sweep(path, common, task=_stand_in_task)["launched"] == 0 and _stand_in_task.calls == []


def test_a_failing_run_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text("grid: [{objective: grpo, objective.eps_low: [0.1, 0.2, 0.3]}]")

    def task(cfg):
        if cfg.objective.eps_low == 0.2:
            raise RuntimeError("boom")
        return _stand_in_task(cfg)

    _stand_in_task.calls = []
    report = grid.run_sweep(path, [f"output_root={tmp_path / 'runs'}"], task=task)
    assert report["launched"] == 3 and len(_stand_in_task.calls) == 2
    assert [_kv(f)["objective.eps_low"] for f in report["failed"]] == ["0.2"]
    assert grid.main([str(path), f"output_root={tmp_path / 'runs'}", "--dry-run"]) == 0


# ------------------------------------------------------------------------------------------ Optuna
SPACE = {
    "study": "stand-in",
    "direction": "maximize",
    "metric": "heldout_accuracy_after",
    "seeds": [0, 1],
    "sampler": {"name": "random", "seed": 0},
    "overrides": ["objective=sspo", "gate=atanlog"],
    "params": {"gate.tau_pos": {"low": 0.05, "high": 2.0, "log": True}, "gate.tau_neg": {"low": 0.05, "high": 2.0}},
}


def fake_train(cfg, callbacks=()) -> dict:
    """A stand-in objective peaked at tau_pos = 0.5; tau_neg > 1.5 'crashes'; the seed shifts the value."""
    if cfg.gate.tau_neg > 1.5:
        raise RuntimeError("stand-in crash")
    value = -((math.log(cfg.gate.tau_pos / 0.5)) ** 2) + 0.01 * cfg.seed
    return {"run_id": run_id(cfg), "heldout_accuracy_after": value}


def test_optuna_study_records_values_failures_and_the_search_space(tmp_path):
    storage = str(tmp_path / "study.journal")
    optuna_cli.create(optuna_cli.check_space(dict(SPACE)), storage)
    with pytest.raises(optuna_cli.SpaceError, match="already exists"):
        optuna_cli.create(optuna_cli.check_space(dict(SPACE)), storage)
    optuna_cli.create(optuna_cli.check_space(dict(SPACE)), storage, exist_ok=True)  # same space: fine

    assert optuna_cli.worker("stand-in", storage, n_trials=12, train_fn=fake_train) == 12
    assert optuna_cli.worker("stand-in", storage, n_trials=12, train_fn=fake_train) == 0  # budget is study-wide
    import optuna

    study = optuna.load_study(study_name="stand-in", storage=optuna_cli.open_storage(storage))
    states = {t.state.name for t in study.trials}
    assert len(study.trials) == 12 and states <= {"COMPLETE", "FAIL"}
    for t in study.trials:
        if t.params["gate.tau_neg"] > 1.5:
            assert t.state.name == "FAIL"
        else:  # the value is the mean over the two seeds of the metric of the suggested config
            expected = -((math.log(t.params["gate.tau_pos"] / 0.5)) ** 2) + 0.005
            assert t.state.name == "COMPLETE" and t.value == pytest.approx(expected)
            assert "gate.tau_pos=" + str(t.params["gate.tau_pos"]) in t.user_attrs["overrides"]
    assert "FAIL" in states and "COMPLETE" in states  # the random sampler with seed 0 hits both regions


def _parallel_worker(storage):
    optuna_cli.worker("stand-in", storage, n_trials=10, train_fn=fake_train)


def test_two_concurrent_workers_share_one_journal_study(tmp_path):
    storage = str(tmp_path / "study.journal")
    optuna_cli.create(optuna_cli.check_space(dict(SPACE, sampler={"name": "tpe", "seed": 0})), storage)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_parallel_worker, args=(storage,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(CEILING)
    assert all(p.exitcode == 0 for p in procs)
    import optuna

    trials = optuna.load_study(study_name="stand-in", storage=optuna_cli.open_storage(storage)).trials
    assert 10 <= len(trials) <= 11 and len({t.number for t in trials}) == len(trials)  # at most one overshoot
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in trials)


def test_optuna_rdb_storage_and_cli(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    import yaml

    space.write_text(yaml.safe_dump(dict(SPACE, study="cli")))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert optuna_cli.main(["create", str(space), "--storage", url]) == 0
    assert optuna_cli.main(["create", str(space), "--storage", url]) == 2
    assert "already exists" in capsys.readouterr().err
    assert optuna_cli.worker("cli", url, n_trials=3, train_fn=fake_train) == 3
    assert optuna_cli.main(["show", "--study", "nope", "--storage", url]) == 2
    assert "create it first" in capsys.readouterr().err
    assert optuna_cli.main(["show", "--study", "cli", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("trial") for line in out.splitlines()) == 3 and "best: trial" in out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"metric": "accuracy"}, "eval/heldout/accuracy"),
        ({"direction": "up"}, "maximize or minimize"),
        ({"params": {}}, "params"),
        ({"params": {"gate.tau_pos": {"low": 1}}}, "low, high"),
        ({"sampler": {"name": "cmaes"}}, "tpe, random"),
        ({"trials": 3}, "unknown key"),
        ({"overrides": "experiment=cpu_minigrid"}, "overrides=.*list of Hydra override strings"),
        ({"overrides": [["objective=sspo"]]}, "overrides=.*list of Hydra override strings"),
        ({"seeds": 0}, "seeds=0; must be a non-empty list of integers"),
        ({"seeds": []}, "seeds=.*non-empty list of integers"),
        ({"seeds": ["0"]}, "seeds=.*non-empty list of integers"),
        ({"sampler": "tpe"}, "sampler='tpe'; must be a mapping .*tpe | random"),
        ({"sampler": {"name": "tpe", "seed": "0"}}, "sampler.seed"),
    ],
)
def test_malformed_search_spaces_are_rejected(change, message):
    with pytest.raises(optuna_cli.SpaceError, match=message):
        optuna_cli.check_space({**SPACE, **change})


def test_a_search_space_that_is_not_a_mapping_is_rejected():
    with pytest.raises(optuna_cli.SpaceError, match="must be a mapping"):
        optuna_cli.check_space(["study: x"])


def test_optuna_trials_and_sweep_jobs_run_the_same_task():
    import inspect

    for fn in (optuna_cli.worker, optuna_cli.make_objective):
        assert inspect.signature(fn).parameters["train_fn"].default is grid.train_task


def test_shipped_search_spaces_are_valid_and_compose():
    for path in SWEEPS.glob("optuna_*.yaml"):
        space = optuna_cli.load_space(path)
        values = {k: (d["choices"][0] if "choices" in d else d["low"]) for k, d in space["params"].items()}
        cfg = _compose(optuna_cli.trial_overrides(space, values))
        assert cfg.model.name == "tiny"


def test_a_requeued_slurm_worker_retries_the_trial_it_was_cut_off_in(tmp_path, monkeypatch):
    import optuna

    from sspo_exp.sweeps import preemption

    monkeypatch.setattr(preemption, "exit_on_sigterm", lambda: False)  # keep pytest's own SIGTERM handling
    storage = str(tmp_path / "study.journal")
    study = optuna_cli.create(optuna_cli.check_space(dict(SPACE)), storage)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    study.enqueue_trial({"gate.tau_pos": 0.5, "gate.tau_neg": 0.3})
    cut = study.ask()  # the trial job 4242 was running when SLURM preempted it
    cut.suggest_float("gate.tau_pos", 0.05, 2.0, log=True), cut.suggest_float("gate.tau_neg", 0.05, 2.0)
    cut.set_user_attr("worker", "slurm-4242")
    other = study.ask()  # another worker's trial, still running elsewhere: left alone
    other.set_user_attr("worker", "slurm-7")

    assert optuna_cli.worker("stand-in", storage, n_trials=3, train_fn=fake_train) == 1
    trials = optuna.load_study(study_name="stand-in", storage=optuna_cli.open_storage(storage)).trials
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "COMPLETE"]
    assert trials[2].params == trials[0].params and trials[2].user_attrs["retry_of"] == 0
    assert trials[2].user_attrs["worker"] == "slurm-4242"


@pytest.mark.parametrize("in_slurm, code", [(True, 143), (False, -15)])
def test_preemption_callback_exits_at_once_on_sigterm_only_inside_slurm(in_slurm, code):
    import os
    import subprocess
    import sys

    src = ("import os, signal, time\nfrom sspo_exp.sweeps.preemption import ExitOnSigterm\n"
           "ExitOnSigterm().on_job_start(config=None)\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(5)\n")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"} | ({"SLURM_JOB_ID": "1"} if in_slurm else {})
    assert subprocess.run([sys.executable, "-c", src], env=env, timeout=CEILING).returncode == code
    cfg = _compose(["launcher=submitit_slurm"], hydra=True)
    assert cfg.hydra.callbacks.exit_on_sigterm._target_ == "sspo_exp.sweeps.preemption.ExitOnSigterm"


def test_a_shipped_sweep_is_found_by_name_and_a_missing_one_lists_the_names(tmp_path, monkeypatch):
    """Wheel users have no ``sweeps/`` directory: ``sspo-exp sweep table1`` finds the packaged file."""
    monkeypatch.chdir(tmp_path)  # no sweeps/ link here
    assert grid.sweep_path("table1") == SWEEPS_DIR / "table1.yaml"
    assert grid.sweep_path("sweeps/table1.yaml") == SWEEPS_DIR / "table1.yaml"
    assert optuna_cli.load_space("optuna_sspo")["study"]
    with pytest.raises(grid.SweepError, match="shipped sweep name: .*table1"):
        grid.sweep_path("tabel1")


def test_swapped_tau_sweep_is_exactly_table1_with_each_temperature_pair_swapped():
    """Issue 11: the sensitivity sweep = Table 1's points that have (tau_neg, tau_pos), with the two swapped."""
    t1 = grid.load_sweep(SWEEPS / "table1.yaml")
    swapped = grid.load_sweep(SWEEPS / "table1_swapped_tau.yaml")
    assert (swapped["experiment"], swapped["seeds"]) == (t1["experiment"], t1["seeds"])

    def swap(p: dict) -> dict:
        out = dict(p)
        for group in ("objective", "gate"):
            if f"{group}.tau_neg" in p:
                out[f"{group}.tau_neg"], out[f"{group}.tau_pos"] = p[f"{group}.tau_pos"], p[f"{group}.tau_neg"]
        return out

    def key(p: dict) -> tuple:
        return tuple(sorted((k, float(v) if "tau" in k else v) for k, v in p.items()))

    tempered = [p for p in map(_kv, grid.expand_grid(t1["grid"])) if any("tau" in k for k in p)]
    points = [_kv(p) for p in grid.expand_grid(swapped["grid"])]
    assert len(points) == len(tempered) == 11
    assert sorted(map(key, points)) == sorted(key(swap(p)) for p in tempered)
    for p in points:  # the paper's orders reversed: SSPO's widths now tau_neg < tau_pos, SAPO's slopes tau_neg > tau_pos
        if "gate.tau_neg" in p:
            assert float(p["gate.tau_neg"]) < float(p["gate.tau_pos"])
        else:
            assert float(p["objective.tau_neg"]) > float(p["objective.tau_pos"])


def test_every_tempered_default_flags_the_papers_tau_order():
    """Issue 11: each gate file and sapo.yaml says the paper's order is kept and where the swapped sweep is."""
    for path in [*(CONF_DIR / "gate").glob("*.yaml"), CONF_DIR / "objective" / "sapo.yaml"]:
        text = path.read_text()
        assert "PAPER AMBIGUITY" in text, path.name
        if "tau_pos: null" not in text:
            assert "table1_swapped_tau.yaml" in text and "SLOWER" in text, path.name


def test_slurm_job_ids_are_read_from_submitits_folders_in_task_order(tmp_path):
    """submitit names each array task's folder <array>_<task>; task k is the k-th queued run (its marker's job id)."""
    seen = {}
    folder = tmp_path / ".submitit"
    watcher = grid.SlurmIdWatcher(folder, 2, lambda i, job_id: seen.setdefault(i, job_id), every=0.01)
    for name in ("123_1", "123_0", "123", "log"):  # not an array task: ignored
        (folder / name).mkdir(parents=True)
    watcher.stop()
    assert seen == {0: "123_0", 1: "123_1"}


def test_a_single_slurm_job_is_not_an_array_and_its_id_is_read_too(tmp_path):
    seen = {}
    folder = tmp_path / ".submitit"
    watcher = grid.SlurmIdWatcher(folder, 1, lambda i, job_id: seen.setdefault(i, job_id), every=0.01)
    (folder / "456").mkdir(parents=True)
    watcher.stop()
    assert seen == {0: "456"}


def test_only_keeps_the_points_holding_every_given_override():
    jobs = grid.sweep_jobs(grid.load_sweep(SWEEPS / "cpu_study_staleness.yaml"))
    mu4 = grid.select(jobs, ["trainer.mu=4"])
    assert len(jobs) == 100 and len(mu4) == 25 and all("trainer.mu=4" in j for j in mu4)
    assert grid.select(jobs, ["trainer.mu=4", "objective=sapo", "seed=0"]) == [
        ["experiment=cpu_study", "trainer.mu=4", "objective=sapo", "seed=0"]]
    assert grid.select(jobs, []) == jobs
    with pytest.raises(grid.SweepError, match="--only trainer.mu=3: no sweep point"):
        grid.select(jobs, ["trainer.mu=3"])
    args = grid.build_parser().parse_args(["sweeps/cpu_study_staleness.yaml", "--only", "trainer.mu=4", "--dry-run"])
    assert args.only == ["trainer.mu=4"] and args.overrides == []
