"""The objective's diagnostics and the token entropy, pooled over each whole optimizer step (docs/metrics.md).

Every micro-batch adds its sufficient statistics (``ObjectiveOutput.sums`` and Σ entropy over response tokens)
to a running total kept on the device; at the step's last micro-batch that total becomes the step's record.
Nothing is copied to the host per micro-batch. At logging time the records of every step since the last log are
summed over devices in one collective and copied to the host once; each step's metrics are then computed from
its pooled sums (:func:`sspo_exp.objectives.pooled_metrics`). So ``seq_weight_var`` is the variance over all
P·G responses of the step on all devices, not a mean of per-micro-batch variances (whose expectation is
(b−1)/b of it, and which is exactly 0 for b = 1).

Staleness. TRL reuses one rollout for ``steps_per_generation`` micro-batches = μ optimizer steps; the step's
index within its rollout is ``(micro-batch counter mod steps_per_generation) // gradient_accumulation_steps``
(TRL's ``_prepare_inputs`` indexes its buffer the same way). Index 0 is the *fresh* step (π_θ = π_old, every
ratio 1); the others are *stale* (off-policy). The drift metric's pooled variance (the ungated Eq. 6 ratio s_i) is
also logged on stale steps only as ``objective/seq_weight_var_stale``; the mean and variance of the weights each
objective applies (``applied_seq_weight``, ``grad_seq_weight``: ``sspo_exp.keys.PHASE_METRICS``) are also logged
as ``objective/<metric>_stale`` on stale steps and ``objective/<metric>_fresh`` on fresh ones.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from sspo_exp import keys
from sspo_exp.objectives import METRICS, SUMS, pooled_metrics

COLUMNS = (*SUMS, "entropy")  # the pooled record of one step: the objective's sums, then Σ entropy
STALE_KEY = keys.DRIFT_VAR_STALE
ROLLOUT_STEP_KEY = keys.ROLLOUT_STEP


class StepPool:
    """Running sums per mode (``"train"`` / ``"eval"``) and the finished steps' records awaiting a log."""

    def __init__(self) -> None:
        self._running: dict[str, Tensor] = {}
        self._steps: dict[str, list[tuple[Tensor, int | None]]] = {"train": [], "eval": []}

    def add(self, mode: str, sums: Tensor, entropy_sum: Tensor, *, last: bool, rollout_step: int | None) -> None:
        """Add one micro-batch; ``last`` closes the optimizer step (``rollout_step`` = its index in the rollout)."""
        row = torch.cat([sums.detach().double(), entropy_sum.detach().double().reshape(1)])
        running = self._running.get(mode)
        self._running[mode] = row if running is None else running + row
        if last:
            self._steps[mode].append((self._running.pop(mode), rollout_step))

    def flush(self, mode: str, reduce_sum: Callable[[Tensor], Tensor]) -> list[dict[str, float]]:
        """The metrics of every step finished since the last flush, oldest first.

        ``reduce_sum`` sums a tensor over devices (a collective: every process calls ``flush`` at the same
        points, as every process calls ``Trainer.log``). In eval there are no optimizer steps: everything since
        the last flush is one pooled record.
        """
        if mode != "train" and mode in self._running:
            self._steps[mode].append((self._running.pop(mode), None))
        steps, self._steps[mode] = self._steps[mode], []
        if not steps:
            return []
        totals = reduce_sum(torch.stack([row for row, _ in steps])).tolist()  # the one host copy
        return [step_metrics(total, k) for total, (_, k) in zip(totals, steps)]


def step_metrics(total: list[float], rollout_step: int | None) -> dict[str, float]:
    """Logged values of one step from its pooled record (:data:`COLUMNS` order)."""
    sums = dict(zip(COLUMNS, total))
    metrics = pooled_metrics([sums[k] for k in SUMS])
    out = {keys.objective_key(k): metrics[k] for k in METRICS}
    out["entropy"] = sums["entropy"] / sums["tokens"] if sums["tokens"] > 0 else 0.0
    if rollout_step is not None:
        out[ROLLOUT_STEP_KEY] = float(rollout_step)
        phase = keys.STALE if rollout_step > 0 else keys.FRESH
        out.update({keys.objective_key(k, phase): metrics[k] for k in keys.PHASE_METRICS})
        if rollout_step > 0:
            out[STALE_KEY] = metrics["seq_weight_var"]
    return out
