"""sspo-exp's SLURM launcher (``launcher=submitit_slurm``): hydra-submitit-launcher's, except that a job whose run
fails ends as a failed SLURM job and takes the job's other ranks down with it at once.

hydra-submitit-launcher runs each job through Hydra's ``run_job``, which keeps the run's exception as the job's
*result*: the task exits 0, SLURM records the job as COMPLETED, and in a job of several tasks ``srun`` leaves the other
ranks waiting in the rendezvous or in a collective until torch's timeout (30 minutes), holding their GPUs. Here:

* a task whose run failed raises the exception: submitit saves it as the task's error, and the task exits 1;
* every job's batch script exports ``SLURM_KILL_BAD_EXIT=1`` before ``srun`` (the first setup line, whatever
  ``hydra.launcher.setup`` holds), so ``srun`` ends the step's other tasks as soon as one exits non-zero, and the
  job ends FAILED;
* the sweep still gets one result per job: the run's own (rank 0's), or a failed ``JobReturn`` whose exception names
  the rank that failed, its error and its log.

Preemption is unchanged: SIGTERM ends every task at once without a result (sspo_exp/sweeps/preemption.py), and SLURM
requeues the job.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from omegaconf import OmegaConf

from sspo_exp.sweeps.distributed import KILL_BAD_EXIT

log = logging.getLogger(__name__)


class RankFailed(RuntimeError):
    """A task of a SLURM job failed: which one, its exception, and where its log is."""


#: The rule submitit's ``FailedJobError`` puts above and below the task's traceback.
_RULE = "-" * 22 + "\n"


def error_line(error: Exception, limit: int = 400) -> str:
    """The exception a task raised, on one line: the text after the last frame of the traceback inside submitit's
    ``FailedJobError`` (between its first and last rule; a traceback may hold rules of its own), its lines joined."""
    parts = str(error).split(_RULE)
    lines = (_RULE.join(parts[1:-1]) if len(parts) >= 3 else str(error)).strip().splitlines()
    last_frame = max((i for i, line in enumerate(lines) if line.startswith('  File "')), default=-1)
    text = " ".join(line.strip() for line in lines[last_frame + 1:] if line.strip() and not line.startswith(" "))
    text = text or (lines[-1].strip() if lines else type(error).__name__)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def job_return(job: Any, overrides: Sequence[str] = ()) -> JobReturn:
    """The result of a submitit ``job`` run with ``overrides``, once rank 0 has one: the run's result is rank 0's
    ``JobReturn`` (rank 0 writes the run's summary; a rank that fails after it does not undo the run), or a failed one
    holding :class:`RankFailed` for the task that failed first (the oldest error result: the others' errors follow
    from it, e.g. gloo's "connection closed" on rank 0 once rank 1 is gone). A task that ``srun`` ended left no
    result; only rank 0's is waited for (submitit waits 15 s for a result file that is late), the others are read if
    they are there. The job itself may still be ending its other tasks for a few seconds (``srun``'s kill): waiting
    for it would need SLURM's accounting, which submitit reads job states from."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    try:
        return job.task(0).result()
    except UncompletedJobError as e:
        first = e
    errors = [(0, first)] if isinstance(first, FailedJobError) else []
    for rank in range(1, job.num_tasks):
        if job.task(rank).paths.result_pickle.exists():
            try:
                job.task(rank).result()
            except FailedJobError as e:
                errors.append((rank, e))
    if errors:
        rank, error = min(errors, key=lambda found: job.task(found[0]).paths.result_pickle.stat().st_mtime)
        what = error_line(error)
    else:
        rank, what = 0, "ended without a result (killed, or never started)"
    failed = JobReturn(overrides=list(overrides))
    failed.status = JobStatus.FAILED
    failed.return_value = RankFailed(f"{what} (SLURM job {job.job_id}, rank {rank}; log {job.task(rank).paths.stderr})")
    return failed


class SlurmLauncher(SubmititSlurmLauncher):
    """hydra-submitit-launcher's ``SlurmLauncher`` with the three changes of the module docstring."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.params["setup"] = [KILL_BAD_EXIT, *(self.params.get("setup") or [])]

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Run the job in this task (hydra-submitit-launcher's); a failed run raises its exception."""
        ret = super().__call__(*args, **kwargs)
        if ret.status == JobStatus.FAILED:
            raise ret._return_value
        return ret

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """hydra-submitit-launcher 1.2.0's ``BaseSubmititLauncher.launch``, but each job's result is
        :func:`job_return` (theirs re-raises the first failed job's error and drops every other job's result)."""
        import submitit

        assert self.config is not None
        assert len(job_overrides) > 0
        params, init_keys = self.params, ("submitit_folder", "max_num_timeout")
        init = {f"{self._EXECUTOR}_{k}": v for k, v in params.items() if k == "max_num_timeout"}
        executor = submitit.AutoExecutor(folder=params["submitit_folder"], cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items()
                                      if k not in init_keys})  # fmt: skip
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {self.config.hydra.sweep.dir}")
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*job_params))
        return [job_return(j, o) for j, o in zip(jobs, job_overrides)]
