"""Forward+backward time (loss and its diagnostics) and peak memory of every objective, as ratios measured in the
same run against TRL's own GRPO loss with its own metrics, and against our GRPO.

    python benchmarks/objectives.py [--sizes 64x1024 256x4096] [--reps 20]

Baseline ``trl-grpo``: the formula of TRL 1.16's ``GRPOTrainer._compute_loss`` for ``loss_type="grpo"``
(token ratio, two-sided clip, ``min``, per-sequence token mean, mean over sequences) followed by the metrics it
logs for that loss (``clip_ratio/low_mean``, ``high_mean``, ``region_mean``, ``low_min``, ``high_max``, each
reduced to a Python float with ``.item()``), reproduced from its source for one process (``accelerator.reduce``
and ``gather`` are the identity there).  Entropy, which both trainers log the same way, is left out of both.
Ours: ``objective(...)`` returning the loss and its diagnostics' sums (``ObjectiveOutput.sums``, one fused pass,
no host sync), plus the trainer's per-step accumulation of those sums.  Column ``loss only`` times our loss with
the diagnostics switched off, to show what they cost.  Target (issue 11): ours ≤ 1.5× ``trl-grpo``.

Time: minimum over ``--reps`` interleaved repetitions (one torch thread, float32): on a shared machine the
least-disturbed repetition is the best estimate of a kernel's own cost (medians moved 5× between runs under load).  Peak memory: the rise of the
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
import subprocess
import sys
import time

import torch

from sspo_exp.objectives import SUMS

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


def trl_grpo(logp, old, adv, mask, eps_low: float = 0.2, eps_high: float = 0.2):
    """TRL 1.16's GRPO loss and logged clip metrics (``grpo_trainer.py``, ``_compute_loss``), one process."""
    from trl.trainer.utils import nanmax, nanmin

    mask = mask.float()
    advantages = adv.unsqueeze(1)
    coef_1 = torch.exp(logp - old)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token_loss = -torch.min(coef_1 * advantages, coef_2 * advantages)
    loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()

    def global_masked_mean(x):
        totals = torch.stack([(x * mask).sum(), mask.sum().float()])
        return (totals[0] / totals[1].clamp(min=1.0)).item()

    def masked_seq_mean(x):
        return (x * mask).sum(-1) / mask.sum(-1)

    is_low = (coef_1 < 1 - eps_low) & (advantages < 0)
    is_high = (coef_1 > 1 + eps_high) & (advantages > 0)
    metrics = [global_masked_mean(is_low.float()), global_masked_mean(is_high.float()),
               global_masked_mean((is_low | is_high).float()), nanmin(masked_seq_mean(is_low.float())).item(),
               nanmax(masked_seq_mean(is_high.float())).item()]  # fmt: skip
    return loss, metrics


class Ours:
    """Our objective as the trainer calls it: loss + sums, the sums added to the step's running total."""

    def __init__(self, obj, metrics: bool = True):
        self.obj, self.metrics = obj, metrics
        self.total = torch.zeros(len(SUMS), dtype=torch.float64)

    def __call__(self, logp, old, adv, mask):
        if not self.metrics:
            with _no_sums():
                return self.obj(logp, old, adv, mask).loss
        out = self.obj(logp, old, adv, mask)
        self.total += out.sums.double()
        return out.loss


class _no_sums:
    """Switch the objective's diagnostics off (benchmark only: the ``loss only`` column)."""

    def __enter__(self):
        from sspo_exp.objectives.core import Objective

        self.saved = Objective._sums
        Objective._sums = lambda self, *a: torch.zeros(len(SUMS))

    def __exit__(self, *exc):
        from sspo_exp.objectives.core import Objective

        Objective._sums = self.saved


def step(fn, logp, old, adv, mask) -> None:
    loss = fn(logp, old, adv, mask)
    loss = loss[0] if isinstance(loss, tuple) else loss
    loss.backward()
    logp.grad = None


def build(case: str, metrics: bool = True):
    from sspo_exp.objectives import make_objective

    if case == "trl-grpo":
        return trl_grpo
    kw = dict(CASES[case])
    return Ours(make_objective(kw.pop("name"), **kw), metrics)


def time_all(B: int, T: int, reps: int) -> dict[str, float]:
    objs = {"trl-grpo": build("trl-grpo"), **{c: build(c) for c in CASES},
            **{f"{c} loss only": build(c, metrics=False) for c in CASES}}
    batch = inputs(B, T)
    for obj in objs.values():  # warm-up
        step(obj, *batch)
    samples: dict[str, list[float]] = {c: [] for c in objs}
    for _ in range(reps):
        for c, obj in objs.items():
            t0 = time.perf_counter()
            step(obj, *batch)
            samples[c].append(time.perf_counter() - t0)
    return {c: min(s) for c, s in samples.items()}


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
        mems = {c: peak_memory(c, B, T) for c in ("trl-grpo", *CASES)}
        trl = times["trl-grpo"]
        print(f"\nB x T = {B} x {T}, float32, 1 thread, min of {args.reps}; fwd+bwd of loss + metrics")
        print(f"{'objective':<14}{'ms':>8}{'x TRL':>7}{'x GRPO':>8}{'loss only':>10}{'peak MB':>9}{'x GRPO':>8}")
        print(f"{'trl-grpo':<14}{trl * 1e3:8.2f}{1:7.2f}{trl / times['grpo']:8.2f}{'':>10}"
              f"{mems['trl-grpo'] / 2**20:9.1f}{mems['trl-grpo'] / max(mems['grpo'], 1):8.2f}")
        for c in CASES:
            print(
                f"{c:<14}{times[c] * 1e3:8.2f}{times[c] / trl:7.2f}{times[c] / times['grpo']:8.2f}"
                f"{times[c + ' loss only'] * 1e3:10.2f}{mems[c] / 2**20:9.1f}{mems[c] / max(mems['grpo'], 1):8.2f}"
            )


if __name__ == "__main__":
    main()
