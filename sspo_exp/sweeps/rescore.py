"""``sspo-exp eval --sweep FILE`` / ``--group G``: re-score every finished run of a sweep (or of a W&B group) under one
evaluation profile, the step between a sweep and its table (docs/reproduce.md)::

    sspo-exp eval --sweep sweeps/table1.yaml eval.backend=vllm eval.dtype=bfloat16 eval.benchmarks=[gsm8k,math500,aime25]
    sspo-exp eval --sweep sweeps/table1.yaml --dry-run                 # which runs would be scored, which are skipped
    sspo-exp eval --group 'tiny·arithmetic·sspo-atanlog·τ0.3/0.2·μ2·3f9a1c'   # the seeds of one setting (or its hash)
    sspo-exp eval --sweep sweeps/table1.yaml eval.backend=vllm launcher=submitit_slurm hydra.launcher.partition=gpu

The sweep's points are those ``sspo-exp sweep`` runs (``sspo_exp.sweeps.grid``: the same expansion, ``--seeds`` and
``--only``), each mapped to its run id by the training plan; the overrides given here are split by key: ``eval.*``,
``arithmetic.*``, ``codeact.*``, ``seed``, ``launcher`` and ``hydra.*`` configure the evaluation, ``output_root``
both, everything else is one of the sweep's own overrides (give the ones you gave ``sspo-exp sweep``: they decide the
run ids). A run that is not finished (no ``summary.json``) is skipped and named. The rest are scored as one Hydra
multirun of ``conf/eval.yaml`` (``eval.model=<run dir>`` per job) through the sweep's own launch path, so
``launcher=submitit_slurm`` makes each run one SLURM job of one process (1 GPU unless ``hydra.launcher.*`` says
otherwise) and ``--no-wait`` returns once they are queued. Each run's results land in
``<run>/reeval/<profile_id>/`` and under ``reeval/<profile_id>/eval/…`` in its W&B summary, which
``sspo-exp report --reeval <profile_id>`` reads.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sspo_exp import CONF_DIR
from sspo_exp.errors import ConfigError
from sspo_exp.evaluation.settings import check_eval, profile_id
from sspo_exp.rundir import RunDir
from sspo_exp.sweeps.errors import SweepError
from sspo_exp.sweeps.grid import launch, load_sweep, plan, select, sweep_jobs

#: Top-level keys of an override that configure the evaluation (conf/eval.yaml and Hydra's own); ``output_root``
#: is both the sweep's (where its runs are) and the evaluation's.
EVAL_KEYS = ("eval", "arithmetic", "codeact", "seed", "launcher", "hydra")
SHARED_KEYS = ("output_root",)


@dataclass(frozen=True)
class Target:
    """One run a re-scoring is about: where it is and what names it (a sweep point's overrides, or its group)."""

    run: RunDir
    label: str

    @property
    def status(self) -> str:
        return self.run.status()


def override_key(override: str) -> str:
    """The top-level key of a Hydra override (``+eval.x=1`` -> ``eval``, ``hydra/launcher=x`` -> ``hydra``)."""
    return override.split("=", 1)[0].lstrip("+~").split(".")[0].split("/")[0]


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """``(the sweep's overrides, the evaluation's)``; see the module docstring for which key goes where."""
    train = [o for o in overrides if override_key(o) not in EVAL_KEYS]
    evaluation = [o for o in overrides if override_key(o) in EVAL_KEYS + SHARED_KEYS]
    return train, evaluation


def sweep_targets(path: str | Path, train_overrides: list[str], seeds: list[int] | None,
                  only: list[str]) -> list[Target]:  # fmt: skip
    """Every point of the sweep (as ``sspo-exp sweep`` expands and plans it) as the run it trains."""
    sweep = load_sweep(path)
    if seeds is not None:
        sweep["seeds"] = list(seeds)
    return [Target(j.run, " ".join(j.overrides)) for j in plan(select(sweep_jobs(sweep, train_overrides), list(only)))]


def group_targets(root: str | Path, group: str) -> list[Target]:
    """Every run under ``root`` whose W&B group (``run.json``) is ``group``; its setting hash matches too."""
    found = [r for r in RunDir.all_under(root) if group in (r.info().get("group"), r.info().get("setting_hash"))]
    if not found:
        raise SweepError(f"--group {group}: no run under {root} has this W&B group or setting hash (run.json)")
    return [Target(r, r.info().get("group") or group) for r in found]


def eval_config(overrides: list[str]):
    """The evaluation's config for these overrides, checked (a bad field: ConfigError before anything is launched)."""
    from hydra import compose, initialize_config_dir

    if any(override_key(o) == "eval" and o.split("=", 1)[0].lstrip("+") in ("eval.model", "eval.output_dir")
           for o in overrides):  # fmt: skip
        raise ConfigError("eval.model / eval.output_dir: not with --sweep or --group (each run is the model, and its "
                          "results go to <run>/reeval/<profile_id>/)")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="eval"):
        cfg = compose("eval", overrides=[*overrides, "eval.model=placeholder"])
    check_eval(cfg)
    return cfg


def choose(targets: list[Target]) -> tuple[list[Target], list[Target]]:
    """``(finished runs, the others)``, each skipped run named with its status on one line."""
    done, skipped = [], []
    for t in targets:
        (done if t.status == "done" else skipped).append(t)
    for t in skipped:
        print(f"skip    {t.run.run_id:<32} {t.status:<7} no finished run (no summary.json)  {t.label}")
    return done, skipped


def rescore(targets: list[Target], eval_overrides: list[str], pid: str, task: Callable[[Any], Any],
            dry_run: bool = False, wait: bool = True) -> dict[str, Any]:  # fmt: skip
    """Score every finished run of ``targets`` under the profile ``pid`` that ``eval_overrides`` give (checked by
    :func:`eval_config`), as one multirun of ``task`` (``sspo-exp eval``'s own) over ``conf/eval.yaml``. Returns the
    counts and the failed run ids."""
    done, skipped = choose(targets)
    for t in done:
        print(f"score   {t.run.run_id:<32} -> {t.run.reeval_dir(pid)}  {t.label}")
    print(f"{len(targets)} runs: {len(done)} to score under profile {pid}, {len(skipped)} skipped (not finished)")
    report = {"profile_id": pid, "scored": 0, "skipped": [t.run.run_id for t in skipped], "failed": []}
    if dry_run or not done:
        return report
    slurm = any(o.startswith("launcher=submitit_slurm") for o in eval_overrides)
    common = [*eval_overrides, *(["hydra.launcher.name=sspo-exp-eval"] if slurm else [])]
    jobs = [[*eval_overrides, f"eval.model={t.run.path}"] for t in done]  # a job is composed from its own list
    results = launch(jobs, common=common, task=task, wait=wait, config="eval")
    if not wait:
        print(f"queued {len(done)} jobs; watch them with `squeue --me`")
        return report
    for t, result in zip(done, results):
        try:
            result.return_value  # re-raises the job's exception  # noqa: B018
            report["scored"] += 1
        except Exception as e:  # noqa: BLE001 - report every failure, keep the others' results
            print(f"FAILED {t.run.run_id}: {type(e).__name__}: {e}", file=sys.stderr)
            report["failed"].append(t.run.run_id)
    root = done[0].run.root
    print(f"scored {report['scored']} of {len(done)} runs under {pid}; the table: "
          f"sspo-exp report --offline {root} --reeval {pid}")
    return report


#: The options that make ``sspo-exp eval`` a re-scoring (sspo_exp/evaluation/cli.py hands the line over here).
FLAGS = ("--sweep", "--group")


def wanted(argv: list[str]) -> bool:
    return any(a in FLAGS or a.startswith(tuple(f + "=" for f in FLAGS)) for a in argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sspo-exp eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--sweep", help="sweep file or shipped sweep name (sweeps/table1.yaml, table1): its runs")
    which.add_argument("--group", help="a W&B group (run.json 'group') or setting hash: its runs under output_root")
    parser.add_argument("overrides", nargs="*", help="the evaluation's overrides (eval.backend=vllm, launcher=...) "
                        "and the sweep's own (the ones given to `sspo-exp sweep`: they decide the run ids)")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the sweep file's seeds")
    parser.add_argument("--only", nargs="+", default=[], metavar="KEY=VALUE",
                        help="only the sweep points holding these overrides, e.g. --only objective=sspo")
    parser.add_argument("--dry-run", action="store_true", help="list the runs to score and those skipped; score none")
    parser.add_argument("--no-wait", action="store_true",
                        help="launcher=submitit_slurm: return once every job is queued")
    return parser


def main(argv: list[str], task: Callable[[Any], Any]) -> int:
    """``sspo-exp eval --sweep|--group ...``: 0 when every finished run was scored, 1 if any failed, 2 on bad input."""
    args = build_parser().parse_args(argv)
    train_overrides, eval_overrides = split_overrides(args.overrides)
    try:
        sweep_only = [o for o in train_overrides if override_key(o) not in SHARED_KEYS]
        if args.group is not None and (sweep_only or args.seeds or args.only):
            raise SweepError(f"--group takes evaluation overrides only (eval.*, output_root, launcher, hydra.*), "
                             f"got {sweep_only or '--seeds/--only'}")  # fmt: skip
        cfg = eval_config(eval_overrides)  # a bad evaluation field: named before the sweep's points are composed
        if args.sweep is not None:
            targets = sweep_targets(args.sweep, train_overrides, args.seeds, args.only)
        else:
            targets = group_targets(cfg.output_root, args.group)
        report = rescore(targets, eval_overrides, profile_id(cfg), task, dry_run=args.dry_run, wait=not args.no_wait)
    except (SweepError, ConfigError) as e:
        print(f"sspo-exp eval: error: {e}", file=sys.stderr)
        return 2
    return 1 if report["failed"] else 0
