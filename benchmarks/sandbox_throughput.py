"""Episode throughput of the code sandbox against a plain subprocess, measured in the same run.

    python benchmarks/sandbox_throughput.py [--episodes 32] [--pool 4] [--starts 20]

An episode is what a CodeAct rollout does per prompt: start an interpreter, run three cells (define, compute,
print; the REPL's state carries across them), end it. Two ways, the same REPL (sspo_exp/sandbox/repl.py) and
protocol:

* ``sandbox``: a full-strength :class:`Sandbox` from a :class:`SandboxPool` (bubblewrap namespaces, a cgroup
  with the memory and process budget, the seccomp filter, rlimits, the private uid), released (killed, cgroup
  removed) at the end of the episode;
* ``plain``: the REPL as a plain child process (no isolation, no limits but the REPL's own rlimits), the baseline.

Reports the median start-up (to the REPL's ready frame, sequential starts) and episodes/s with ``--pool``
episodes in flight, and their ratios. Exit status 1 if a target is missed (docs/sandbox.md states them): the
sandbox's start-up at most 100 ms over the plain one and its throughput >= 0.5 x plain (both against the baseline
of the same run, so a loaded machine moves both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sspo_exp.sandbox import Limits, Sandbox, SandboxConfig, SandboxPool  # noqa: E402
from sspo_exp.sandbox.isolation import REPL  # noqa: E402
from sspo_exp.sandbox.repl import read_frame, write_frame  # noqa: E402

CELLS = (
    "def collatz(n):\n    steps = 0\n    while n != 1:\n        n = n // 2 if n % 2 == 0 else 3 * n + 1\n"
    "        steps += 1\n    return steps",
    "best = max(range(1, 3000), key=collatz)",
    "print(best, collatz(best))",
)
EXPECTED = "2919 216\n"
LIMITS = Limits(wall_seconds=60)
TARGET_OVERHEAD_MS, TARGET_RATIO = 100.0, 0.5


class Plain:
    """The baseline: the same REPL as a plain child process, no isolation."""

    def __init__(self) -> None:
        cfg = {"cpu_seconds": LIMITS.cpu_seconds, "memory_mb": LIMITS.memory_mb, "processes": None,
               "output_bytes": LIMITS.output_bytes, "disk_mb": LIMITS.disk_mb, "site_dirs": []}
        if os.geteuid() == 0:  # the REPL refuses to run model code as root
            cfg["uid"] = cfg["gid"] = 2_000_000_000 + os.getpid()
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", str(REPL), json.dumps(cfg)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert read_frame(self.proc.stdout.fileno())["ready"]

    def run(self, code: str) -> str:
        write_frame(self.proc.stdin.fileno(), {"code": code})
        return read_frame(self.proc.stdout.fileno())["output"]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


def _episode_plain(_: int) -> str:
    p = Plain()
    try:
        return [p.run(c) for c in CELLS][-1]
    finally:
        p.close()


def _episode_sandbox(pool: SandboxPool) -> str:
    box = pool.open()
    try:
        return [box.run(c).output for c in CELLS][-1]
    finally:
        pool.release(box)


def startup_ms(kind: str, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        box = Plain() if kind == "plain" else Sandbox(LIMITS).__enter__()
        times.append((time.perf_counter() - t0) * 1000)
        box.close()
    return statistics.median(times)


def throughput(kind: str, episodes: int, pool_size: int) -> float:
    t0 = time.perf_counter()
    with SandboxPool(SandboxConfig(LIMITS, pool_size=pool_size)) as pool, ThreadPoolExecutor(pool_size) as threads:
        fn = _episode_plain if kind == "plain" else (lambda _: _episode_sandbox(pool))
        outputs = list(threads.map(fn, range(episodes)))
    assert outputs == [EXPECTED] * episodes, outputs[:3]
    return episodes / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--pool", type=int, default=4)
    ap.add_argument("--starts", type=int, default=20)
    args = ap.parse_args(argv)
    print("sandbox:", Sandbox.check())
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    Sandbox(LIMITS).__enter__().close()  # warm the page cache for both
    start = {k: startup_ms(k, args.starts) for k in ("plain", "sandbox")}
    rate = {k: throughput(k, args.episodes, args.pool) for k in ("plain", "sandbox")}
    ratio = rate["sandbox"] / rate["plain"]
    print(f"start-up (median of {args.starts}): plain {start['plain']:.0f} ms, sandbox {start['sandbox']:.0f} ms "
          f"(+{start['sandbox'] - start['plain']:.0f} ms)")
    print(f"episodes/s ({args.episodes} episodes, {args.pool} at once): plain {rate['plain']:.1f}, "
          f"sandbox {rate['sandbox']:.1f} ({ratio:.2f}x plain)")
    ok = start["sandbox"] - start["plain"] <= TARGET_OVERHEAD_MS and ratio >= TARGET_RATIO
    print(f"targets: start-up <= plain + {TARGET_OVERHEAD_MS:.0f} ms, throughput >= {TARGET_RATIO}x plain: "
          + ("met" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
