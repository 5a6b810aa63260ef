"""``sspo-exp train [overrides]``: compose ``conf/train.yaml`` with Hydra and call ``train(cfg)``
(``sspo_exp.hydra_cli``: overrides, multirun, launchers; exit status 2 for a bad config, before any model loads)."""

from __future__ import annotations

import sys

from sspo_exp import cli_help, hydra_cli, keys
from sspo_exp.cpu import prepare_openmp, thread_plan
from sspo_exp.stages.cache import check_cache
from sspo_exp.train.config import check_local_paths, make_plan


def task(cfg) -> float | None:
    plan = make_plan(cfg)  # a bad config: one line and exit 2 before torch, transformers and TRL load
    if plan.run.summary() is None:  # a finished run is only reported (run_plan), whatever its files
        check_local_paths(cfg)
        if plan.cold_start is not None:
            check_cache(plan.cold_start.stage_id)
    # a CPU run chooses its threads before torch loads: OpenMP reads its wait policy once, when it loads
    threads = prepare_openmp(thread_plan()) if plan.cfg.trainer.get("use_cpu", False) else None
    from sspo_exp.train.run import run_plan, set_cpu_threads  # torch, transformers, TRL: after the config is good

    threads = set_cpu_threads(plan, threads)  # on a shared CPU, torch's default threads would spin against the others
    summary = run_plan(plan, threads=threads)
    return keys.read(summary, keys.HELDOUT)  # Hydra's sweepers (Optuna) read the return value


def main(argv: list[str] | None = None) -> int:
    if cli_help.wants_help(sys.argv[1:] if argv is None else argv):  # groups and examples, not Hydra's config dump
        return cli_help.show("train")
    return hydra_cli.run("train", "sspo-exp train", task, argv)


if __name__ == "__main__":
    sys.exit(main())
