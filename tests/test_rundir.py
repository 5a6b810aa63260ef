"""One run directory (sspo_exp/rundir.py): status from files, markers and leases; stale ones never block a resume."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from sspo_exp import rundir
from sspo_exp.rundir import Lease, RunBusy, RunDir
from waiting import CEILING


def _complete_checkpoint(run: RunDir, step: int) -> None:
    path = run.path / f"checkpoint-{step}"
    path.mkdir(parents=True)
    for name, text in (("trainer_state.json", "{}"), ("model.safetensors", "x"), ("optimizer.pt", "x")):
        (path / name).write_text(text)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_status_follows_the_files(tmp_path):
    run = RunDir(tmp_path, "r")
    assert run.status() == "new"
    (run.path / "checkpoint-2").mkdir(parents=True)  # cut while saving
    assert run.status() == "new"
    _complete_checkpoint(run, 4)
    assert run.status() == "resume" and run.newest_complete_checkpoint().name == "checkpoint-4"
    (run.path / "pruned.json").write_text("{}")  # stopped by an Optuna pruner: not resumed by a relaunch
    assert run.status() == "pruned"
    run.write_summary({"done": True})
    assert run.status() == "done"


def test_a_lease_marks_a_run_running_until_its_holder_dies_or_stops_renewing(tmp_path, monkeypatch):
    run = RunDir(tmp_path, "r")
    _complete_checkpoint(run, 2)
    with Lease(run, renew=0.05):
        assert run.status() == "running"
        with pytest.raises(RunBusy, match="not training it twice"):  # a second trainer of the same run
            rundir._write_json(run.lease_file, {**json.loads(run.lease_file.read_text()), "pid": os.getppid()})
            Lease(run).__enter__()
    assert not run.lease_file.exists() and run.status() == "resume"
    # a killed trainer on this host: its pid is gone -> stale at once
    rundir._write_json(run.lease_file, {"host": socket.gethostname(), "pid": _dead_pid(), "renewed": time.time()})
    assert run.status() == "resume"
    # a trainer on another host that stopped renewing: stale after LEASE_SECONDS
    rundir._write_json(run.lease_file, {"host": "elsewhere", "pid": 1, "renewed": time.time()})
    assert run.status() == "running"
    rundir._write_json(run.lease_file, {"host": "elsewhere", "pid": 1, "renewed": time.time() - rundir.LEASE_SECONDS - 1})
    assert run.status() == "resume"


def test_a_requeued_slurm_job_takes_over_its_own_lease(tmp_path, monkeypatch):
    run = RunDir(tmp_path, "r")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    rundir._write_json(run.lease_file, {"host": "node1", "pid": 1, "job_id": "77", "renewed": time.time()})
    with Lease(run):  # the same job, requeued (possibly on another node): not a second trainer
        assert json.loads(run.lease_file.read_text())["pid"] == os.getpid()


def test_a_submission_marker_is_queued_while_its_job_may_still_run(tmp_path, monkeypatch):
    run = RunDir(tmp_path, "r")
    run.mark_submitted("local")  # no job id: alive while the submitting process is
    assert run.status() == "queued"
    rundir._write_json(run.submitted_file, {"launcher": "local", "job_id": None, "host": socket.gethostname(),
                                            "pid": _dead_pid()})  # fmt: skip
    assert run.status() == "new"  # the sweep was killed: stale
    states = {"12_3": "PENDING", "12_4": None}
    monkeypatch.setattr(rundir, "slurm_state", lambda job_id: states[job_id])
    run.mark_submitted("submitit_slurm", "12_3")
    assert run.status() == "queued" and run.queued()["state"] == "PENDING"
    run.mark_submitted("submitit_slurm", "12_4")  # cancelled or failed: SLURM no longer lists it
    assert run.status() == "new"


def test_a_running_job_keeps_its_marker_so_a_requeued_job_still_counts_as_queued(tmp_path, monkeypatch):
    run = RunDir(tmp_path, "r")
    monkeypatch.setattr(rundir, "slurm_state", lambda job_id: "PENDING")  # preempted and requeued
    run.mark_submitted("submitit_slurm", "12_3")
    with Lease(run):
        assert run.status() == "running"
    assert run.status() == "queued"  # the lease is gone, the job waits in SLURM's queue: do not resubmit it


def test_when_slurm_cannot_be_asked_a_queued_job_is_taken_to_be_alive(tmp_path, monkeypatch):
    run = RunDir(tmp_path, "r")
    run.mark_submitted("submitit_slurm", "12_3")
    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue here
    assert rundir.slurm_state("12_3") == rundir.UNKNOWN and run.status() == "queued"


RACE = """
import os, sys, time
from pathlib import Path
from sspo_exp.rundir import Lease, RunBusy, RunDir

root = Path(sys.argv[1])
run = RunDir(root, "r")
read = RunDir.lease
def slow_read(self):  # a slow shared filesystem: a long gap between reading the lease and writing one
    held = read(self)
    time.sleep(1.0)
    return held
RunDir.lease = slow_read
try:
    with Lease(run):
        (root / f"{os.getpid()}.tried").touch()
        print("trained", flush=True)
        while len(list(root.glob("*.tried"))) < 2:  # hold the lease until the other process has tried (an event,
            time.sleep(0.05)                        # not a guessed duration)
except RunBusy:
    (root / f"{os.getpid()}.tried").touch()
    print("busy", flush=True)
"""


def test_two_jobs_starting_together_never_both_take_the_lease(tmp_path):
    """The check and the write of a lease are one step: of two processes starting at once, one trains."""
    (tmp_path / "r").mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outcomes = sorted(p.communicate(timeout=CEILING)[0].strip() for p in procs)
    assert outcomes == ["busy", "trained"]


def test_a_lease_keeps_its_start_time_across_renewals_and_a_refusal_says_who_since_when_and_until_when(tmp_path):
    import json

    from waiting import wait_for

    run = RunDir(tmp_path, "r")
    run.path.mkdir()
    with Lease(run, renew=0.05) as lease:
        first = json.loads(run.lease_file.read_text())
        renewed = wait_for(lambda: (d := json.loads(run.lease_file.read_text()))["renewed"] > first["renewed"] and d,
                           "a renewal of the lease")
        assert renewed["started"] == first["started"] == lease.started
    held = {**first, "host": "node-7", "pid": 4242, "job_id": "12_3", "started": 0.0, "renewed": 1000.0}
    busy = RunBusy("r", held)
    assert str(busy).startswith("run r is being trained by node-7:4242, SLURM job 12_3 since 1970-01-01 00:00:00 UTC;")
    assert f"goes stale at 1970-01-01 00:{int(1000 + rundir.LEASE_SECONDS) // 60:02d}:" in str(busy)
    assert "since an unknown time" in str(RunBusy("r", {"host": "h", "pid": 1, "renewed": 1.0}))  # an older lease
