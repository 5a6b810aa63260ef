"""The ``sspo-exp`` command: one sub-command per job, each a thin entry point.

    sspo-exp train [hydra overrides]     train (the default job: tiny model, arithmetic, SSPO/atanlog, CPU)
    sspo-exp eval [hydra overrides]      greedy Pass@1 on the paper's benchmarks
    sspo-exp report [options]            rebuild Tables 1-2 and the curves from W&B runs
    sspo-exp sweep FILE [overrides]      run a sweep file (sweeps/*.yaml) as one Hydra multirun
    sspo-exp optuna [options]            Optuna search over epsilon / temperatures
    sspo-exp prefetch SWEEP|OVERRIDES    fetch a sweep's or run's models and datasets into the HF cache (login node)
    sspo-exp cold-start [hydra overrides] compute a training config's cold start only (a job the RL jobs depend on)
    sspo-exp gates                       print the five SSPO gates next to hard clipping (Figure 1 as a table)
    sspo-exp --version                   the installed package version
    sspo-exp train --help                config groups, their options and examples (also for eval)
    sspo-exp sandbox [--weak]            how model-written code is isolated here, and the hostile-program table
    sspo-exp env [--json]                versions, CPU/GPU, SLURM, sandbox, W&B and HF settings for a bug report
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading

from sspo_exp import __version__

COMMANDS = {
    "train": ("sspo_exp.train.cli", "train the policy with one objective (Hydra overrides follow)"),
    "eval": ("sspo_exp.evaluation.cli", "greedy Pass@1 of a run or model on benchmarks (Hydra overrides follow)"),
    "report": ("sspo_exp.report.cli", "tables and curves from W&B runs (online or offline)"),
    "sweep": ("sspo_exp.sweeps.grid", "run a sweep file (the paper's grids) as one Hydra multirun"),
    "optuna": ("sspo_exp.sweeps.optuna_cli", "Optuna search: create a study, run workers"),
    "prefetch": ("sspo_exp.sweeps.prefetch", "fetch the models and datasets of a run or sweep into the HF cache"),
    "cold-start": ("sspo_exp.train.cold_start_cli", "compute the cold start of a training config (train's overrides)"),
    "gates": ("sspo_exp.objectives.table", "print the SSPO gates and token weights (the paper's Figure 1)"),
    "sandbox": ("sspo_exp.sandbox.cli", "check the code sandbox here and run hostile programs in it"),
    "env": ("sspo_exp.env_cli", "versions, cores, GPUs, SLURM, sandbox, W&B and HF settings (for a bug report)"),
}


def _usage() -> str:
    lines = ["usage: sspo-exp [--version] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "sspo-exp COMMAND --help: that command's options (train, eval: config groups and examples)"]
    return "\n".join(lines)


#: The commands whose arguments are Hydra overrides: Hydra's shell completion completes them.
HYDRA_COMMANDS = ("train", "eval")
COMPLETION_FLAGS = ("-sc", "--shell-completion")


def _complete(argv: list[str]) -> int:
    """``sspo-exp -sc query=bash``, as the bash function of ``eval "$(sspo-exp train -sc install=bash)"`` calls it
    (with the program's first word only): complete the command name, or hand the line, without the command word,
    to that command's Hydra, which completes config groups, options and keys."""
    line = os.environ.get("COMP_LINE")
    if len(argv) < 2 or not argv[1].startswith("query=") or line is None:
        print(f"sspo-exp: {' '.join(argv)}: install completion with eval \"$(sspo-exp train -sc install=bash)\"; "
              "the shell then calls `sspo-exp -sc query=bash` with COMP_LINE set", file=sys.stderr)
        return 2
    point = int(os.environ.get("COMP_POINT", len(line)))
    words = line[:point].split()
    if len(words) < 2 or (len(words) == 2 and not line[:point].endswith(" ")):  # completing the command name
        prefix = words[1] if len(words) == 2 else ""
        print(" ".join(name for name in COMMANDS if name.startswith(prefix)))
        return 0
    if words[1] not in HYDRA_COMMANDS:
        return 0  # argparse commands: nothing to complete
    start = line.index(words[1])
    os.environ["COMP_LINE"] = line[:start] + line[start + len(words[1]):].lstrip()
    os.environ["COMP_POINT"] = str(point - (len(line) - len(os.environ["COMP_LINE"])))
    return int(importlib.import_module(COMMANDS[words[1]][0]).main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if argv[0] in COMPLETION_FLAGS:
        return _complete(argv)
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


def entry() -> None:
    """The ``sspo-exp`` program: :func:`main`, then the process ends at once. The interpreter's own teardown after a
    run (freeing torch's, transformers' and W&B's modules object by object) took ~1.5 s on 2 cores, after the work and
    every file were done; so once :func:`main` has returned, the exit handlers run (``atexit``: logging, W&B,
    multiprocessing, temporary directories), the standard streams are flushed and the process exits with status 0.
    A failed command (a non-zero status, an exception, ``SystemExit`` from inside it) takes the usual way out: under
    ``torchrun`` the launcher stops the other processes as soon as one fails, and an instant exit left them no time to
    print their own error line (seen in CI). So does a run while a thread that is not a daemon still runs (the
    interpreter waits for it)."""
    code = main()
    if code != 0 or any(t.is_alive() and not t.daemon for t in threading.enumerate()
                        if t is not threading.main_thread()):  # fmt: skip
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter would run next, in the same (reverse registration) order
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:  # None: started with the stream closed (`>&-`)
                stream.flush()
        except BrokenPipeError:  # the reader left (`sspo-exp ... | head`): nothing left to deliver
            pass
        except (OSError, ValueError):  # e.g. a full disk under `> file`: fail, as the interpreter would (status 120)
            code = code or 120
    os._exit(code)


if __name__ == "__main__":
    entry()
