"""One torch thread count per job, for launchers that run several jobs on one machine (conf/launcher/local_parallel.yaml).

Two jobs with one thread each use two cores; two jobs with torch's default (one thread per core each) would fight
over the same two cores. The count is set when the job starts, in the job's own process: ``torch.set_num_threads``
for torch itself, and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` for libraries whose
thread pools start later in that process.
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

try:  # a Hydra callback, like sspo_exp.sweeps.preemption.ExitOnSigterm
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra-core is a dependency
    Callback = object


def check_threads(threads: object) -> int:
    """``threads`` if it is an integer >= 1, else a ValueError naming the field."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"hydra.callbacks.torch_threads.threads must be an integer >= 1, got {threads!r}")
    return threads


def set_threads(threads: int) -> None:
    """Limit this process to ``threads`` torch intra-op threads (and the thread variables of later libraries)."""
    threads = check_threads(threads)
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


class TorchThreads(Callback):
    """Hydra callback: :func:`set_threads` at the start of every job (``hydra.callbacks.torch_threads``)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = check_threads(threads)  # checked where the sweep starts, before any job runs

    def on_job_start(self, config, **kwargs) -> None:
        set_threads(self.threads)
