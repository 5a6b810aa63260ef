"""One run directory: where a run's files live, and what state it is in.

Training, sweeps and ``sspo-exp eval`` all ask this module; nobody else globs a run directory.

Layout of ``${output_root}/<run_id>/``::

    config.yaml            the resolved config (written at the start)
    run.json               identity and provenance: run id, group, the code's version and commit
    submitted.json         written by a sweep when it queues the run (launcher, SLURM job id once known)
    lease.json             renewed every LEASE_RENEW s by the live training process (host, pid, SLURM job id)
    lease.json.lock        the file lock under which a starting process checks and takes the lease
    checkpoint-N/          TRL checkpoints (model, optimizer, scheduler, RNG, trainer state)
    wandb/                 the W&B run (offline by default)
    eval_before/<b>.json   training's evaluation of the initial policy   (keys.BEFORE)
    eval/<b>.json          training's evaluation of the trained policy   (keys.AFTER)
    reeval/<profile>/<b>.json   ``sspo-exp eval`` of the run: beside training's results, never over them
    pruned.json            an Optuna pruner stopped the run (sspo_exp/sweeps/pruning.py)
    summary.json           written last: the run is done

Status (:meth:`RunDir.status`): ``done`` (summary.json) > ``pruned`` (pruned.json: an Optuna pruner stopped it) >
``running`` (a fresh lease) > ``queued`` (a submission
marker whose job is still pending or running in SLURM, or whose submitting process is still alive) > ``resume`` (a
complete checkpoint) > ``new``. A marker or lease left by a killed or cancelled job goes stale by itself (the lease
expires; SLURM no longer knows the job; the submitting process is gone), so it never blocks a resume.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A lease not renewed for this long belongs to a dead process.
LEASE_SECONDS = 120.0
#: How often the live process renews it.
LEASE_RENEW = 20.0
STATUSES = ("new", "resume", "queued", "running", "pruned", "done")
#: SLURM states of a job that will still run or is running (squeue's %T).
SLURM_ALIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
               "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "PREEMPTED"}  # fmt: skip


#: The run-directory file that marks a run an Optuna pruner stopped (``RunDir.mark_pruned``).
PRUNED_FILE = "pruned.json"


def _write_json(path: Path, data: dict) -> None:
    """Whole or absent: written beside and renamed, so a kill never leaves a cut file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def slurm_job_id() -> str | None:
    """This process's SLURM job id (``123`` or, in an array, ``123_4``), None outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


#: ``slurm_state`` when SLURM cannot be asked (no squeue here, slurmctld down, a timeout): the job may still run.
UNKNOWN = "UNKNOWN"


def slurm_state(job_id: str) -> str | None:
    """squeue's state of ``job_id`` (``PENDING``, ``RUNNING``, …); None when SLURM no longer knows the job;
    :data:`UNKNOWN` when SLURM could not be asked (then the job is taken to be alive: never resubmit on doubt)."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    if out.returncode != 0:
        return None if "invalid job id" in (out.stderr or "").lower() else UNKNOWN
    states = out.stdout.split()
    return states[0] if states else None


def _pid_alive(host: str | None, pid: Any) -> bool | None:
    """True/False for a process on this host; None (unknown) for another host's."""
    if host != socket.gethostname() or not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunDir:
    """The directory of run ``run_id`` under ``root`` (``output_root``)."""

    root: Path
    run_id: str

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())

    # ------------------------------------------------------------------ layout
    @property
    def path(self) -> Path:
        return self.root / self.run_id

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def info_file(self) -> Path:
        return self.path / "run.json"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    @property
    def submitted_file(self) -> Path:
        return self.path / "submitted.json"

    @property
    def lease_file(self) -> Path:
        return self.path / "lease.json"

    def results_dir(self, stage: str) -> Path:
        """Training's own evaluation results of ``stage`` (``keys.AFTER`` / ``keys.BEFORE``)."""
        return self.path / stage

    def write_readme(self, text: str) -> Path:
        """The run folder's README.md (what the run is, how to resume and report: ``sspo_exp.train.run_card``)."""
        path = self.path / "README.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        return path

    def mark_pruned(self, mark: dict) -> Path:
        """Mark the run as stopped by an Optuna pruner (``pruned.json``: study, trial, step, accuracy), atomically."""
        path = self.path / PRUNED_FILE
        _write_json(path, mark)
        return path

    def write_result(self, stage: str, name: str, record: dict) -> Path:
        """Write one result file of training's own evaluation (``<stage>/<name>.json``) atomically."""
        path = self.results_dir(stage) / f"{name}.json"
        _write_json(path, record)
        return path

    def reeval_dir(self, profile_id: str) -> Path:
        """Where ``sspo-exp eval`` of this run writes, per evaluation profile: beside training's results."""
        return self.path / "reeval" / profile_id

    @classmethod
    def of(cls, path: str | Path) -> RunDir:
        path = Path(path).expanduser().resolve()
        return cls(path.parent, path.name)

    @classmethod
    def all_under(cls, root: str | Path) -> list[RunDir]:
        """Every run directory directly under ``root`` (``output_root``), by run id."""
        root = Path(root).expanduser()
        found = [cls(root, p.name) for p in sorted(root.iterdir()) if p.is_dir()] if root.is_dir() else []
        return [r for r in found if r.is_run()]

    def is_run(self) -> bool:
        """A run directory: it holds the config ``sspo-exp train`` writes first."""
        return self.config_file.is_file()

    def info(self) -> dict:
        return _read_json(self.info_file) or {}

    def summary(self) -> dict | None:
        return _read_json(self.summary_file)

    def write_info(self, info: dict) -> None:
        _write_json(self.info_file, info)

    def write_summary(self, summary: dict) -> None:
        _write_json(self.summary_file, summary)

    # ------------------------------------------------------------------ checkpoints
    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every ``checkpoint-N`` directory, newest first."""
        found = []
        for path in self.path.glob("checkpoint-*"):
            suffix = path.name.removeprefix("checkpoint-")
            if path.is_dir() and suffix.isdigit():
                found.append((int(suffix), path))
        return sorted(found, reverse=True)

    def newest_complete_checkpoint(self, quiet: bool = False) -> Path | None:
        """The highest-step complete checkpoint (incomplete ones, cut by a kill while saving, are skipped)."""
        for _, path in self.checkpoints():
            if checkpoint_is_complete(path):
                return path
            if not quiet:
                print(f"skipping incomplete checkpoint {path} (cut while saving)", flush=True)
        return None

    # ------------------------------------------------------------------ status
    def lease(self) -> dict | None:
        """The lease if it is fresh (its holder is alive), else None."""
        lease = _read_json(self.lease_file)
        if not lease:
            return None
        if _pid_alive(lease.get("host"), lease.get("pid")) is False:
            return None
        return lease if time.time() - float(lease.get("renewed", 0)) < LEASE_SECONDS else None

    def queued(self) -> dict | None:
        """The submission marker if its job may still run: SLURM still lists it, or (no job id yet) the submitting
        process is alive; else None (stale: cancelled, failed, or the sweep was killed before submitting)."""
        marker = _read_json(self.submitted_file)
        if not marker:
            return None
        if marker.get("job_id"):
            state = slurm_state(marker["job_id"])
            return {**marker, "state": state} if state in SLURM_ALIVE or state == UNKNOWN else None
        return marker if _pid_alive(marker.get("host"), marker.get("pid")) else None

    def status(self) -> str:
        """One of :data:`STATUSES` (see the module docstring for the order)."""
        if self.summary_file.exists():
            return "done"
        if (self.path / "pruned.json").exists():  # an Optuna pruner stopped it on purpose (sspo_exp/sweeps/pruning.py)
            return "pruned"
        if self.lease():
            return "running"
        if self.queued():
            return "queued"
        return "resume" if self.newest_complete_checkpoint(quiet=True) else "new"

    def mark_submitted(self, launcher: str, job_id: str | None = None) -> None:
        """Written by a sweep for each run it queues (and again with the SLURM job id once SLURM gave one)."""
        _write_json(self.submitted_file, {"launcher": launcher, "job_id": job_id, "host": socket.gethostname(),
                                          "pid": os.getpid(), "time": time.time()})  # fmt: skip


class Lease:
    """Held by the process that trains a run: written at start, renewed every ``LEASE_RENEW`` s, removed at exit.

    Refuses to start when another live process holds the run (two jobs would train into one directory), except a
    requeued SLURM job taking over its own earlier lease (same job id).
    """

    def __init__(self, run: RunDir, renew: float = LEASE_RENEW):
        self.run, self.renew = run, renew
        self.started = time.time()  # kept in every renewal: a refused process can say since when the run is held
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> None:
        _write_json(self.run.lease_file, {"host": socket.gethostname(), "pid": os.getpid(), "job_id": slurm_job_id(),
                                          "started": self.started, "renewed": time.time()})  # fmt: skip

    def __enter__(self) -> Lease:
        from filelock import FileLock

        # check and write under one file lock: two jobs starting together would otherwise both find no lease and
        # both train (filelock: flock, which Linux maps onto POSIX locks on NFS)
        with FileLock(str(self.run.lease_file) + ".lock"):
            held = self.run.lease()
            mine = held and held.get("host") == socket.gethostname() and held.get("pid") == os.getpid()
            same_job = held and held.get("job_id") and held.get("job_id") == slurm_job_id()
            if held and not (mine or same_job):
                raise RunBusy(self.run.run_id, held)
            self._write()  # the submission marker stays (the sweep clears it): a preempted, requeued job is queued
        self._thread = threading.Thread(target=self._loop, name="run-lease", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.renew):
            try:
                self._write()
            except OSError:
                pass  # a full disk must not kill training; the lease then expires and says so

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.run.lease_file.unlink(missing_ok=True)


class RunBusy(RuntimeError):
    """Another live process is training this run: the message says who (host:pid, SLURM job), since when, and
    when its lease goes stale if it stops renewing it (then this run can be resumed)."""

    def __init__(self, run_id: str, held: dict):
        self.run_id, self.held = run_id, held
        renewed = float(held.get("renewed", 0))
        since = _utc(float(held["started"])) if held.get("started") is not None else "an unknown time"
        job = f", SLURM job {held['job_id']}" if held.get("job_id") else ""
        super().__init__(f"run {run_id} is being trained by {held.get('host')}:{held.get('pid')}{job} since {since}; "
                         f"its lease was renewed {time.time() - renewed:.0f} s ago and goes stale at "
                         f"{_utc(renewed + LEASE_SECONDS)} unless renewed: not training it twice")


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def checkpoint_is_complete(path: Path) -> bool:
    """A ``checkpoint-N`` directory holds the model weights, the optimizer state and a readable ``trainer_state.json``.

    transformers writes the weights, then the optimizer/scheduler/RNG state, then ``trainer_state.json`` last, so
    a process killed while saving leaves a directory without it (or with it cut short). Weights: ``model.safetensors``
    (or its shard index, or ``pytorch_model*``; FSDP: ``pytorch_model_fsdp_0/``); optimizer: ``optimizer.pt``
    (FSDP: ``optimizer.bin`` / ``optimizer_0/``; DeepSpeed: its ``global_step*/`` directory).
    """
    if _read_json(path / "trainer_state.json") is None:
        return False
    weights = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
               "pytorch_model_fsdp_0", "pytorch_model_fsdp.bin")  # fmt: skip
    optimizer = ("optimizer.pt", "optimizer.bin", "optimizer_0")
    has_weights = any((path / name).exists() for name in weights)
    has_optimizer = any((path / name).exists() for name in optimizer) or any(path.glob("global_step*/*optim_states.pt"))
    return has_weights and has_optimizer
