"""Wall time of the default job (``sspo-exp train``, the embedded tiny model on arithmetic), quiet and under load.

Four runs of the real command, each in a fresh output folder:

1. fresh, quiet: an empty cold-start cache (the tiny cold start is built), no other work on the machine;
2. cached, quiet: the cache from (1);
3. fresh, loaded: an empty cache while ``--load`` other CPU-bound processes (busy Python loops) run;
4. cached, loaded.

It prints the four times and the loaded/quiet ratios (the target: no more than 2x; ``sspo_exp/cpu.py`` chooses
torch's thread count from the free cores). ``--threads N`` forces ``OMP_NUM_THREADS=N`` for a comparison with a
fixed count (torch's default on an idle machine is one thread per core). Extra arguments are Hydra overrides
passed to every run (e.g. ``trainer.max_steps=10`` for a quick look).

    python benchmarks/default_job.py [--load 2] [--threads N] [overrides ...]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
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


def run_job(cache: Path, out: Path, overrides: list[str], threads: int | None) -> float:
    env = {**os.environ, "SSPO_EXP_CACHE": str(cache), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sspo_exp.cli", "train", f"output_root={out}", *overrides], env=env,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def measure(root: Path, tag: str, overrides: list[str], threads: int | None, load: int) -> tuple[float, float]:
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
    args, overrides = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        quiet = measure(root, "quiet", overrides, args.threads, 0)
        loaded = measure(root, "loaded", overrides, args.threads, args.load)
    print(f"default job ({' '.join(overrides) or 'no overrides'}; threads: {args.threads or 'chosen by sspo_exp.cpu'})")
    print(f"{'':>8} {'quiet':>9} {f'load {args.load}':>9} {'ratio':>6}")
    for name, q, l in (("fresh", quiet[0], loaded[0]), ("cached", quiet[1], loaded[1])):
        print(f"{name:>8} {q:8.1f}s {l:8.1f}s {l / q:6.2f}")


if __name__ == "__main__":
    main()
