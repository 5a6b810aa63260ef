"""How many torch threads a CPU run should use: the cores this process may run on, less what other processes keep busy.

Torch's default (one intra-op thread per core) is right on an idle machine, but when other CPU-bound processes share
the cores its OpenMP threads spin against them: a default job measured 238 s for 100 cold-start steps with two other
busy processes on 2 cores, against 16 s for the next 100 once they had finished. So a CPU run asks the machine:
``usable`` = the cores in its affinity mask (a SLURM or taskset allocation, a container's cpuset), ``busy`` = the
1-minute load average (runnable processes, rounded; our own process has not started computing yet), and uses
``max(1, min(usable, usable - busy))`` threads when it may use the whole machine (else its ``usable`` cores: the
load average is the machine's). A thread count the user set (``OMP_NUM_THREADS``) always wins.
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def busy_cores() -> int:
    """Cores other processes keep busy now: the 1-minute load average, rounded (0 where the OS has none)."""
    try:
        return round(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0


def cpu_threads(usable: int | None = None, busy: int | None = None, environ=os.environ,
                machine: int | None = None) -> int:
    """The torch thread count of a CPU run (see the module docstring). The load average is the whole machine's, so it
    is subtracted only when this process may use every core (``machine``: the machine's core count): inside a SLURM
    allocation or a cpuset, other tenants' load says nothing about the cores this process was given."""
    user = environ.get("OMP_NUM_THREADS", "")
    if user.isdigit() and int(user) >= 1:
        return int(user)
    usable = usable_cores() if usable is None else usable
    machine = (os.cpu_count() or usable) if machine is None else machine
    if usable < machine:
        return max(1, usable)
    busy = busy_cores() if busy is None else busy
    return max(1, min(usable, usable - busy))
