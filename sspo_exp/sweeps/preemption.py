"""Make a SLURM job die at once when SLURM preempts or requeues it, so the requeued job resumes cleanly.

On preemption (PreemptMode=REQUEUE), ``scontrol requeue`` or ``scancel``, SLURM sends SIGTERM to every process of
the job step and SIGKILL ``KillWait``/``GraceTime`` seconds later. submitit ignores SIGTERM in the job process (it
relies on SIGUSR2 for its own requeue), but helper processes such as W&B's service die at once; the training
loop then fails on its next log call and submitit records that *failure* as the job's result — the sweep reports
a failed run although SLURM requeues it. Exiting on SIGTERM instead leaves no result behind: the requeued job
starts again and ``train`` resumes from the run's last checkpoint. (transformers writes a checkpoint in place,
``trainer_state.json`` last: a kill during a save can leave a partial ``checkpoint-N`` that resuming must skip.)
"""

from __future__ import annotations

import os
import signal

#: Exit status of a process ended by SIGTERM (128 + 15), what SLURM shows for a preempted step.
SIGTERM_EXIT = 143


def exit_on_sigterm() -> bool:
    """Inside a SLURM job, make SIGTERM end the process immediately; returns whether the handler was installed."""
    if "SLURM_JOB_ID" not in os.environ:
        return False
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(SIGTERM_EXIT))
    return True


try:  # a Hydra callback, so every job launched through conf/launcher/submitit_*.yaml gets the handler
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra-core is a dependency
    Callback = object


class ExitOnSigterm(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/launcher/submitit_*.yaml): ``exit_on_sigterm`` at job start."""

    def on_job_start(self, config, **kwargs) -> None:
        exit_on_sigterm()
