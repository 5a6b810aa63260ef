"""On a real SLURM (slurm/local/start.sh): a Hydra multirun through launcher=submitit_slurm, an Optuna study with two
SLURM workers, and a requeued (preempted) job that resumes from its checkpoint and ends like an uninterrupted run.
Each job is a seconds-long tiny-model training run (tests/sweeps_helpers.py: TINY). Every wait is on an event (a
file, a job state, a process ending) under tests/waiting.py's CEILING: a loaded machine makes them slower, not red."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sspo_exp import keys

from postgres_helpers import files_containing, password_of, postgres_url
from sweeps_helpers import TINY, set_env, slurm_reason, start_requeued_now
from waiting import CEILING, running, wait_for

REASON = slurm_reason()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(REASON is not None, reason=f"SLURM not reachable: {REASON}")]

ROOT = Path(__file__).resolve().parent.parent
#: Fit the one-node test cluster: CPU jobs, one core and 2 GB each, the `debug` partition.
SLURM_CPU = ["hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
             "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=60"]  # fmt: skip


@pytest.fixture
def env(tmp_path, monkeypatch):
    set_env(monkeypatch, tmp_path)
    monkeypatch.setenv("SSPO_EXP_ENV_SH", str(ROOT / "slurm" / "env.sh"))
    monkeypatch.chdir(tmp_path)  # sbatch runs jobs in the submission directory
    return tmp_path


def _summaries(runs: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in runs.glob("*/summary.json")}


def test_hydra_multirun_through_submitit_slurm_completes_every_job(env):
    runs = env / "runs"
    cmd = [sys.executable, "-m", "sspo_exp.cli", "train", "-m", *TINY, f"output_root={runs}", "launcher=submitit_slurm",
           *SLURM_CPU, "objective=grpo,sspo"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=CEILING)
    assert out.returncode == 0, out.stderr[-3000:]
    summaries = _summaries(runs)
    assert sorted(s["run_id"].split("-")[0] for s in summaries.values()) == ["grpo", "sspo"]
    assert all(s["global_step"] == 4 for s in summaries.values())
    # they ran as SLURM array tasks: submitit's sbatch script and per-task logs are beside the multirun
    (script,) = runs.glob(".hydra/multirun-*/.submitit/*/*_submission.sh")
    assert "#SBATCH --partition=debug" in script.read_text() and "#SBATCH --array=0-1" in script.read_text()


@pytest.mark.parametrize("backend", ["journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_optuna_study_with_two_slurm_workers(env, backend):
    """Two SLURM jobs pull trials from one study: on a journal file, and on PostgreSQL (scripts/postgres/start.sh)
    with a password in the URL that reaches neither the jobs' files (submitit pickles, SLURM logs) nor the runs'."""
    from optuna import load_study

    from sspo_exp.sweeps import optuna_cli

    study = f"slurm-{backend}-{os.getpid()}-{int(time.time())}"
    space = optuna_cli.check_space({
        "study": study, "metric": "train_reward_last", "sampler": {"name": "random", "seed": 0},
        "overrides": [*TINY, f"output_root={env / 'runs'}", "objective=sspo", "gate=atanlog"],
        "params": {"gate.tau_pos": {"low": 0.1, "high": 1.0}, "gate.tau_neg": {"low": 0.1, "high": 1.0}},
    })  # fmt: skip
    if backend == "postgres":
        url, why = postgres_url()
        if url is None:
            pytest.skip(f"PostgreSQL not reachable: {why}")
        storage, folder = url, env / "runs" / "optuna"  # submit() puts a URL study's job folders under runs/optuna
    else:
        storage = str(env / "optuna" / "slurm.journal")
        folder = env / "optuna"
    optuna_cli.create(space, storage)
    optuna_cli.submit(study, storage, workers=2, n_trials=3, launcher="submitit_slurm", launcher_overrides=SLURM_CPU)
    trials = load_study(study_name=study, storage=optuna_cli.open_storage(storage)).trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert 3 <= len(trials) <= 4 and len(complete) == len(trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both SLURM jobs pulled trials from the one study
    assert all(t.user_attrs["worker"].startswith("slurm-") for t in trials)
    summaries = _summaries(env / "runs")
    for t in complete:  # the trial's value is the metric of its own run
        assert t.value == summaries[t.user_attrs["run_id_seed0"]]["train_reward_last"]
    assert list(folder.glob(".submitit/*/*_log.out"))  # the jobs' own logs are where we look for the password
    if backend == "postgres":
        assert files_containing(env, password_of(storage)) == []


def _squeue(name: str) -> list[tuple[str, str]]:
    out = subprocess.run(["squeue", "-h", "--name", name, "-o", "%i %T"], capture_output=True, text=True,
                         timeout=CEILING, check=True)
    return [tuple(line.split()) for line in out.stdout.splitlines()]


def _job(jobid: str) -> dict[str, str]:
    """``scontrol show job`` as a dict (JobState, Restarts, ...); MinJobAge keeps a finished job visible."""
    out = subprocess.run(["scontrol", "-o", "show", "job", jobid], capture_output=True, text=True, timeout=CEILING,
                         check=True)  # fmt: skip
    return dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)


def test_requeued_job_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(env):
    from safetensors.torch import load_file

    from sspo_exp.sweeps import grid

    longer = [*TINY, "trainer.max_steps=24", "trainer.num_generations=8", "trainer.prompts_per_step=4",
              "trainer.per_device_batch_size=32"]  # fmt: skip  ~0.5 s per step: time to requeue mid-run
    sweep = env / "one.yaml"
    sweep.write_text("grid: [{objective: sspo, gate: atanlog}]\nseeds: [0]\n")
    cut, full = env / "cut", env / "full"
    name = f"sspo-preempt-{os.getpid()}-{int(time.time())}"
    launcher = ["launcher=submitit_slurm", *SLURM_CPU, f"hydra.launcher.name={name}"]
    (job,) = grid.plan(grid.sweep_jobs(grid.load_sweep(sweep), [*longer, f"output_root={cut}"]))
    log = env / "sweep.log"  # a file, not a pipe: a pipe nobody reads while we wait could fill and block the sweep
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sspo_exp.sweeps.grid", str(sweep), *longer,
                                 f"output_root={cut}", *launcher], stdout=out, stderr=subprocess.STDOUT)
    try:
        first = job.run_dir / "checkpoint-2"
        wait_for(first.is_dir, "the SLURM job's first checkpoint", alive=running(proc))
        ((jobid, state),) = _squeue(name)
        assert state == "RUNNING" and not (job.run_dir / "summary.json").exists()
        subprocess.run(["scontrol", "requeue", jobid], check=True, timeout=CEILING)  # what PreemptMode=REQUEUE does
        requeued = time.time()
        # SLURM holds a requeued job back ~2 minutes (BeginTime): once it is pending again, let it start at once (on
        # a slow machine the hold may already be over and the job running again: then there is nothing to do)
        # (`scontrol requeue` counts the restart and leaves RUNNING before it returns: RUNNING now is the 2nd start).
        again = {"PENDING", "RUNNING", "COMPLETED"}
        state = wait_for(lambda: (j := _job(jobid))["Restarts"] == "1" and j["JobState"] in again and j["JobState"],
                         "the requeued job to be pending", alive=running(proc))
        if state == "PENDING":
            start_requeued_now(jobid, requeued)
        # meanwhile the same config, uninterrupted, in this process's own subprocess
        ref = subprocess.run([sys.executable, "-m", "sspo_exp.cli", "train", *longer, f"output_root={full}"],
                             capture_output=True, text=True, timeout=CEILING)  # fmt: skip
        assert ref.returncode == 0, ref.stderr[-3000:]
        proc.wait(timeout=CEILING)  # the sweep returns when its SLURM job has finished
        wait_for(lambda: not _squeue(name), "the job to leave the queue")
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["scancel", "--name", name], timeout=CEILING)  # nothing left behind if the test failed
    assert proc.returncode == 0, log.read_text()[-3000:]
    shown = _job(jobid)
    assert shown["Restarts"] == "1" and shown["JobState"] == "COMPLETED"  # one requeue, then it finished

    a = json.loads((job.run_dir / "summary.json").read_text())
    b = json.loads((full / job.run_id / "summary.json").read_text())
    assert a["resumed_from"] and Path(a["resumed_from"]).name.startswith("checkpoint-")  # it did resume
    assert b["resumed_from"] is None and a["global_step"] == b["global_step"] == 24
    for key in (keys.HELDOUT_BEFORE, keys.HELDOUT, "train_reward_first", "train_reward_last"):
        assert a[key] == b[key], key
    wa, wb = (load_file(d / "checkpoint-24" / "model.safetensors") for d in (job.run_dir, full / job.run_id))
    import torch

    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # bitwise the same policy
