"""Forward+backward time and peak memory of every objective, as ratios to GRPO measured in the same run.

    python benchmarks/objectives.py [--sizes 64x1024 256x4096] [--reps 20]

Time: median over ``--reps`` interleaved repetitions (one torch thread, float32).  Peak memory: the rise of the
process's peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs`` once the inputs exist) over its RSS before
the step, measured in a fresh subprocess per (objective, size) so that one objective's allocator state does not
leak into another's figure.  The child runs with glibc's ``MALLOC_MMAP_THRESHOLD_=65536`` so that every tensor
buffer is its own mapping, returned on free: RSS then follows the bytes that are really alive.  Linux only.  Target (issue 2): SSPO (atanlog) ≤ 1.2× GRPO in both.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import torch

CASES = {
    "grpo": dict(name="grpo", eps_low=0.2),
    "gspo": dict(name="gspo", eps_low=0.2),
    "gmpo": dict(name="gmpo", eps_low=0.2),
    "sapo": dict(name="sapo", tau_pos=1.05, tau_neg=1.0),
    **{
        f"sspo-{g}": dict(name="sspo", gate=g, **({} if g == "gumbel" else dict(tau_pos=0.2, tau_neg=0.3)))
        for g in ("atanlog", "siglog", "expsig", "expatan", "gumbel")
    },
}


def inputs(B: int, T: int):
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(B, T, generator=g) * 5
    logp = (old + 0.1 * torch.randn(B, T, generator=g)).requires_grad_()
    adv = torch.randn(B, generator=g)
    mask = torch.arange(T)[None, :] < torch.randint(T // 4, T + 1, (B, 1), generator=g)
    return logp, old, adv, mask


def step(obj, logp, old, adv, mask) -> None:
    out = obj(logp, old, adv, mask)
    out.loss.backward()
    logp.grad = None


def build(case: str):
    from sspo_exp.objectives import make_objective

    kw = dict(CASES[case])
    return make_objective(kw.pop("name"), **kw)


def time_all(B: int, T: int, reps: int) -> dict[str, float]:
    objs = {c: build(c) for c in CASES}
    batch = inputs(B, T)
    for obj in objs.values():  # warm-up
        step(obj, *batch)
    samples: dict[str, list[float]] = {c: [] for c in CASES}
    for _ in range(reps):
        for c, obj in objs.items():
            t0 = time.perf_counter()
            step(obj, *batch)
            samples[c].append(time.perf_counter() - t0)
    return {c: statistics.median(s) for c, s in samples.items()}


def peak_memory_child(case: str, B: int, T: int) -> None:
    """Runs in a subprocess: print the peak-RSS rise (bytes) of one forward+backward."""
    torch.set_num_threads(1)
    obj = build(case)
    batch = inputs(B, T)
    step(obj, *inputs(2, 8))  # import-time and first-call allocations out of the way
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak-RSS high-water mark
        f.write("5")
    base = _status_kb("VmRSS")
    step(obj, *batch)
    print(json.dumps({"bytes": (_status_kb("VmHWM") - base) * 1024}))


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


def peak_memory(case: str, B: int, T: int) -> float:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, f"{B}x{T}"], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["64x1024", "256x4096"])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        B, T = map(int, args.child[1].split("x"))
        return peak_memory_child(args.child[0], B, T)

    torch.set_num_threads(1)
    for size in args.sizes:
        B, T = map(int, size.split("x"))
        times = time_all(B, T, args.reps)
        mems = {c: peak_memory(c, B, T) for c in CASES}
        print(f"\nB x T = {B} x {T}, float32, 1 thread, median of {args.reps}")
        print(f"{'objective':<14}{'fwd+bwd ms':>11}{'x GRPO':>8}{'peak MB':>9}{'x GRPO':>8}")
        for c in CASES:
            print(
                f"{c:<14}{times[c] * 1e3:11.2f}{times[c] / times['grpo']:8.2f}"
                f"{mems[c] / 2**20:9.1f}{mems[c] / max(mems['grpo'], 1):8.2f}"
            )


if __name__ == "__main__":
    main()
