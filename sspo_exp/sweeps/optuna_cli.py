"""``sspo-exp optuna``: search ε / temperatures with Optuna's own API; many workers share one study.

    sspo-exp optuna create sweeps/optuna_sspo.yaml [--storage S]      # once, before any worker
    sspo-exp optuna worker --study NAME [--storage S] [--n-trials N]  # as many as you like, anywhere
    sspo-exp optuna submit --study NAME --workers 4 [--launcher submitit_slurm] [hydra.launcher.partition=gpu ...]
    sspo-exp optuna worker --study NAME --trial-jobs submitit_slurm   # each trial = one multi-GPU job (docs/cluster.md)
    sspo-exp optuna show --study NAME [--storage S]

Storage ``S`` (default ``$SSPO_OPTUNA_STORAGE``, else ``runs/optuna/<study>.journal``): a file path is an Optuna
``JournalFileBackend`` — append-only, safe for concurrent workers on a shared filesystem (NFS/Lustre) without a
database server; a URL (``sqlite:///study.db``, ``postgresql://user:pw@host/db`` with ``pip install
'sspo-exp[postgres]'``) is an RDB storage with heartbeats: a killed worker's trial becomes FAIL
(``sspo_exp/sweeps/storage.py``, which also keeps a password in the URL out of every log and file).
The study is created once (concurrent creation races) and stores the search space (``user_attrs["space"]``),
so workers need only the study name and the storage.

Search-space file (``sweeps/optuna_*.yaml``)::

    study: sspo-atanlog-tiny     # study name
    direction: maximize          # maximize | minimize
    metric: eval/heldout/accuracy   # what a trial returns (see METRICS), averaged over `seeds`
    seeds: [0]                   # training seeds per trial
    sampler: {name: tpe, seed: 0}   # tpe | random; trial n samples with a seed derived from (seed, n)
    pruner: {name: median, n_warmup_steps: 10}   # none (default) | median | hyperband, with Optuna's options;
                                 # prunes on held-out accuracy every trainer.eval_steps (sspo_exp/sweeps/pruning.py)
    heartbeat: {interval: 60, grace_period: 240}  # RDB storages: seconds between a trial's heartbeats, and the
                                 # silence after which its trial is marked FAIL (its worker died); the default
    overrides: [experiment=cpu_minigrid, objective=sspo, gate=atanlog]  # fixed Hydra overrides
    params:                      # Hydra key -> distribution
      gate.tau_pos: {low: 0.05, high: 1.0, log: true}   # float (optionally step)
      trainer.mu: {low: 1, high: 4, type: int}          # int
      gate: {choices: [atanlog, siglog]}                # categorical

Each trial composes ``conf/train.yaml`` with the fixed overrides, the suggested values and a seed, and calls
``sspo_exp.train.run.train(cfg, callbacks=[pruning reporter])`` in the worker process, or, with ``--trial-jobs
submitit_slurm``, as ONE distributed SLURM job of the model preset's shape (``sspo_exp.sweeps.trial_jobs``); its run lands in ``${output_root}/${run_id}/`` like any
other run (so a trial that repeats a finished config costs nothing). The trial's value is ``summary.json[metric]``
averaged over the seeds. A trial whose training raises, or whose metric is missing or NaN, is recorded as FAIL
and the worker goes on with the next trial; a pruned one is PRUNED. Each trial carries the user attributes
``run_id_seed<k>`` and ``wandb_run_seed<k>`` (``entity/project/run_id``; ``wandb_dir_seed<k>`` once finished), so
optuna-dashboard shows which run and W&B run each trial is. A SLURM worker that is preempted exits at once; when
SLURM restarts it (same job id) it marks its cut-off trial FAIL and re-runs the same parameters first, and that run
resumes from its last checkpoint. (On a journal file a worker that never comes back leaves its trial RUNNING;
`show` lists it. On an RDB storage its heartbeat stops and the next trial started by any worker marks it FAIL.)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable


from sspo_exp import CONF_DIR, keys
from sspo_exp.errors import ConfigError
from sspo_exp.output_root import writable_output_root
from sspo_exp.rundir import RunBusy, RunDir
from sspo_exp.sweeps import preemption, pruning
from sspo_exp.sweeps.errors import SpaceError
from sspo_exp.sweeps.grid import override_value, train_task
from sspo_exp.sweeps.sampler import make_sampler, trial_seed
from sspo_exp.sweeps.space import METRICS, SAMPLERS, check_space, load_space, suggest  # noqa: F401 - the CLI's API
from sspo_exp.sweeps.trial_jobs import TrialJobs, launcher_executor
from sspo_exp.sweeps.storage import STORAGE_ENV, StorageError, check as check_storage, is_url, open_storage, redact
from sspo_exp.sweeps.storage import resolve as resolve_storage
from sspo_exp.train.config import run_id

STORAGE_HELP = ("journal file path or RDB URL (sqlite:///FILE, postgresql://USER[:PW]@HOST[:PORT]/DB); default "
                f"${STORAGE_ENV}, else runs/optuna/<study>.journal")


# ------------------------------------------------------------------------------------------ storage
def create(space: dict[str, Any], storage: str, exist_ok: bool = False):
    """Create the study (once) and store the search space in it."""
    import optuna
    from optuna.exceptions import DuplicatedStudyError

    try:
        study = optuna.create_study(storage=open_storage(storage), study_name=space["study"], direction=space["direction"])
    except DuplicatedStudyError:
        if not exist_ok:
            raise SpaceError(f"study {space['study']!r} already exists in {redact(storage)}; start workers with "
                             f"`sspo-exp optuna worker --study {space['study']} --storage {redact(storage)}`") from None  # fmt: skip
        study = optuna.load_study(study_name=space["study"], storage=open_storage(storage))
        if study.user_attrs.get("space") != space:
            raise SpaceError(f"study {space['study']!r} in {redact(storage)} was created with a different search space") from None
        return study
    study.set_user_attr("space", space)
    return study


# ------------------------------------------------------------------------------------------ workers
def trial_overrides(space: dict[str, Any], values: dict[str, Any], extra: list[str] = ()) -> list[str]:
    return list(space["overrides"]) + list(extra) + [f"{k}={override_value(v)}" for k, v in values.items()]


def worker_tag() -> str:
    """Who runs a trial: ``slurm-<job id>`` (the same after a requeue) or ``pid-<pid>``."""
    return f"slurm-{os.environ['SLURM_JOB_ID']}" if "SLURM_JOB_ID" in os.environ else f"pid-{os.getpid()}"


def retry_cut_off_trials(study, storage) -> list[int]:
    """A requeued SLURM worker finds the trial it was running when preempted still RUNNING under its own job id:
    mark it FAIL and enqueue the same parameters again, so the next trial re-runs that config — whose training
    resumes from its last checkpoint (same config, same run id). Returns the numbers of the trials retried."""
    from optuna.trial import TrialState

    retried = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("worker") == worker_tag():
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            retried.append(t.number)
    return retried


def wandb_run_path(cfg, rid: str) -> str:
    """``entity/project/run_id`` (``project/run_id`` when the entity is W&B's default), as ``wandb.Api().run`` takes."""
    return "/".join(str(p) for p in (cfg.wandb.get("entity"), cfg.wandb.project, rid) if p)


def make_objective(space: dict[str, Any], extra: list[str] = (), train_fn: Callable[..., dict] = train_task):
    """Optuna objective: suggest → compose → train once per seed (reporting held-out accuracy to the trial, which
    may prune it) → mean of ``summary[metric]``. The run id and W&B run path are user attributes before training
    starts, so a running, failed or pruned trial names its run too."""
    from hydra import compose, initialize_config_dir

    def objective(trial) -> float:
        overrides = trial_overrides(space, suggest(trial, space["params"]), extra)
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("worker", worker_tag())
        if space["sampler"].get("seed") is not None:  # what make_sampler seeded this trial's sampling with
            trial.set_user_attr("sampler_seed", trial_seed(space["sampler"]["seed"], trial.number))
        values = []
        for index, seed in enumerate(space["seeds"]):
            with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
                cfg = compose("train", overrides=[*overrides, f"seed={seed}"])
            rid = run_id(cfg)
            trial.set_user_attr(f"run_id_seed{seed}", rid)
            trial.set_user_attr(f"wandb_run_seed{seed}", wandb_run_path(cfg, rid))
            summary = train_or_wait(train_fn, cfg, [pruning.reporter(trial, index)])
            if summary.get("wandb_dir"):
                trial.set_user_attr(f"wandb_dir_seed{seed}", summary["wandb_dir"])
            value = keys.read(summary, space["metric"])  # an old run's summary.json: its old spelling
            if value is None or not math.isfinite(float(value)):
                raise ValueError(f"run {summary.get('run_id')}: metric {space['metric']}={value!r} is not a number")
            values.append(float(value))
        return sum(values) / len(values)

    return objective


#: How often a trial whose run another worker is training looks whether that run has finished.
BUSY_POLL_SECONDS = 5.0


def train_or_wait(train_fn: Callable[..., dict], cfg, callbacks=()) -> dict:
    """``train_fn(cfg, callbacks)``; when another worker is training the very same run (two workers sampled one point: each
    run has one lease, sspo_exp.rundir), wait until that run is done and use its summary, so the run is trained once
    and both trials get its value. If the other worker dies, its lease goes stale and this trial trains (resumes)."""
    while True:
        try:
            return train_fn(cfg, callbacks)
        except RunBusy as busy:
            print(f"{busy}; waiting for it to finish", flush=True)
            run = RunDir(cfg.output_root, run_id(cfg))
            while run.status() == "running":
                time.sleep(BUSY_POLL_SECONDS)
            if run.summary() is not None:
                return run.summary()


def load(study_name: str, storage: str):
    """``(study, storage, space)``: the study with the sampler, pruner and (RDB) heartbeat of its search space."""
    import optuna

    store = open_storage(storage)
    space = check_space(optuna.load_study(study_name=study_name, storage=store).user_attrs["space"], f"study {study_name}")
    if is_url(storage):  # heartbeats: a trial whose worker dies is failed by the next trial any worker starts
        store = open_storage(storage, heartbeat=space["heartbeat"])
    study = optuna.load_study(study_name=study_name, storage=store, sampler=make_sampler(space),
                              pruner=pruning.make_pruner(space["pruner"]))  # fmt: skip
    return study, store, space


def first_point(params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One point of the search space (each choice's first, each range's low end): a config a trial could compose."""
    return {k: d["choices"][0] if "choices" in d else (int if d.get("type") == "int" else float)(d["low"])
            for k, d in params.items()}


def check_trials_output_root(space: dict[str, Any], extra: list[str] = ()) -> None:
    """The trials' ``output_root`` can be written: a :class:`ConfigError` now, not one failed trial after another
    (Optuna records a trial's exception and goes on to the next). Composed as a trial at :func:`first_point` would
    be (``objective.eps_low`` composes only beside a sampled ``objective=grpo``); if even that fails, from the
    ``output_root=`` overrides alone (the trials then report their own errors)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = trial_overrides(space, first_point(space["params"]), extra)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        try:
            cfg = compose("train", overrides=overrides)
        except (HydraException, OmegaConfBaseException):
            cfg = compose("train", overrides=[o for o in overrides if o.startswith("output_root=")])
    writable_output_root(cfg.output_root, hydra=False)  # a trial trains through the compose API: no Hydra directory


def worker(study_name: str, storage: str | None, n_trials: int | None = None, extra: list[str] = (),
           train_fn: Callable[..., dict] = train_task, trial_jobs: str | None = None,
           launcher_overrides: list[str] = ()) -> int:  # fmt: skip
    """Pull trials from the study until it holds ``n_trials`` trials in total (all workers together, enqueued ones
    not counted until they start; None = forever). Failed trials are recorded as FAIL and the worker continues; a trial cut off by a SLURM preemption
    is retried by the requeued worker (``retry_cut_off_trials``). ``storage=None``: ``$SSPO_OPTUNA_STORAGE``.
    ``trial_jobs`` (a launcher, e.g. ``submitit_slurm``): each trial's run is one distributed job of its model
    preset's shape (``sspo_exp.sweeps.trial_jobs``), ``launcher_overrides`` its hydra.launcher.* fields.
    Returns the number of trials this worker ran."""
    import optuna

    preemption.exit_on_sigterm()  # a preempted SLURM worker stops at once; its requeued job retries the trial
    if storage is None:  # a submitted job: the storage comes through the environment (see `submit`)
        storage = os.environ[STORAGE_ENV]
    study, store, space = load(study_name, storage)
    check_trials_output_root(space, extra)
    if trial_jobs:
        train_fn = TrialJobs(trial_jobs, list(launcher_overrides), absolute(storage), job_folder(storage))
    objective = make_objective(space, extra, train_fn)
    # the budget counts trials that ran or run; enqueued (WAITING) ones are still to run
    counted = tuple(s for s in optuna.trial.TrialState if s != optuna.trial.TrialState.WAITING)
    before = {t.number for t in study.get_trials(deepcopy=False, states=counted)}
    retried = retry_cut_off_trials(study, store)
    if retried:  # enqueued trials come first, whatever the budget: they were already counted in it
        study.optimize(objective, n_trials=len(retried), catch=(Exception,))
    if n_trials is None:
        study.optimize(objective, catch=(Exception,))
    elif len(study.get_trials(deepcopy=False, states=counted)) < n_trials:
        study.optimize(objective, catch=(Exception,), callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=counted)])
    return len({t.number for t in study.get_trials(deepcopy=False, states=counted)} - before)


def absolute(storage: str) -> str:
    """A journal path made absolute (a job may start elsewhere); a URL as it is."""
    return storage if is_url(storage) else str(Path(storage).expanduser().resolve())


def job_folder(storage: str) -> Path:
    """submitit's folder for a study's jobs: beside a journal file, else under runs/optuna/."""
    return (Path(absolute(storage)).parent if not is_url(storage) else Path("runs/optuna")).resolve() / ".submitit" / "%j"


def submit(study_name: str, storage: str, workers: int, n_trials: int | None, launcher: str,
           launcher_overrides: list[str], extra: list[str] = (), wait: bool = True,
           trial_jobs: str | None = None) -> list[Any]:  # fmt: skip
    """Start ``workers`` worker jobs (SLURM or local processes) on the study; optionally wait for them.

    The jobs get the storage through their environment (``$SSPO_OPTUNA_STORAGE``; sbatch and submitit's local
    executor pass the submitting process's environment on), never as an argument: submitit pickles arguments into
    its job folder, and a URL may hold a password. With a journal file (on a filesystem this host shares with the
    jobs) the trials' ``output_root`` is checked here first; a database may be reachable from the compute nodes only,
    so with a URL each worker checks it when it starts."""
    if not is_url(storage):
        check_trials_output_root(load(study_name, storage)[2], extra)
    storage_abs, folder = absolute(storage), job_folder(storage)
    # with trial_jobs the workers are one-CPU jobs that submit each trial as a job of the launcher_overrides' shape
    light = ["hydra.launcher.nodes=1", "hydra.launcher.tasks_per_node=1", "hydra.launcher.gpus_per_node=0"]
    executor = launcher_executor(launcher, [*launcher_overrides, *light] if trial_jobs else launcher_overrides, folder)
    saved = os.environ.get(STORAGE_ENV)
    os.environ[STORAGE_ENV] = storage_abs  # sbatch / the local executor copy the environment at submission
    try:
        # the workers are told apart by their trials' own sampler seeds (sweeps/sampler.py), not by an index
        jobs = [executor.submit(worker, study_name, None, n_trials, list(extra), train_task, trial_jobs,
                                launcher_overrides) for _ in range(workers)]  # fmt: skip
    finally:  # this process's own environment is left as it was
        if saved is None:
            del os.environ[STORAGE_ENV]
        else:
            os.environ[STORAGE_ENV] = saved
    print(f"submitted {workers} workers: {' '.join(j.job_id for j in jobs)} (logs: {folder.parent})")
    if wait:
        for j in jobs:
            j.result()
    return jobs


def show(study_name: str, storage: str) -> None:
    import optuna

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    for t in study.trials:
        runs = " ".join(str(v) for k, v in sorted(t.user_attrs.items()) if k.startswith("run_id_seed"))
        print(f"trial {t.number:>3} {t.state.name:<8} value={t.value} params={t.params} runs={runs}")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    if done:
        print(f"best: trial {study.best_trial.number} value={study.best_value} params={study.best_params}")


# ------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sspo-exp optuna", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create", help="create the study from a search-space file (once, before workers)")
    p.add_argument("space", help="search-space file, e.g. sweeps/optuna_sspo.yaml")
    p.add_argument("--study", help="study name (default: the file's `study`)")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--exist-ok", action="store_true", help="reuse an existing study with the same search space")
    for name, help_ in (("worker", "run trials in this process"), ("submit", "start worker jobs through submitit"),
                        ("show", "list the study's trials and the best one")):  # fmt: skip
        p = sub.add_parser(name, help=help_)
        p.add_argument("--study", required=True, help="study name")
        p.add_argument("--storage", help=STORAGE_HELP)
        if name != "show":
            p.add_argument("--n-trials", type=int, help="stop once the study holds this many trials (all workers)")
            p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every trial (hydra.launcher.* go to the launcher)")  # fmt: skip
            p.add_argument("--trial-jobs", metavar="LAUNCHER", choices=("submitit_slurm", "submitit_local"),
                           help="run each trial as ONE distributed job of its model preset's shape (submitit_slurm)")
        if name == "submit":
            p.add_argument("--workers", type=int, default=2, help="number of worker jobs")
            p.add_argument("--launcher", default="submitit_slurm", help="submitit_slurm | submitit_local (conf/launcher/)")
            p.add_argument("--no-wait", action="store_true", help="return after submitting")
    args = parser.parse_args(argv)
    sys.argv[:] = [redact(a) for a in sys.argv]  # W&B records the command line of every run a worker trains
    storage = None
    try:
        if args.command == "create":
            space = load_space(args.space)
            if args.study:
                space["study"] = args.study
            storage = resolve_storage(args.storage, space["study"])
            check_storage(storage)  # a missing driver: a clear error before optuna and SQLAlchemy are imported
            create(space, storage, args.exist_ok)
            print(f"created study {space['study']!r} in {redact(storage)}")
            return 0
        storage = resolve_storage(args.storage, args.study)
        check_storage(storage, write=args.command != "show")
        if args.command == "show":
            show(args.study, storage)
        else:
            launcher = [o for o in args.overrides if o.startswith("hydra.launcher.")]
            extra = [o for o in args.overrides if not o.startswith("hydra.launcher.")]
        if args.command == "worker":
            ran = worker(args.study, storage, args.n_trials, extra, trial_jobs=args.trial_jobs, launcher_overrides=launcher)
            print(f"worker ran {ran} trials")
        elif args.command == "submit":
            submit(args.study, storage, args.workers, args.n_trials, args.launcher, launcher, extra, not args.no_wait,
                   args.trial_jobs)  # fmt: skip
    except (SpaceError, StorageError, ConfigError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    except KeyError:  # optuna.load_study on a study that was never created
        print(f"error: no study {args.study!r} in {redact(storage)}; create it first: sspo-exp optuna create "
              f"SPACE.yaml --storage {redact(storage)}", file=sys.stderr)  # fmt: skip
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
