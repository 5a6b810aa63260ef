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
submitit_slurm``, conf/launcher/) as ONE multirun, exactly as ``sspo-exp train -m`` would. Before anything is
launched every point is composed (a typo fails at once, naming the point) and mapped to its deterministic run
id (``sspo_exp.train.run.run_id``): a run whose ``summary.json`` exists is skipped, a run with checkpoints is
launched again and resumes from its last one.

    sspo-exp sweep sweeps/table1.yaml --dry-run          # list the points and their status
    sspo-exp sweep sweeps/cpu_minigrid.yaml --seeds 0    # run on this machine
    sspo-exp sweep sweeps/cpu_study_staleness.yaml --only trainer.mu=4 --dry-run   # only the points with mu = 4
    sspo-exp sweep sweeps/table1.yaml launcher=submitit_slurm hydra.launcher.partition=gpu
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
from sspo_exp.sweeps.errors import SweepError

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

    @property
    def run(self):
        from sspo_exp.rundir import RunDir

        return RunDir.of(self.run_dir)

    @property
    def status(self) -> str:
        """``done``, ``running``, ``queued``, ``resume`` or ``new`` (``sspo_exp.rundir.RunDir.status``)."""
        return self.run.status()


def plan(jobs: list[list[str]]) -> list[Job]:
    """Compose and validate every job (the training plan's own checks, ``sspo_exp.train.config.make_plan``) and
    locate its run directory by its run id. Every bad point is named, and nothing is launched, if any is bad."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from sspo_exp.errors import ConfigError
    from sspo_exp.train.config import make_plan

    planned, seen, bad = [], {}, []
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        for overrides in jobs:
            try:
                p = make_plan(compose("train", overrides=overrides), world_size=1)
            except (HydraException, OmegaConfBaseException, ConfigError) as e:
                bad.append(f"  {' '.join(overrides)}\n      -> {e}")
                continue
            rid = p.run.run_id
            if rid in seen:  # e.g. a gate swept with a non-SSPO objective: the same run twice
                print(f"note: {' '.join(overrides)} is the same run as {' '.join(seen[rid])} ({rid}); running it once")
                continue
            seen[rid] = overrides
            planned.append(Job(overrides, rid, p.run.path, p.run.info().get("code") if p.run.summary_file.exists() else None))
    if bad:
        raise SweepError(f"{len(bad)} of {len(jobs)} sweep points are invalid; nothing was launched:\n" + "\n".join(bad))
    return planned


def other_code(jobs: list[Job]) -> list[str]:
    """Notes for finished runs that other code versions made (their run.json), so a table mixing them says so."""
    from sspo_exp.evaluation.provenance import git_info
    from sspo_exp.train.run import code_version

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
    from sspo_exp.train.run import train

    return train(cfg, callbacks)


def launch(jobs: list[list[str]], common: list[str] = (), task: Callable[[Any], Any] = train_task,
           on_submitted: Callable[[int, str], None] | None = None) -> list[Any]:
    """Run ``jobs`` (override lists) as one Hydra multirun of ``conf/train.yaml`` with the launcher ``common``
    selects (``launcher=submitit_slurm`` ...). Returns Hydra's JobReturn of each job, in order.

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
    hydra = Hydra.create_main_hydra2("train", create_config_search_path(str(CONF_DIR)))
    try:
        cfg = hydra.compose_config("train", overrides=list(common), run_mode=RunMode.MULTIRUN, with_log_configuration=True)
        callbacks = Callbacks(cfg)
        context = HydraContext(config_loader=hydra.config_loader, callbacks=callbacks)
        callbacks.on_multirun_start(config=cfg, config_name="train")
        launcher = Plugins.instance().instantiate_launcher(hydra_context=context, task_function=task, config=cfg)
        sweep_dir = Path(str(cfg.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, sweep_dir / "multirun.yaml")
        watcher = None
        if on_submitted and "slurm" in str(cfg.hydra.launcher.get("_target_", "")).lower():
            watcher = SlurmIdWatcher(sweep_dir / ".submitit", len(jobs), on_submitted)
        try:
            results = list(launcher.launch([list(j) for j in jobs], initial_job_idx=0))
        finally:
            if watcher:
                watcher.stop()
        callbacks.on_multirun_end(config=cfg, config_name="train")
        return results
    finally:
        GlobalHydra.instance().clear()


class SlurmIdWatcher:
    """Reads the SLURM job id of each queued run as submitit writes it (``<folder>/<array>_<task>/``; the array's task
    index is the job's index in the launch) and reports it, so the run's submission marker carries its job id."""

    def __init__(self, folder: Path, n: int, on_submitted: Callable[[int, str], None], every: float = 1.0):
        import threading

        self.folder, self.n, self.on_submitted, self.every = folder, n, on_submitted, every
        self._seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="slurm-ids", daemon=True)
        self._thread.start()

    def _scan(self) -> None:
        for path in self.folder.iterdir() if self.folder.is_dir() else ():
            array, _, task = path.name.partition("_")
            task = task or ("0" if self.n == 1 else "")  # submitit submits a single job as a plain job, not an array
            if array.isdigit() and task.isdigit() and int(task) < self.n and int(task) not in self._seen:
                self._seen.add(int(task))
                self.on_submitted(int(task), path.name)

    def _loop(self) -> None:
        while not self._stop.wait(self.every) and len(self._seen) < self.n:
            self._scan()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._scan()


def select(jobs: list[list[str]], only: list[str]) -> list[list[str]]:
    """The jobs whose override list holds every ``key=value`` of ``only`` (a part of a sweep, e.g. one mu)."""
    kept = [j for j in jobs if set(only) <= set(j)]
    if only and not kept:
        raise SweepError(f"--only {' '.join(only)}: no sweep point has these overrides (each must appear exactly as "
                         f"in a point, e.g. {jobs[0][-2] if jobs and len(jobs[0]) > 1 else 'objective=grpo'})")
    return kept


def run_sweep(path: str | Path, overrides: list[str] = (), seeds: list[int] | None = None, dry_run: bool = False,
              task: Callable[[Any], Any] = train_task, only: list[str] = ()) -> dict[str, Any]:  # fmt: skip
    """Expand, plan, skip finished runs, launch the rest (only the points matching ``only``, if given). Returns
    counts and the failed jobs' override lists."""
    sweep = load_sweep(path)
    if seeds is not None:
        sweep["seeds"] = list(seeds)
    planned = plan(select(sweep_jobs(sweep, overrides), list(only)))
    statuses = {j.run_id: j.status for j in planned}
    todo = [j for j in planned if statuses[j.run_id] in ("new", "resume")]
    for j in planned:
        print(f"{statuses[j.run_id]:<7} {j.run_id:<32} {' '.join(j.overrides)}")
    for note in other_code(planned):
        print(note)
    counts = {s: sum(v == s for v in statuses.values()) for s in ("done", "running", "queued")}
    report = {"points": len(planned), "skipped": len(planned) - len(todo), "launched": 0, "failed": []}
    print(f"{len(planned)} runs: {counts['done']} done, {counts['running']} running, {counts['queued']} queued "
          f"(skipped); {len(todo)} to run")  # fmt: skip
    if dry_run or not todo:
        return report
    launcher = next((o.split("=", 1)[1] for o in reversed(common_overrides(sweep, overrides)) if o.startswith("launcher=")), "local")
    for j in todo:  # queued: a relaunch while these are pending or running skips them (sspo_exp.rundir)
        j.run.mark_submitted(launcher)
    results = launch([j.overrides for j in todo], common=common_overrides(sweep, overrides), task=task,
                     on_submitted=lambda i, job_id: todo[i].run.mark_submitted(launcher, job_id))
    for j in todo:  # every job has ended (the launcher waits for them): no marker is left to look queued
        j.run.submitted_file.unlink(missing_ok=True)
    report["launched"] = len(results)
    for job, result in zip(todo, results):
        try:
            result.return_value  # re-raises the job's exception  # noqa: B018
        except Exception as e:  # noqa: BLE001 - report every failure, keep the others' results
            print(f"FAILED {job.run_id}: {type(e).__name__}: {e}", file=sys.stderr)
            report["failed"].append(job.overrides)
    return report


def build_parser() -> argparse.ArgumentParser:
    """``sspo-exp sweep`` (sspo_exp/cli.py dispatches it here)."""
    parser = argparse.ArgumentParser(prog="sspo-exp sweep", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("sweep", help="sweep file or shipped sweep name, e.g. sweeps/table1.yaml or table1")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. launcher=submitit_slurm")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the file's seeds")
    parser.add_argument("--only", nargs="+", default=[], metavar="KEY=VALUE",
                        help="run only the points holding these overrides, e.g. --only trainer.mu=4")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their status; launch nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run_sweep(args.sweep, args.overrides, args.seeds, args.dry_run, only=args.only)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
