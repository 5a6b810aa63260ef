"""On a real SLURM (slurm/local/start.sh): every sweep point is ONE job of 2 processes (gloo on the CPU), all ranks of
one run (sspo_exp/sweeps/distributed.py). A 2-point sweep is queued with --no-wait, a relaunch while its jobs are
queued or running submits nothing, and each run trains at world size 2 (run.json and the W&B config say so).
A rank that fails ends its job at once (the sweep names it); an Optuna trial runs as one 2-rank job; a requeued
2-rank job resumes. The node has 2 cores and each job takes both,
so jobs run one after the other: ~75 s for the file on an idle machine (35 + 16 + 24 s)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sspo_exp import keys
from sspo_exp.sweeps.distributed import rendezvous_port

from sweeps_helpers import TINY, set_env, slurm_reason, start_requeued_now
from waiting import CEILING, wait_for

REASON = slurm_reason()
pytestmark = [pytest.mark.slurm, pytest.mark.slow,
              pytest.mark.skipif(REASON is not None, reason=f"SLURM not reachable: {REASON}")]  # fmt: skip

ROOT = Path(__file__).resolve().parent.parent
#: Two ranks per job on the CPU: gloo (trainer.use_cpu=true), one core each; 8 completions per step over 2 ranks.
TWO_RANKS = ["hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=0", "hydra.launcher.tasks_per_node=2",
             "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=4", "trainer.use_cpu=true",
             "trainer.per_device_batch_size=2"]  # fmt: skip


@pytest.fixture
def env(tmp_path, monkeypatch):
    set_env(monkeypatch, tmp_path)
    monkeypatch.setenv("SSPO_EXP_ENV_SH", str(ROOT / "slurm" / "env.sh"))
    monkeypatch.chdir(tmp_path)  # sbatch runs jobs in the submission directory
    return tmp_path


def _sweep(args: list[str], timeout: float = CEILING) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sspo_exp.sweeps.grid", *args], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _two_rank_sweep(env: Path, tag: str, grid: str, *overrides: str) -> tuple[Path, str, list[str]]:
    """A one-seed sweep file of ``grid`` under ``env`` and the arguments that launch it as 2-rank SLURM jobs named
    after ``tag``: (the runs' output_root, the job name, the arguments)."""
    runs, name = env / "runs", f"sspo-dist-{tag}{os.getpid()}-{int(time.time())}"
    sweep = env / "sweep.yaml"
    sweep.write_text(f"grid: [{grid}]\nseeds: [0]\n")
    return runs, name, [str(sweep), *TINY, *overrides, f"output_root={runs}", "launcher=submitit_slurm", *TWO_RANKS,
                        f"hydra.launcher.name={name}"]  # fmt: skip


def _returned_without_summary(runs: Path) -> bool:
    """Some job's rank 0 has returned (submitit saved its result) and its run wrote no summary: the run failed, and its
    other rank may be waiting out the 30-minute rendezvous timeout for it. (A run's summary is written before rank 0
    returns, so the counts are never out of step for a run that finished.)"""
    returned = len(list(runs.glob(".hydra/multirun-*/.submitit/*/*_0_result.pkl")))
    return returned > len(list(runs.glob("*/summary.json")))


def _job_logs(runs: Path, lines: int = 15) -> str:
    """The last lines of every task's submitit log, to say why a job did not finish."""
    parts = []
    for log in sorted(runs.glob(".hydra/multirun-*/.submitit/*/*_log.*")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name}\n" + "\n".join(tail))
    return "\n".join(parts)


def test_two_point_sweep_runs_each_point_as_one_two_process_job(env):
    from sspo_exp.report.wandb_offline import read_segment

    runs, name, args = _two_rank_sweep(env, "", "{objective: [grpo, gspo]}")
    try:
        dry = _sweep([*args, "--dry-run"])
        assert dry.returncode == 0, dry.stderr[-2000:]
        assert dry.stdout.count("[2 ranks, CPU, ddp, 1 h limit; ~") == 2  # the job shape of each point
        first = _sweep([*args, "--no-wait"])
        assert first.returncode == 0, first.stderr[-3000:]
        assert "queued 2 jobs" in first.stdout and "squeue" in first.stdout  # it returned, saying how to watch
        markers = [json.loads(p.read_text()) for p in runs.glob("*/submitted.json")]
        assert len(markers) == 2 and all(m["job_id"] for m in markers)
        again = _sweep([*args, "--no-wait"])  # while the jobs are queued or running: nothing is submitted twice
        assert again.returncode == 0 and "0 to run" in again.stdout, again.stdout[-2000:]
        assert "queued" not in again.stdout.split("0 to run")[-1]
        try:
            wait_for(lambda: len(list(runs.glob("*/summary.json"))) == 2, "both runs to finish",
                     alive=lambda: not _returned_without_summary(runs))  # fmt: skip
        except AssertionError as e:
            raise AssertionError(f"{e}\n{_job_logs(runs)}") from None
    finally:
        subprocess.run(["scancel", "--name", name], timeout=CEILING)
    for run in (p.parent for p in runs.glob("*/summary.json")):
        info = json.loads((run / "run.json").read_text())
        assert info["trl"]["world_size"] == 2 and info["trl"]["gradient_accumulation_steps"] == 2
        assert json.loads((run / "summary.json").read_text())["global_step"] == 4
        (segment,) = [read_segment(d) for d in (run / "wandb").glob("offline-run-*")]  # rank 0 alone opened W&B
        assert segment.config["trl"]["world_size"] == 2
    logs = "".join(p.read_text() for p in runs.glob(".hydra/multirun-*/.submitit/*/*_log.out"))
    assert logs.count("rank 1 of 2") == 2 and logs.count("rank 0 of 2") == 2  # submitit's tasks were the ranks


@contextlib.contextmanager
def _ports_taken(count: int = 8):
    """Listen on the rendezvous ports of the next ``count`` SLURM job ids, as another program on the node might."""
    last = int(subprocess.run(["sbatch", "--parsable", "--wrap", "true", "--output", "/dev/null"], capture_output=True,
                              text=True, timeout=CEILING, check=True).stdout.split(";")[0])  # fmt: skip
    held = []
    try:
        for job_id in range(last + 1, last + 1 + count):
            sock = socket.socket()
            sock.bind(("0.0.0.0", rendezvous_port(str(job_id))))
            sock.listen()
            held.append(sock)
        yield
    finally:
        for sock in held:
            sock.close()


def test_a_rank_that_fails_ends_its_job_at_once_and_the_sweep_names_it(env):
    """Rank 0 cannot open the rendezvous: its port is taken (what hung a CI run for 30 minutes under submitit's own
    port). Its task exits 1, srun ends rank 1 instead of leaving it in the rendezvous until torch's 30-minute timeout,
    the job ends FAILED, and the blocking sweep names the run, the rank, the error and the log."""
    runs, name, args = _two_rank_sweep(env, "fail-", "{objective: grpo}")
    try:
        with _ports_taken():
            out = _sweep(args, timeout=600)  # rank 1 alone would wait 1800 s
        assert out.returncode == 1, out.stderr[-3000:]
        failed = re.search(r"FAILED grpo-s0-\w+: RankFailed: .*EADDRINUSE.* \(SLURM job (\S+), rank 0; log (\S+)\)",
                           out.stderr)  # fmt: skip
        assert failed, out.stderr[-3000:]
        state = wait_for(lambda: (s := _job(failed[1])["JobState"]) not in ("RUNNING", "COMPLETING") and s,
                         "the job to end")  # fmt: skip
        assert state == "FAILED", _job(failed[1])
        assert not list(runs.glob("*/summary.json"))
        assert not list(runs.glob(".hydra/multirun-*/.submitit/*/*_1_result.pkl"))  # rank 1 was ended, not finished
        assert "EADDRINUSE" in Path(failed[2]).read_text()
    finally:
        subprocess.run(["scancel", "--name", name], timeout=CEILING)


def test_optuna_trial_runs_as_one_two_process_job_and_completes(env):
    """A worker in this process asks the study for a trial; the trial trains as ONE SLURM job of 2 ranks, whose rank 0
    reports held-out accuracy to the trial through the journal (pruning's path), and the trial completes."""
    import optuna

    from sspo_exp.sweeps import optuna_cli

    study = f"dist-{os.getpid()}-{int(time.time())}"
    space = optuna_cli.check_space({
        "study": study, "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "median", "n_startup_trials": 5},
        "overrides": [*TINY, f"output_root={env / 'runs'}", "objective=sspo", "gate=atanlog", "trainer.use_cpu=true",
                      "trainer.per_device_batch_size=2", "trainer.eval_steps=2"],
        "params": {"gate.tau_pos": {"low": 0.1, "high": 1.0}},
    })  # fmt: skip
    storage = str(env / "optuna" / "study.journal")
    optuna_cli.create(space, storage)
    launcher = [o for o in TWO_RANKS if o.startswith("hydra.launcher.")] + [f"hydra.launcher.name={study}"]
    try:
        ran = optuna_cli.worker(study, storage, n_trials=1, trial_jobs="submitit_slurm", launcher_overrides=launcher)
    finally:
        subprocess.run(["scancel", "--name", study], timeout=CEILING)
    (trial,) = optuna.load_study(study_name=study, storage=optuna_cli.open_storage(storage)).trials
    assert ran == 1 and trial.state.name == "COMPLETE", trial.state
    run = env / "runs" / trial.user_attrs["run_id_seed0"]
    assert json.loads((run / "run.json").read_text())["trl"]["world_size"] == 2
    assert trial.value == json.loads((run / "summary.json").read_text())[keys.HELDOUT]
    assert sorted(trial.intermediate_values) == [2, 4]  # rank 0 reported from inside the job, at each held-out eval


def _job(jobid: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", jobid], capture_output=True, text=True, timeout=CEILING,
                         check=True)  # fmt: skip
    return dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)


def _known(jobid: str) -> bool:
    """SLURM still knows the job (pending, running or recently ended)."""
    return subprocess.run(["scontrol", "-o", "show", "job", jobid], capture_output=True, timeout=CEILING).returncode == 0


@pytest.mark.xfail(strict=False, reason="seen once in a full CI run on the one-node local SLURM: after `scontrol requeue` "
                   "the 2-rank job never ran again and vanished from slurmctld (no second segment, no summary); it "
                   "passes alone (24 s idle). Kept running so it is seen; the wait below fails fast instead of hanging")
def test_a_requeued_two_process_job_resumes_from_its_checkpoint(env):
    # trainer.max_steps=16: time to requeue after the first checkpoint (save_steps=2)
    runs, name, args = _two_rank_sweep(env, "requeue-", "{objective: grpo}", "trainer.max_steps=16")
    try:
        out = _sweep([*args, "--no-wait"])
        assert out.returncode == 0, out.stderr[-3000:]
        (marker,) = runs.glob("*/submitted.json")
        run, jobid = marker.parent, json.loads(marker.read_text())["job_id"]
        wait_for((run / "checkpoint-2").is_dir, "the job's first checkpoint")
        assert not (run / "summary.json").exists()
        subprocess.run(["scontrol", "requeue", jobid], check=True, timeout=CEILING)  # what PreemptMode=REQUEUE does
        requeued = time.time()
        again = {"PENDING", "RUNNING", "COMPLETED"}  # not REQUEUED/COMPLETING: the requeue is still under way
        state = wait_for(lambda: (j := _job(jobid))["Restarts"] == "1" and j["JobState"] in again and j["JobState"],
                         "the job to be requeued")
        if state == "PENDING":  # SLURM holds a requeued job back ~2 minutes (BeginTime): start it now
            start_requeued_now(jobid, requeued)
        wait_for((run / "summary.json").exists, "the requeued job to finish", ceiling=min(CEILING, 900),
                 alive=lambda: _known(jobid))  # fmt: skip
    finally:
        subprocess.run(["scancel", "--name", name], timeout=CEILING)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from"] and Path(summary["resumed_from"]).name.startswith("checkpoint-")  # it resumed
    assert summary["global_step"] == 16 and json.loads((run / "run.json").read_text())["trl"]["world_size"] == 2
