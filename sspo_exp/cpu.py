"""How many torch threads a CPU run should use: the cores this process may run on, less what other processes keep busy.

Torch's default (one intra-op thread per core) is right on an idle machine, but when other CPU-bound processes share
the cores its OpenMP threads spin against them: a default job measured 238 s for 100 cold-start steps with two other
busy processes on 2 cores, against 16 s for the next 100 once they had finished. So a CPU run asks the machine:
``usable`` = the cores in its affinity mask (a SLURM or taskset allocation, a container's cpuset), ``busy`` = the
cores the machine keeps busy *now* (its CPU time over a look of ``SAMPLE_SECONDS`` while this process sleeps, from
``/proc/stat``; rounded), and uses ``max(1, min(usable, usable - busy))`` threads when it may use the whole machine
(else its ``usable`` cores: the busy cores are the machine's). A thread count the user set (``OMP_NUM_THREADS``)
always wins. Not the 1-minute load average: it lags by a minute, so it counted a run that had just ended as busy
(a job started right after another got one thread on an idle machine) and missed a load that had just begun (two
threads against two busy processes); it remains the fallback where there is no ``/proc/stat``. When every core is busy, :func:`thread_plan` gives the
cold start all usable cores with passive OpenMP waiting (set before torch loads, :func:`prepare_openmp`) and the rest
of the run one thread (docs/training.md, "Time").
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: How long a CPU run watches the machine before choosing its thread count (seconds)
SAMPLE_SECONDS = 0.3


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_times(stat: str = "/proc/stat") -> tuple[int, int]:
    """The machine's ``(total, idle)`` CPU time in clock ticks since boot, all cores (``idle`` includes I/O wait)."""
    with open(stat) as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(ticks), ticks[3] + ticks[4]


def busy_cores(seconds: float = SAMPLE_SECONDS, times=cpu_times, cores: int | None = None) -> int:
    """Cores the machine keeps busy now: its non-idle share of CPU time over ``seconds`` (this process sleeping), in
    cores, rounded. Where there is no ``/proc/stat``: the 1-minute load average, rounded (0 where there is none)."""
    try:
        total0, idle0 = times()
        time.sleep(seconds)
        total1, idle1 = times()
    except (OSError, ValueError, IndexError):
        try:
            return round(os.getloadavg()[0])
        except (AttributeError, OSError):
            return 0
    elapsed = total1 - total0
    if elapsed <= 0:
        return 0
    cores = cores or os.cpu_count() or 1
    return round(cores * (elapsed - (idle1 - idle0)) / elapsed)


def cpu_threads(usable: int | None = None, busy: int | None = None, environ=os.environ,
                machine: int | None = None) -> int:
    """The torch thread count of a CPU run (see the module docstring). The busy cores are the whole machine's, so they
    are subtracted only when this process may use every core (``machine``: the machine's core count): inside a SLURM
    allocation or a cpuset, other tenants' work says nothing about the cores this process was given."""
    usable = usable_cores() if usable is None else usable
    fixed = _fixed_threads(usable, environ, machine)
    if fixed is not None:
        return fixed
    return _free(usable, busy_cores() if busy is None else busy)


def _free(usable: int, busy: int) -> int:
    """The usable cores no other work keeps busy (at least one)."""
    return max(1, min(usable, usable - busy))


def _fixed_threads(usable: int, environ, machine: int | None) -> int | None:
    """The thread count when the machine's load does not decide it: the user's ``OMP_NUM_THREADS``, or the cores of an
    allocation (fewer usable cores than the machine has); None when it does."""
    user = environ.get("OMP_NUM_THREADS", "")
    if user.isdigit() and int(user) >= 1:
        return int(user)
    machine = (os.cpu_count() or usable) if machine is None else machine
    return max(1, usable) if usable < machine else None


@dataclass(frozen=True)
class ThreadPlan:
    """The torch threads of a CPU run: ``stage`` for its cold start (one long compute-bound loop), ``train`` for the
    rest; ``passive``: OpenMP's waiting threads sleep (``OMP_WAIT_POLICY=PASSIVE``, set before torch loads)."""

    stage: int
    train: int
    passive: bool = False


def thread_plan(usable: int | None = None, busy: int | None = None, environ=os.environ,
                machine: int | None = None) -> ThreadPlan:
    """:func:`cpu_threads` for the run, except on a machine whose every core is busy (``busy >= usable >= 2``): there
    the cold start uses all ``usable`` threads with passive waiting. One thread gets a fair share of 2/3 of a core
    against two busy processes on 2 cores; two spinning threads lose their barriers to the other processes (a cold-start
    step 414 ms against 152 ms); two *sleeping* ones get more of the machine (120 ms). A sharded cold start
    (``model.cold_start.shards``, ``tiny-fast``) turns the ``stage`` cores into one process of one thread per shard,
    which meet once a step (``sspo_exp.stages.data_parallel``). The rest of the run keeps one thread: its many small
    operations pay for every wake-up (measured: docs/training.md)."""
    usable = usable_cores() if usable is None else usable
    fixed = _fixed_threads(usable, environ, machine)
    if fixed is not None:
        return ThreadPlan(fixed, fixed)
    busy = busy_cores() if busy is None else busy
    n = _free(usable, busy)
    return ThreadPlan(usable, n, True) if busy >= usable >= 2 else ThreadPlan(n, n)


def prepare_openmp(plan: ThreadPlan, environ=os.environ, torch_loaded: bool | None = None) -> ThreadPlan:
    """Set OpenMP's wait policy of ``plan`` before torch loads (libgomp reads it once, when it loads) and return the
    plan to follow: ``plan``, or one thread count throughout when passive waiting cannot be had (torch already loaded,
    or the user's ``OMP_WAIT_POLICY`` says otherwise), since spinning threads are the worst case."""
    if not plan.passive:
        return plan
    loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    if not loaded:
        environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if environ["OMP_WAIT_POLICY"].upper() == "PASSIVE":
            return plan
    return ThreadPlan(plan.train, plan.train)
