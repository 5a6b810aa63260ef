"""Optuna trials as distributed jobs: each trial (each of its seeds) runs as ONE SLURM job of its model preset's
shape (``nodes x tasks_per_node`` ranks of one run, sspo_exp/sweeps/distributed.py), while the worker that asks
Optuna for the trial stays a light one-process loop (a login node, a tmux pane, or a one-CPU job).

Why trials as jobs rather than multi-process workers: a trial then gets exactly the job a sweep point gets (the same
shape from ``conf/model/*.yaml``, the same validation at the real world size, the same requeue-and-resume), the
GPUs are held only while a trial trains (not while the sampler thinks or the worker waits on a busy run), and no
rank has to learn its trial from another rank before ``torch.distributed`` exists. Pruning still works: inside the
job, rank 0 reports to the trial through the storage and broadcasts the pruner's answer (sspo_exp/sweeps/pruning.py).

    sspo-exp optuna worker --study S --trial-jobs submitit_slurm hydra.launcher.partition=gpu
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sspo_exp import CONF_DIR
from sspo_exp.sweeps import preemption, pruning
from sspo_exp.sweeps.distributed import KILL_BAD_EXIT, export_rank_env
from sspo_exp.sweeps.errors import SpaceError
from sspo_exp.sweeps.grid import plan_point, shape_overrides, train_task
from sspo_exp.sweeps.storage import STORAGE_ENV, open_storage


def launcher_executor(launcher: str, overrides: list[str], folder: Path):
    """A submitit executor configured from ``conf/launcher/<launcher>.yaml`` (the one place for cluster values),
    mapping its fields the way hydra-submitit-launcher does."""
    import submitit
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    if launcher not in ("submitit_slurm", "submitit_local"):
        raise SpaceError(f"--launcher={launcher!r}; choose submitit_slurm or submitit_local (conf/launcher/)")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="optuna"):
        cfg = compose("train", overrides=[f"launcher={launcher}", *overrides], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params = {k: v for k, v in params.items() if k not in ("_target_", "submitit_folder", "name")}
    if launcher == "submitit_slurm":  # a failed rank ends the trial's job at once (sspo_exp_launcher.slurm does this)
        params["setup"] = [KILL_BAD_EXIT, *(params.get("setup") or [])]
    cluster = "slurm" if launcher == "submitit_slurm" else "local"
    init = {f"{cluster}_max_num_timeout": params.pop("max_num_timeout")} if "max_num_timeout" in params else {}
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster, **init)
    base = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "stderr_to_stdout"}
    executor.update_parameters(name="sspo-optuna", **{k if k in base else f"{cluster}_{k}": v for k, v in params.items()})
    return executor


def run_trial_job(cfg, study_name: str, trial_id: int, seed_index: int, engine: str) -> dict[str, Any]:
    """The function every task of a trial's job runs: this task's rank environment, then ``train`` with the trial's
    pruning reporter. Rank 0 returns the run's summary (``{"pruned": reason}`` when the pruner stopped it)."""
    import optuna

    preemption.exit_on_sigterm()  # a preempted job ends at once; SLURM requeues it and the run resumes
    export_rank_env(engine)
    study = optuna.load_study(study_name=study_name, storage=open_storage(os.environ[STORAGE_ENV]))
    try:
        return train_task(cfg, [pruning.reporter(optuna.trial.Trial(study, trial_id), seed_index)])
    except optuna.TrialPruned as pruned:
        return {"pruned": str(pruned)}


class TrialJobs:
    """A ``train_fn`` for ``optuna_cli.make_objective``: submits the trial's run as one job of its model preset's
    shape (``launcher`` = conf/launcher/<launcher>.yaml, ``overrides`` = hydra.launcher.* fields), waits, returns
    its summary (or raises ``optuna.TrialPruned``). The study's storage reaches the job through its environment."""

    def __init__(self, launcher: str, overrides: list[str], storage: str, folder: Path):
        self.launcher, self.overrides, self.storage, self.folder = launcher, list(overrides), storage, folder

    def __call__(self, cfg, callbacks=()) -> dict[str, Any]:
        import optuna
        from hydra import initialize_config_dir

        (reporter,) = [cb for cb in callbacks if hasattr(cb, "trial")]
        trial = reporter.trial
        point = [*trial.user_attrs["overrides"], f"seed={cfg.seed}", f"launcher={self.launcher}", *self.overrides]
        with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
            _, shape, _, _ = plan_point(point)  # validated at the job's world size before it is submitted
        executor = launcher_executor(self.launcher, [*shape_overrides(shape), *self.overrides], self.folder)
        saved = os.environ.get(STORAGE_ENV)
        os.environ[STORAGE_ENV] = self.storage  # sbatch copies the environment: no password in a pickle
        try:
            job = executor.submit(run_trial_job, cfg, trial.study.study_name, trial._trial_id, reporter.seed_index,
                                  shape.engine)  # fmt: skip
        finally:
            os.environ.pop(STORAGE_ENV) if saved is None else os.environ.__setitem__(STORAGE_ENV, saved)
        print(f"trial {trial.number} seed {cfg.seed}: job {job.job_id} ({shape.describe()})", flush=True)
        summary = job.results()[0]  # rank 0's
        if "pruned" in summary:
            raise optuna.TrialPruned(summary["pruned"])
        return summary
