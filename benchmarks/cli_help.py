"""Time ``sspo-exp COMMAND --help`` for every command (target: each under 0.5 s), in fresh interpreters.

    python benchmarks/cli_help.py [--repeat 5]

Each command's help runs ``--repeat`` times in a new ``python -c`` process (what a user's shell does); printed per
command: the median and the worst wall time, the target verdict, and the heavy libraries the page imported (the
test suite asserts there are none: tests/test_cli_help.py; timings belong here, not in tests). ``python`` alone
(interpreter start-up, the floor of every figure) is timed too. The load average is printed: other work on the
machine inflates wall times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.5
HEAVY = ("torch", "transformers", "trl", "wandb", "pandas", "matplotlib", "optuna", "hydra")
PROBE = ("import sys\nfrom sspo_exp.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
         "print('HEAVY', [m for m in {heavy!r} if m in sys.modules], file=sys.stderr)")


def timed(code: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    return time.perf_counter() - start, out.stderr


def main() -> int:
    sys.path.insert(0, str(ROOT))  # this checkout's commands, as the timed processes see them
    from sspo_exp.cli import COMMANDS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {args.repeat} runs each; target < {TARGET} s")
    floor = [timed("pass")[0] for _ in range(args.repeat)]
    print(f"{'python -c pass':<27} median {statistics.median(floor):.3f} s   worst {max(floor):.3f} s")
    slow = 0
    for command in ["(none)", *COMMANDS]:
        argv = ["--help"] if command == "(none)" else [command, "--help"]
        runs = [timed(PROBE.format(args=argv, heavy=HEAVY)) for _ in range(args.repeat)]
        times = [t for t, _ in runs]
        heavy = next((line for line in runs[-1][1].splitlines() if line.startswith("HEAVY")), "HEAVY ?")
        ok = statistics.median(times) < TARGET
        slow += not ok
        label = f"sspo-exp {' '.join(argv)}"
        print(f"{label:<27} median {statistics.median(times):.3f} s   worst {max(times):.3f} s   "
              f"{'ok' if ok else 'SLOW'}   imports {heavy.removeprefix('HEAVY ')}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
