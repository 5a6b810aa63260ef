"""The torch thread count of a CPU run (sspo_exp/cpu.py): the free cores, at least one, the user's choice first."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sspo_exp.cpu import ThreadPlan, busy_cores, cpu_threads, prepare_openmp, thread_plan, usable_cores
from sspo_exp.env_cli import cgroup_cpus


@pytest.mark.parametrize("usable, busy, expected", [
    (2, 0, 2),   # idle laptop: torch's own default
    (2, 2, 1),   # two other CPU-bound processes on 2 cores: one thread, no spinning against them
    (2, 5, 1),   # overloaded: still one
    (8, 3, 5),   # a node shared with three busy processes
    (4, -1, 4),  # never more than the affinity mask allows
])  # fmt: skip
def test_threads_are_the_free_cores_and_at_least_one(usable, busy, expected):
    assert cpu_threads(usable, busy, environ={}, machine=usable) == expected


def test_an_allocation_of_part_of_the_machine_ignores_the_machines_load():
    """A SLURM allocation or cpuset of 4 of 64 cores: other tenants' load (30) does not cut its threads."""
    assert cpu_threads(4, 30, environ={}, machine=64) == 4


def test_the_users_thread_count_wins():
    assert cpu_threads(2, 2, environ={"OMP_NUM_THREADS": "3"}, machine=2) == 3
    assert cpu_threads(2, 0, environ={"OMP_NUM_THREADS": "0"}, machine=2) == 2  # not a valid count: ignored
    assert cpu_threads(2, 0, environ={"OMP_NUM_THREADS": "x"}, machine=2) == 2


def test_usable_cores_follows_the_affinity_mask():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no affinity masks on this OS")
    mask = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(mask)})
        assert usable_cores() == 1
    finally:
        os.sched_setaffinity(0, mask)


def _ticks(*samples):
    """A stand-in for /proc/stat: successive (total, idle) readings of the machine's CPU time."""
    it = iter(samples)
    return lambda: next(it)


@pytest.mark.parametrize("before, after, expected", [
    ((1000, 800), (1200, 1000), 0),  # 2 cores idle for 100 ticks each: nothing busy
    ((1000, 800), (1200, 800), 2),   # both cores working the whole look (two spinning processes that just started)
    ((1000, 800), (1200, 900), 1),   # one core's worth of work
    ((1000, 800), (1200, 870), 1),   # 1.3 cores rounds to 1
    ((1000, 800), (1000, 800), 0),   # no time passed: nothing measured, nothing busy
])  # fmt: skip
def test_busy_cores_are_the_machines_work_during_the_look_not_a_lagging_average(before, after, expected):
    assert busy_cores(0.0, times=_ticks(before, after), cores=2) == expected


def test_busy_cores_without_proc_stat_fall_back_to_the_load_average(monkeypatch):
    def missing():
        raise OSError("no /proc/stat")

    monkeypatch.setattr(os, "getloadavg", lambda: (1.6, 0.0, 0.0))
    assert busy_cores(0.0, times=missing, cores=2) == 2


def test_busy_cores_of_this_machine_are_a_core_count():
    assert 0 <= busy_cores(0.05) <= (os.cpu_count() or 1)


@pytest.mark.parametrize("usable, busy, machine, expected", [
    (2, 0, 2, ThreadPlan(2, 2)),  # idle: torch's default
    (2, 1, 2, ThreadPlan(1, 1)),  # one core busy: the free one
    (2, 2, 2, ThreadPlan(2, 1, True)),  # every core busy: the cold start's threads sleep while they wait
    (2, 5, 2, ThreadPlan(2, 1, True)),
    (1, 3, 1, ThreadPlan(1, 1)),  # one core: nothing to share
    (4, 30, 64, ThreadPlan(4, 4)),  # an allocation (SLURM, cpuset): its cores are the run's
])  # fmt: skip
def test_only_a_machine_whose_every_core_is_busy_gets_passive_cold_start_threads(usable, busy, machine, expected):
    assert thread_plan(usable, busy, environ={}, machine=machine) == expected


def test_the_users_thread_count_is_used_throughout():
    assert thread_plan(2, 2, environ={"OMP_NUM_THREADS": "2"}, machine=2) == ThreadPlan(2, 2)


def test_passive_waiting_is_set_before_torch_loads_or_not_used_at_all():
    env = {}
    assert prepare_openmp(ThreadPlan(2, 1, True), env, torch_loaded=False) == ThreadPlan(2, 1, True)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    # torch already loaded (libgomp read its policy): two spinning threads would be the worst case, so one throughout
    env = {}
    assert prepare_openmp(ThreadPlan(2, 1, True), env, torch_loaded=True) == ThreadPlan(1, 1) and env == {}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}  # the user's policy wins, and then so does one thread
    assert prepare_openmp(ThreadPlan(2, 1, True), env, torch_loaded=False) == ThreadPlan(1, 1)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}
    env = {}
    assert prepare_openmp(ThreadPlan(2, 2), env, torch_loaded=False) == ThreadPlan(2, 2) and env == {}


def test_the_train_command_chooses_its_threads_before_torch_loads():
    # run in a fresh interpreter: the cli module and the plan's check must not import torch
    code = ("import sys; from sspo_exp.train import cli; from sspo_exp.cpu import thread_plan, prepare_openmp; "
            "assert 'torch' not in sys.modules, 'torch loaded before the thread plan'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _wait_until_spinning(procs, cpu_seconds: float = 0.2, timeout: float = 60.0) -> None:
    """Until each process has used ``cpu_seconds`` of CPU (it is in its busy loop), however slow its start-up; a
    process that never gets there fails the test after ``timeout``, saying so."""
    tick, deadline = os.sysconf("SC_CLK_TCK"), time.monotonic() + timeout
    while True:
        used = []
        for p in procs:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
            used.append((int(fields[11]) + int(fields[12])) / tick)  # utime + stime (fields 14 and 15 of proc(5))
        if min(used) >= cpu_seconds:
            return
        assert time.monotonic() < deadline, f"busy processes did not start spinning: CPU seconds {used}"
        time.sleep(0.05)


def test_a_run_started_while_every_core_is_busy_sees_them_busy():
    # the real measurement: one busy process per core, then `sspo-exp`'s entry runs a command that works for half a
    # second (a run's imports and Hydra's composition) and chooses its threads. A look that counted this process's own
    # start-up as the others' would see fewer busy cores and give the cold start one process instead of the passive
    # one per shard (seen: the loaded default job ~10% slower)
    usable = usable_cores()
    quota = cgroup_cpus()
    if usable != (os.cpu_count() or 1) or usable < 2 or (quota and quota < usable):
        pytest.skip("one core, an allocation of part of the machine, or a CPU quota: /proc/stat is not this run's")
    code = ("import time; from sspo_exp import cli, cpu\n"
            "def main():\n    t = time.monotonic()\n    while time.monotonic() - t < 0.5: pass\n"
            "    print(cpu.thread_plan())\n    return 0\n"
            "cli.main = main; cli.entry()")  # fmt: skip
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(usable)]
    try:
        _wait_until_spinning(spinners)
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    assert done.stdout.strip() == repr(ThreadPlan(usable, 1, True)), done.stdout + done.stderr
