"""The ``sspo-exp`` command: one sub-command per job, each a thin entry point.

    sspo-exp train [hydra overrides]     train (the default job: tiny model, arithmetic, SSPO/atanlog, CPU)
    sspo-exp eval [hydra overrides]      greedy Pass@1 on the paper's benchmarks
    sspo-exp report [options]            rebuild Tables 1-2 and the curves from W&B runs
    sspo-exp sweep FILE [overrides]      run a sweep file (sweeps/*.yaml) as one Hydra multirun
    sspo-exp optuna [options]            Optuna search over epsilon / temperatures
    sspo-exp cold-start [hydra overrides] compute a training config's cold start only (a job the RL jobs depend on)
    sspo-exp gates                       print the five SSPO gates next to hard clipping (Figure 1 as a table)
    sspo-exp --version                   the installed package version
    sspo-exp train --help                config groups, their options and examples (also for eval)
    sspo-exp sandbox [--weak]            how model-written code is isolated here, and the hostile-program table
"""

from __future__ import annotations

import importlib
import sys

from sspo_exp import __version__

COMMANDS = {
    "train": ("sspo_exp.train.cli", "train the policy with one objective (Hydra overrides follow)"),
    "eval": ("sspo_exp.evaluation.cli", "greedy Pass@1 of a run or model on benchmarks (Hydra overrides follow)"),
    "report": ("sspo_exp.report.cli", "tables and curves from W&B runs (online or offline)"),
    "sweep": ("sspo_exp.sweeps.grid", "run a sweep file (the paper's grids) as one Hydra multirun"),
    "optuna": ("sspo_exp.sweeps.optuna_cli", "Optuna search: create a study, run workers"),
    "cold-start": ("sspo_exp.train.cold_start_cli", "compute the cold start of a training config (train's overrides)"),
    "gates": ("sspo_exp.objectives.table", "print the SSPO gates and token weights (the paper's Figure 1)"),
    "sandbox": ("sspo_exp.sandbox.cli", "check the code sandbox here and run hostile programs in it"),
}


def _usage() -> str:
    lines = ["usage: sspo-exp [--version] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "sspo-exp COMMAND --help: that command's options (train, eval: config groups and examples)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if argv[0] in {"-V", "--version"}:
        print(f"sspo-exp {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"sspo-exp: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    result = module.main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
