"""Sweep files (``sweeps/*.yaml``) → Hydra override lists → one Hydra multirun of ``train``.

Hydra's basic sweeper takes the cartesian product of every swept key, but the paper's grid (Appendix A) ties
values together — SAPO's (τ_neg, τ_pos) pairs, SSPO's per-gate pairs, gumbel without temperatures — so a sweep
file lists *blocks*, and this module expands them::

    experiment: table1                     # conf/experiment/<name>.yaml, applied to every point
    seeds: [0, 1, 2]                       # every point runs once per seed
    base: other.yaml                       # optional: start from another sweep file (its keys, then ours)
    grid:                                  # the points = the union over blocks of each block's product
      - objective: [grpo, gmpo]            # a list sweeps; a scalar is fixed within the block
        objective.eps_low: [0.1, 0.2, 0.3]
      - objective: sapo
        objective.tau_neg,objective.tau_pos: [[1, 1.05], [3, 4], [7, 8]]   # comma-joined keys vary together

Each point becomes the override list ``experiment=… <block keys> seed=…`` (plus the command line's overrides)
and all of them are handed to the configured Hydra launcher (``launcher=local | submitit_local |
submitit_slurm``, conf/launcher/) as ONE multirun per job shape, as ``sspo-exp train -m`` would. Under
``submitit_slurm`` each run is one job of ``nodes x tasks_per_node`` ranks shaped by its model preset
(sspo_exp/sweeps/resources.py, docs/cluster.md). Before anything is launched every point is composed and validated
at its job's world size (a bad point fails at once, naming it) and mapped to its deterministic run id: a run whose
``summary.json`` exists is skipped, a queued or running one too, a run with checkpoints resumes from its last one.

    sspo-exp sweep sweeps/table1.yaml --dry-run          # list the points and their status
    sspo-exp sweep sweeps/cpu_minigrid.yaml --seeds 0    # run on this machine
    sspo-exp sweep sweeps/cpu_study_staleness.yaml --only trainer.mu=4 --dry-run   # only the points with mu = 4
    sspo-exp sweep sweeps/table1.yaml launcher=submitit_slurm hydra.launcher.partition=gpu --no-wait
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from sspo_exp import CONF_DIR, SWEEPS_DIR
from sspo_exp.errors import ConfigError, writable_dir
from sspo_exp.evaluation.provenance import code_version, git_info
from sspo_exp.rundir import RunDir
from sspo_exp.sweeps.errors import SweepError
from sspo_exp.sweeps.resources import JobShape, assumptions, check_shape, gpu_hours, job_shape
from sspo_exp.sweeps.submission import SlurmIdWatcher, submit_and_return

SWEEP_KEYS = ("base", "experiment", "seeds", "grid")


# ------------------------------------------------------------------------------------------ sweep files
def sweep_path(path: str | Path) -> Path:
    """A sweep or search-space file: a path, or the name of one shipped with the package (``table1`` or
    ``table1.yaml`` = ``sspo_exp/resources/sweeps/table1.yaml``, which ``sweeps/`` in a checkout links to)."""
    given = Path(path)
    if given.is_file():
        return given
    shipped = SWEEPS_DIR / (given.name if given.suffix == ".yaml" else f"{given.name}.yaml")
    if given.parent in (Path("."), Path("sweeps")) and shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml")))
    raise SweepError(f"sweep file {path}: not found (a path, or a shipped sweep name: {names})")


def load_sweep(path: str | Path) -> dict[str, Any]:
    """The sweep file as a dict, with ``base`` files merged in (our keys replace the base's)."""
    path = sweep_path(path)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise SweepError(f"sweep file {path}: must be a mapping with keys {', '.join(SWEEP_KEYS)}")
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise SweepError(f"sweep file {path}: unknown key(s) {unknown}; allowed: {', '.join(SWEEP_KEYS)}")
    if "base" in data:
        data = {**load_sweep(path.parent / data["base"]), **{k: v for k, v in data.items() if k != "base"}}
    data.setdefault("seeds", [0])
    data.setdefault("experiment", None)
    if not isinstance(data.get("grid"), list) or not data["grid"]:
        raise SweepError(f"sweep file {path}: `grid` must be a non-empty list of blocks (mappings)")
    if not isinstance(data["seeds"], list) or not all(isinstance(s, int) for s in data["seeds"]):
        raise SweepError(f"sweep file {path}: `seeds` must be a list of integers, got {data['seeds']!r}")
    return data


def override_value(value: Any) -> str:
    """A YAML scalar as Hydra override text (``None`` → ``null``, booleans lower-case)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, str)):
        return str(value)
    raise SweepError(f"sweep value {value!r}: only scalars (numbers, strings, booleans, null) can be swept")


def _alternatives(key: str, value: Any) -> list[list[str]]:
    """The choices one block entry offers, each a list of ``key=value`` overrides."""
    keys = [k.strip() for k in key.split(",")]
    if len(keys) == 1:
        values = value if isinstance(value, list) else [value]
        return [[f"{key}={override_value(v)}"] for v in values]
    if not isinstance(value, list) or not all(isinstance(v, list) and len(v) == len(keys) for v in value):
        raise SweepError(f"grid key {key!r}: tied keys take a list of {len(keys)}-element lists, e.g. [[1, 2], [3, 4]]; got {value!r}")  # fmt: skip
    return [[f"{k}={override_value(v)}" for k, v in zip(keys, combo)] for combo in value]


def expand_grid(grid: list[dict[str, Any]]) -> list[list[str]]:
    """Every point of the grid (union over blocks of the cartesian product of the block's entries)."""
    points = []
    for i, block in enumerate(grid):
        if not isinstance(block, dict) or not block:
            raise SweepError(f"grid block {i}: must be a non-empty mapping of override keys to values, got {block!r}")
        choices = [_alternatives(str(key), value) for key, value in block.items()]
        points += [list(itertools.chain.from_iterable(combo)) for combo in itertools.product(*choices)]
    return points


def common_overrides(sweep: dict[str, Any], overrides: list[str] = ()) -> list[str]:
    """What every run shares: the experiment, then the command line's overrides."""
    return ([f"experiment={sweep['experiment']}"] if sweep.get("experiment") else []) + list(overrides)


def sweep_jobs(sweep: dict[str, Any], overrides: list[str] = ()) -> list[list[str]]:
    """The override list of every run: experiment, the command line's overrides, the point, the seed."""
    head = common_overrides(sweep, overrides)
    return [head + point + [f"seed={s}"] for point in expand_grid(sweep["grid"]) for s in sweep["seeds"]]


# ------------------------------------------------------------------------------------------ run status
@dataclass(frozen=True)
class Job:
    overrides: list[str]
    run_id: str
    run_dir: Path
    code: dict | None = None  #: which code made a finished run (its run.json), None if not finished
    shape: JobShape = JobShape()  #: its job (sspo_exp.sweeps.resources): the world size it was validated for
    gpu_hours: float | None = None  #: estimated GPU-hours (sspo_exp.sweeps.resources.gpu_hours)
    basis: str = ""  #: the estimate's assumed peak and MFU (sspo_exp.sweeps.resources.assumptions)

    @property
    def run(self):
        return RunDir.of(self.run_dir)

    @property
    def status(self) -> str:
        """``done``, ``running``, ``queued``, ``resume`` or ``new`` (``sspo_exp.rundir.RunDir.status``)."""
        return self.run.status()


#: A sweep this large prints a progress line every PROGRESS_EVERY composed points.
PROGRESS_EVERY = 10


def plan_point(overrides: list[str]):
    """``(training plan, job shape, GPU-hours, their assumptions)`` of one point, validated at its job's real world size: the batch
    arithmetic (``make_plan``) and the job's own needs (``sspo_exp.sweeps.resources.check_shape``)."""
    from hydra import compose
    from omegaconf import open_dict

    from sspo_exp.train.config import make_plan  # as plan() did: the sweep CLI's --help loads no training module

    cfg = compose("train", overrides=overrides, return_hydra_config=True)
    shape = job_shape(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    check_shape(cfg, shape)
    return make_plan(cfg, world_size=shape.world_size), shape, gpu_hours(cfg), assumptions(cfg)


def plan(jobs: list[list[str]]) -> list[Job]:
    """Compose and validate every job (the training plan's own checks, ``sspo_exp.train.config.make_plan``, at the
    world size of the job it will run as) and locate its run directory by its run id. Every bad point is named, and
    nothing is launched, if any is bad."""
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    planned, seen, bad = [], {}, []
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        for i, overrides in enumerate(jobs):
            if len(jobs) > PROGRESS_EVERY and i and i % PROGRESS_EVERY == 0:
                print(f"composed {i}/{len(jobs)} points", file=sys.stderr, flush=True)
            try:
                p, shape, hours, basis = plan_point(overrides)
            except (HydraException, OmegaConfBaseException, ConfigError) as e:
                bad.append((str(e), overrides))
                continue
            rid = p.run.run_id
            if rid in seen:  # e.g. a gate swept with a non-SSPO objective: the same run twice
                print(f"note: {' '.join(overrides)} is the same run as {' '.join(seen[rid])} ({rid}); running it once")
                continue
            seen[rid] = overrides
            code = p.run.info().get("code") if p.run.summary_file.exists() else None
            planned.append(Job(overrides, rid, p.run.path, code, shape, hours, basis))
    if bad:
        raise SweepError(invalid_points(bad, len(jobs)))
    return planned


def invalid_points(bad: list[tuple[str, list[str]]], total: int) -> str:
    """The refusal of a sweep with bad points: one line per distinct reason, with how many points and one example
    (a job shape the whole sweep cannot run as is one reason, not 54)."""
    reasons: dict[str, list[list[str]]] = {}
    for message, overrides in bad:
        reasons.setdefault(message, []).append(overrides)
    lines = [f"{message}  [{len(points)} point(s), e.g. {' '.join(points[0])}]" for message, points in reasons.items()]
    head = f"{len(bad)} of {total} sweep points are invalid; nothing was launched:"
    return f"{head} {lines[0]}" if len(lines) == 1 else "\n  ".join([head, *lines])


def other_code(jobs: list[Job]) -> list[str]:
    """Notes for finished runs that other code versions made (their run.json), so a table mixing them says so."""
    now = code_version(git_info())
    notes = []
    for j in jobs:
        if j.code and (j.code.get("version"), j.code.get("commit")) != (now["version"], now["commit"]):
            notes.append(f"note: {j.run_id} was made by sspo-exp {j.code.get('version')} at commit "
                         f"{(j.code.get('commit') or 'unknown')[:10]}; this is {now['version']} at "
                         f"{(now['commit'] or 'unknown')[:10]}")  # fmt: skip
    return notes


# ------------------------------------------------------------------------------------------ launching
def train_task(cfg, callbacks=()) -> dict[str, Any]:
    """The task of every job (and of every Optuna trial, sspo_exp/sweeps/optuna_cli.py, which passes its pruning
    callback): ``sspo_exp.train.run.train`` (resumes or skips by run id on its own too). The submitit launchers add
    the preemption handler and the ranks' environment (``hydra.callbacks`` in conf/launcher/submitit_*.yaml)."""
    from sspo_exp.train.run import train  # torch, transformers, TRL: only in the process that trains

    return train(cfg, callbacks)


def launch(jobs: list[list[str]], common: list[str] = (), task: Callable[[Any], Any] = train_task,
           on_submitted: Callable[[int, str], None] | None = None, wait: bool = True, config: str = "train") -> list[Any]:
    """Run ``jobs`` (override lists) as one Hydra multirun of ``conf/<config>.yaml`` (train; eval for a re-scoring)
    with the launcher ``common`` selects (``launcher=submitit_slurm`` ...). Returns Hydra's JobReturn of each job; with ``wait=False``
    (SLURM only) returns ``[]`` once SLURM has given every job its id, and the jobs run on without this process.

    This is what ``sspo-exp train -m`` does (hydra/_internal/hydra.py: Hydra.multirun and BasicSweeper.sweep),
    minus the cartesian product: the points are given.
    """
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode
    from omegaconf import OmegaConf

    if not jobs:
        return []
    GlobalHydra.instance().clear()
    hydra = Hydra.create_main_hydra2(config, create_config_search_path(str(CONF_DIR)))
    try:
        cfg = hydra.compose_config(config, overrides=list(common), run_mode=RunMode.MULTIRUN, with_log_configuration=True)
        callbacks = Callbacks(cfg)
        context = HydraContext(config_loader=hydra.config_loader, callbacks=callbacks)
        callbacks.on_multirun_start(config=cfg, config_name=config)
        launcher = Plugins.instance().instantiate_launcher(hydra_context=context, task_function=task, config=cfg)
        sweep_dir = Path(str(cfg.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, sweep_dir / "multirun.yaml")
        slurm = "slurm" in str(cfg.hydra.launcher.get("_target_", "")).lower()
        if not wait and not slurm:
            raise SweepError("--no-wait: only launcher=submitit_slurm queues jobs that outlive this command")
        report = on_submitted or (lambda i, job_id: None)
        watcher = SlurmIdWatcher(sweep_dir / ".submitit", len(jobs), report) if slurm else None
        if not wait:
            submit_and_return(lambda: launcher.launch([list(j) for j in jobs], initial_job_idx=0), watcher)
            return []
        try:
            results = list(launcher.launch([list(j) for j in jobs], initial_job_idx=0))
        finally:
            if watcher:
                watcher.stop()
        callbacks.on_multirun_end(config=cfg, config_name=config)
        return results
    finally:
        GlobalHydra.instance().clear()


def select(jobs: list[list[str]], only: list[str]) -> list[list[str]]:
    """The jobs whose override list holds every ``key=value`` of ``only`` (a part of a sweep, e.g. one mu)."""
    kept = [j for j in jobs if set(only) <= set(j)]
    if only and not kept:
        raise SweepError(f"--only {' '.join(only)}: no sweep point has these overrides (each must appear exactly as "
                         f"in a point, e.g. {jobs[0][-2] if jobs and len(jobs[0]) > 1 else 'objective=grpo'})")
    return kept


def shape_overrides(shape: JobShape) -> list[str]:
    """The launcher fields of one job shape, so a group of points with this shape is launched as such jobs."""
    if shape == JobShape(engine=shape.engine):  # a one-process launcher: nothing to set
        return []
    out = [f"hydra.launcher.nodes={shape.nodes}", f"hydra.launcher.tasks_per_node={shape.tasks_per_node}",
           f"hydra.launcher.gpus_per_node={shape.gpus_per_node}"]  # fmt: skip
    return out + ([f"hydra.launcher.timeout_min={shape.timeout_min}"] if shape.timeout_min else [])


def print_plan(planned: list[Job], statuses: dict[str, str], todo: list[Job]) -> None:
    """Per point: status, run id, job shape, estimated GPU-hours, overrides; then the counts and the total."""
    def hours(h: float | None) -> str:
        return "?" if h is None else f"{h:,.1f}"

    for j in planned:  # a one-process launcher (local): the lines as they always were
        shape = f"[{j.shape.describe()}; ~{hours(j.gpu_hours)} GPU-h] " if shape_overrides(j.shape) else ""
        print(f"{statuses[j.run_id]:<7} {j.run_id:<32} {shape}{' '.join(j.overrides)}")
    counts = {s: sum(v == s for v in statuses.values()) for s in ("done", "running", "queued")}
    print(f"{len(planned)} runs: {counts['done']} done, {counts['running']} running, {counts['queued']} queued "
          f"(skipped); {len(todo)} to run")  # fmt: skip
    known = [j.gpu_hours for j in todo if j.gpu_hours is not None]
    if todo and known and todo[0].shape.gpus:
        print(f"estimated: ~{hours(sum(known))} GPU-hours to run ({len(known)} of {len(todo)} runs estimated; "
              f"all {len(planned)} points: ~{hours(sum(j.gpu_hours or 0 for j in planned))}). Estimate only: "
              f"tokens x 6 x params / (peak FLOP/s x MFU), every completion at full length, assuming "
              f"{'; '.join(dict.fromkeys(j.basis for j in todo))} (model.resources.peak_tflops, mfu)")  # fmt: skip


def run_sweep(path: str | Path, overrides: list[str] = (), seeds: list[int] | None = None, dry_run: bool = False,
              task: Callable[[Any], Any] = train_task, only: list[str] = (), wait: bool = True) -> dict[str, Any]:  # fmt: skip
    """Expand, plan, skip finished, running and queued runs, launch the rest (only the points matching ``only``, if
    given), one launch per job shape. Returns counts and the failed jobs' override lists. ``wait=False`` (SLURM):
    return once every job is queued; the runs keep their queued markers, so a relaunch submits nothing twice."""
    sweep = load_sweep(path)
    if seeds is not None:
        sweep["seeds"] = list(seeds)
    try:
        planned = plan(select(sweep_jobs(sweep, overrides), list(only)))
    except PermissionError as err:  # a run's status, read under an output_root this user may not search
        raise ConfigError(f"output_root: this user cannot look into {err.filename} ({err.strerror}); set output_root "
                          "to a directory you can read and write") from None
    statuses = {j.run_id: j.status for j in planned}
    todo = [j for j in planned if statuses[j.run_id] in ("new", "resume")]
    if not dry_run:  # before any marker: one line, not an OSError (a dry run writes nothing)
        for root in dict.fromkeys(j.run.root for j in todo):
            writable_dir(root, "output_root")
    print_plan(planned, statuses, todo)
    for note in other_code(planned):
        print(note)
    report = {"points": len(planned), "skipped": len(planned) - len(todo), "launched": 0, "failed": []}
    if dry_run or not todo:
        return report
    common = common_overrides(sweep, overrides)
    launcher = next((o.split("=", 1)[1] for o in reversed(common) if o.startswith("launcher=")), "local")
    if not wait and launcher != "submitit_slurm":
        raise SweepError(f"--no-wait: only launcher=submitit_slurm queues jobs that outlive this command (got {launcher})")
    for j in todo:  # queued: a relaunch while these are pending or running skips them (sspo_exp.rundir)
        j.run.mark_submitted(launcher)
    for shape in dict.fromkeys(j.shape for j in todo):  # one launch (one job array) per job shape
        group = [j for j in todo if j.shape == shape]
        results = launch([j.overrides for j in group], common=[*common, *shape_overrides(shape)], task=task, wait=wait,
                         on_submitted=lambda i, job_id, group=group: group[i].run.mark_submitted(launcher, job_id))  # fmt: skip
        report["launched"] += len(group)
        if not wait:
            continue
        for j in group:  # every job has its result (rank 0's, or its failure): no marker is left to look queued
            j.run.submitted_file.unlink(missing_ok=True)
        report["failed"] += failures(group, results)
    if not wait:
        print(f"queued {len(todo)} jobs; watch them with `squeue --me`, and this same command with --dry-run instead "
              f"of --no-wait (status per run); logs under <output_root>/.hydra/multirun-*/.submitit/")  # fmt: skip
    return report


def failures(group: list[Job], results: list[Any]) -> list[list[str]]:
    """The override lists of the jobs whose Hydra result holds an exception (each printed on one line)."""
    failed = []
    for job, result in zip(group, results):
        try:
            result.return_value  # re-raises the job's exception  # noqa: B018
        except Exception as e:  # noqa: BLE001 - report every failure, keep the others' results
            print(f"FAILED {job.run_id}: {type(e).__name__}: {e}", file=sys.stderr)
            failed.append(job.overrides)
    return failed


def build_parser() -> argparse.ArgumentParser:
    """``sspo-exp sweep`` (sspo_exp/cli.py dispatches it here)."""
    parser = argparse.ArgumentParser(prog="sspo-exp sweep", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("sweep", help="sweep file or shipped sweep name, e.g. sweeps/table1.yaml or table1")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. launcher=submitit_slurm")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the file's seeds")
    parser.add_argument("--only", nargs="+", default=[], metavar="KEY=VALUE",
                        help="run only the points holding these overrides, e.g. --only trainer.mu=4")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the runs: status, job shape, estimated GPU-hours; launch nothing")
    parser.add_argument("--no-wait", action="store_true",
                        help="launcher=submitit_slurm: return once every job is queued (watch with squeue / --dry-run)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run_sweep(args.sweep, args.overrides, args.seeds, args.dry_run, only=args.only, wait=not args.no_wait)
    except (SweepError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
