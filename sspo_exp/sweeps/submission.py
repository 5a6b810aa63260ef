"""Watching a SLURM submission: the job id of each queued run, and submitting without waiting for the jobs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from sspo_exp.sweeps.errors import SweepError


class SlurmIdWatcher:
    """Reads the SLURM job id of each queued run as submitit writes it (``<folder>/<array>_<task>/``; the array's task
    index is the job's index in the launch) and reports it, so the run's submission marker carries its job id."""

    def __init__(self, folder: Path, n: int, on_submitted: Callable[[int, str], None], every: float = 1.0):
        self.folder, self.n, self.on_submitted, self.every = folder, n, on_submitted, every
        self._seen: set[int] = set()
        self._stop = threading.Event()
        self.done = threading.Event()  #: set once every job's id was seen
        self._thread = threading.Thread(target=self._loop, name="slurm-ids", daemon=True)
        self._thread.start()

    def _scan(self) -> None:
        for path in self.folder.iterdir() if self.folder.is_dir() else ():
            array, _, task = path.name.partition("_")
            task = task or ("0" if self.n == 1 else "")  # submitit submits a single job as a plain job, not an array
            if array.isdigit() and task.isdigit() and int(task) < self.n and int(task) not in self._seen:
                self._seen.add(int(task))
                self.on_submitted(int(task), path.name)
        if len(self._seen) >= self.n:
            self.done.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every) and len(self._seen) < self.n:
            self._scan()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._scan()


def submit_and_return(launch: Callable[[], Any], watcher: SlurmIdWatcher) -> None:
    """Run ``launch`` (a Hydra submitit launch, which submits the job array and then waits for its results) in a
    daemon thread and return as soon as ``watcher`` has seen every job's id: the jobs are queued in SLURM and run on
    after this process ends. A launch that fails before every id is seen raises here."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            launch()
        except BaseException as e:  # noqa: BLE001 - reported to the caller below
            failure.append(e)

    thread = threading.Thread(target=run, name="sweep-submit", daemon=True)
    thread.start()
    while not watcher.done.wait(0.2):
        if failure or not thread.is_alive():
            break
    watcher.stop()
    if not watcher.done.is_set():
        raise SweepError(f"submission ended before SLURM gave every job an id: {failure[0] if failure else 'no error'}")
