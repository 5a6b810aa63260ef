"""Optuna on a real PostgreSQL (scripts/postgres/start.sh): two worker processes share one study, a worker killed
mid-trial leaves that trial FAIL through the RDB heartbeat while the study goes on, and the password in the storage
URL reaches no output and no file (run configs, W&B files). Without a server these tests skip, saying why."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from postgres_helpers import files_containing, password_of, postgres_url
from sweeps_helpers import TINY, job_env

URL, REASON = postgres_url()
pytestmark = [pytest.mark.postgres, pytest.mark.skipif(URL is None, reason=f"PostgreSQL not reachable: {REASON}")]


def _space(study: str, **change) -> dict:
    from sspo_exp.sweeps import optuna_cli

    return optuna_cli.check_space({
        "study": study, "seeds": [0], "sampler": {"name": "random", "seed": 0}, "overrides": ["objective=sspo"],
        "params": {"gate.tau_pos": {"low": 0.05, "high": 1.0}}, **change,
    })  # fmt: skip


def _wait(predicate, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _train(cfg, box: Path, name: str) -> dict:
    """Stand-in training (no torch): worker `a` hangs in its 2nd trial (until SIGKILLed); worker `b` holds its
    2nd and later trials until the test writes `go`."""
    from sspo_exp.train.run import run_id

    calls = box / f"{name}.calls"
    n = len(calls.read_text()) + 1 if calls.exists() else 1
    calls.write_text("x" * n)
    if name == "a" and n == 2:
        (box / "a_hangs").write_text(str(os.getpid()))
        time.sleep(3600)
    if name == "b" and n >= 2:
        _wait(lambda: (box / "go").exists(), 300, "the test's go")
    return {"run_id": run_id(cfg), "heldout_accuracy_after": cfg.gate.tau_pos}


def _worker(study: str, box: Path, name: str) -> None:
    from sspo_exp.sweeps import optuna_cli

    optuna_cli.worker(study, URL, n_trials=5, train_fn=lambda cfg, callbacks=(): _train(cfg, box, name))


def test_a_killed_workers_trial_fails_by_heartbeat_and_the_study_goes_on(tmp_path):
    import optuna

    import sspo_exp.train.run  # noqa: F401 - imported once here; the forked workers inherit it
    from sspo_exp.sweeps import optuna_cli

    name = f"kill-{uuid.uuid4().hex[:8]}"
    optuna_cli.create(_space(name, heartbeat={"interval": 1, "grace_period": 3}), URL)
    ctx = multiprocessing.get_context("fork")
    a, b = (ctx.Process(target=_worker, args=(name, tmp_path, w)) for w in ("a", "b"))
    a.start(), b.start()
    try:
        _wait(lambda: (tmp_path / "a_hangs").exists(), 120, "worker a to enter its second trial")
        os.kill(a.pid, signal.SIGKILL)  # mid-trial: no exception, no tell(); its trial stays RUNNING
        a.join(30)
        study, store, _ = optuna_cli.load(name, URL)
        (hung,) = [t for t in study.get_trials() if t.state.name == "RUNNING" and t.user_attrs["worker"] == f"pid-{a.pid}"]
        # the heartbeat has gone silent for longer than grace_period (Optuna's own staleness query)
        _wait(lambda: hung._trial_id in store._get_stale_trial_ids(study._study_id), 120, "the trial to go stale")
        (tmp_path / "go").touch()  # worker b finishes its trial, starts the next: fail_stale_trials runs first
        b.join(120)
    finally:
        for p in (a, b):
            if p.is_alive():
                p.kill()
    assert a.exitcode == -signal.SIGKILL and b.exitcode == 0
    trials = optuna.load_study(study_name=name, storage=optuna_cli.open_storage(URL)).trials
    states = {t.number: t.state.name for t in trials}
    assert states[hung.number] == "FAIL" and len(trials) == 5
    assert sorted(states.values()) == ["COMPLETE"] * 4 + ["FAIL"]  # the study went on: b ran 3 trials after a's 1
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert {t.user_attrs["worker"] for t in done} == {f"pid-{a.pid}", f"pid-{b.pid}"}  # both workers' trials landed
    assert all(t.value == t.params["gate.tau_pos"] for t in done)


def test_two_worker_processes_train_on_one_postgres_study_and_the_password_leaks_nowhere(tmp_path):
    """`sspo-exp optuna create` + two `sspo-exp optuna worker` processes, real tiny training, W&B offline."""
    import optuna

    from sspo_exp.sweeps import optuna_cli

    password, name, runs = password_of(URL), f"e2e-{uuid.uuid4().hex[:8]}", tmp_path / "runs"
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({
        "study": name, "metric": "train_reward_last", "sampler": {"name": "random", "seed": 0},
        "overrides": [*TINY, f"output_root={runs}", "objective=sspo", "gate=atanlog"],
        "params": {"gate.tau_pos": {"low": 0.1, "high": 1.0}},
    }))  # fmt: skip
    env = {**os.environ, **job_env(tmp_path), "WANDB_DIR": str(tmp_path / "wandb-home")}
    cli = [sys.executable, "-m", "sspo_exp.cli", "optuna"]
    created = subprocess.run([*cli, "create", str(space), "--storage", URL], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=120)  # fmt: skip
    assert created.returncode == 0, created.stderr[-2000:]
    assert "created study" in created.stdout and "***" in created.stdout
    workers = [subprocess.Popen([*cli, "worker", "--study", name, "--storage", URL, "--n-trials", "3"], env=env,
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
               for _ in range(2)]
    outputs = [w.communicate(timeout=400) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]

    trials = optuna.load_study(study_name=name, storage=optuna_cli.open_storage(URL)).trials
    assert 3 <= len(trials) <= 4 and all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials of the one study
    for t in trials:  # the run id and W&B run path a dashboard shows, and the value is that run's metric
        rid = t.user_attrs["run_id_seed0"]
        assert t.user_attrs["wandb_run_seed0"] == f"sspo-exp/{rid}"
        assert (Path(t.user_attrs["wandb_dir_seed0"]) / f"run-{rid}.wandb").is_file()  # the offline W&B run
        summary = json.loads((runs / rid / "summary.json").read_text())
        assert math.isclose(t.value, summary["train_reward_last"])
    # the password is in no output and no file: stdout/stderr, run configs, W&B files and their metadata, caches
    for out, err in [(created.stdout, created.stderr), *outputs]:
        assert password not in out and password not in err
    assert (runs / trials[0].user_attrs["run_id_seed0"] / "config.yaml").exists()
    assert files_containing(tmp_path, password) == []
