"""Wall time of the default job (``sspo-exp train``, the embedded tiny model on arithmetic), quiet and under load.

Four runs of the real command, each in a fresh output folder:

1. fresh, quiet: an empty cold-start cache (the tiny cold start is built), no other work on the machine;
2. cached, quiet: the cache from (1);
3. fresh, loaded: an empty cache while ``--load`` other CPU-bound processes (busy Python loops) run;
4. cached, loaded.

It prints a Markdown table to paste into docs/training.md: the four wall times, the loaded/quiet ratios (targets on 2
idle cores: fresh <= 60 s, cached <= 20 s, loaded <= 2x quiet), the torch threads each run chose
(``sspo_exp/cpu.py``: the free cores) and its held-out accuracy before -> after RL (the job still learns). ``--threads N`` forces ``OMP_NUM_THREADS=N`` for a comparison with a
fixed count (torch's default on an idle machine is one thread per core). Extra arguments are Hydra overrides
passed to every run (e.g. ``trainer.max_steps=10`` for a quick look). ``--repeat R`` runs the four R times, a row
each and the medians. The CPU seconds of each run show the machine's own drift: the same work costs the same CPU time
on a machine that keeps its speed (a virtual machine's drifted by up to ~30% within an hour, docs/training.md).

    python benchmarks/default_job.py [--load 2] [--threads N] [--repeat R] [overrides ...]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _spin(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def run_job(cache: Path, out: Path, overrides: list[str], threads: int | None) -> tuple[float, float, str, str]:
    """Wall and CPU seconds (user + sys) of one ``sspo-exp train``, the torch threads it chose and its held-out
    accuracy before -> after RL."""
    env = {**os.environ, "SSPO_EXP_CACHE": str(cache), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", "sspo_exp.cli", "train", f"output_root={out}", *overrides], env=env,
                          check=True, stdout=subprocess.PIPE, text=True)  # fmt: skip
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
    chosen = re.search(r"torch threads: (\d+)", done.stdout)
    accuracy = re.search(r"before RL ([\d.]+%)\s+->\s+after RL ([\d.]+%)", done.stdout)
    result = (seconds, cpu, chosen.group(1) if chosen else "?", " -> ".join(accuracy.groups()) if accuracy else "?")
    print(f"{out.name}: {seconds:.1f} s wall, {cpu:.1f} CPU-s, {result[2]} torch threads, held-out {result[3]}",
          file=sys.stderr, flush=True)
    return result


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (the spinners are reaped only at the end)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(root: Path, tag: str, overrides: list[str], threads: int | None, load: int) -> tuple[tuple, tuple]:
    stop = mp.Event()
    workers = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(load)]
    for w in workers:
        w.start()
    try:
        fresh = run_job(root / f"cache-{tag}", root / f"runs-{tag}-fresh", overrides, threads)
        cached = run_job(root / f"cache-{tag}", root / f"runs-{tag}-cached", overrides, threads)
    finally:
        stop.set()
        for w in workers:
            w.join()
    return fresh, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load", type=int, default=2, help="competing CPU-bound processes in the loaded runs")
    parser.add_argument("--threads", type=int, default=None, help="force OMP_NUM_THREADS (default: our choice)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the four runs (a row each, then the median)")
    args, overrides = parser.parse_known_args()
    rounds = []
    for _ in range(args.repeat):  # quiet then loaded in each round: a machine that drifts drifts within a round
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            rounds.append((measure(root, "quiet", overrides, args.threads, 0),
                           measure(root, "loaded", overrides, args.threads, args.load)))  # fmt: skip
    print(f"default job (`sspo-exp train {' '.join(overrides)}`; {os.cpu_count()} cores; torch threads: "
          f"{args.threads or 'chosen by sspo_exp.cpu'}; load: {args.load} busy processes)\n")
    print(f"| run | quiet | with load {args.load} | loaded / quiet | CPU-s quiet, loaded | threads quiet, loaded "
          "| held-out quiet |")
    print("|---|---|---|---|---|---|---|")
    for i, kind in enumerate(("fresh", "cached")):
        for n, (quiet, loaded) in enumerate(rounds, 1):
            q, l = quiet[i], loaded[i]
            name = kind if args.repeat == 1 else f"{kind}, round {n}"
            print(f"| {name} | {q[0]:.1f} s | {l[0]:.1f} s | {l[0] / q[0]:.2f} | {q[1]:.1f}, {l[1]:.1f} | {q[2]}, {l[2]} "
                  f"| {q[3]} |")
        if args.repeat > 1:
            q = statistics.median(r[0][i][0] for r in rounds)
            l = statistics.median(r[1][i][0] for r in rounds)
            ratio = statistics.median(r[1][i][0] / r[0][i][0] for r in rounds)
            print(f"| {kind}, median | {q:.1f} s | {l:.1f} s | {ratio:.2f} | | | |")


if __name__ == "__main__":
    main()
