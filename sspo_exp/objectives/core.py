"""Every objective of SPEC.md as one composition: token gate × mean (arithmetic or geometric) × aggregation.

===========  ====================  ==========  =================  ==========
objective    token gate (log f)    token mean  sequence gate      SPEC.md
===========  ====================  ==========  =================  ==========
grpo         advantage-aware clip  arithmetic  —                  Eq. 2
gspo         identity              geometric   advantage-aware    Eqs. 5–6
gmpo         advantage-aware clip  geometric   —                  Eq. 7
sapo         SAPO soft gate        arithmetic  —                  Eqs. 8–10
sspo         one of five gates     geometric   —                  Eqs. 11, 17
===========  ====================  ==========  =================  ==========

*Arithmetic* means ``1/|y_i| Σ_t f(ρ_{i,t})``; *geometric* means ``(Π_t f(ρ_{i,t}))^{1/|y_i|} =
exp(1/|y_i| Σ_t log f)``.  Each response's term is multiplied by its advantage ``Â_i`` and the terms are reduced
by :func:`~sspo_exp.objectives.aggregation.aggregate`; the loss is ``−J``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from .aggregation import aggregate, lengths, seq_mean
from .gates import LOG_RATIO_MAX

#: (log_ratio [B,T] or [B], positive-advantage mask broadcastable to it) -> tensor of the same shape.
GateFn = Callable[[Tensor, Tensor], Tensor]

METRICS = (
    "seq_weight_mean",
    "seq_weight_var",
    "token_ratio_mean",
    "token_ratio_var",
    "token_weight_mean",
    "clip_frac",
    "attenuated_frac",
    "approx_kl",
)


@dataclass(frozen=True)
class BoundGate:
    """A gate with its advantage-dependent parameters (ε or τ) bound: ``log f`` and ``w = d log f / d log ρ``."""

    log_f: GateFn
    weight: GateFn


@dataclass
class ObjectiveOutput:
    """``loss``: 0-dim float32 tensor to minimise (``−J``). ``metrics``: floats named in :data:`METRICS`."""

    loss: Tensor
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Objective:
    """``obj(log_probs, old_log_probs, advantages, mask) -> ObjectiveOutput`` for one objective of SPEC.md.

    Shapes: ``log_probs``, ``old_log_probs`` and ``mask`` are [B, T] (``mask`` bool or 0/1 float, 1 = response
    token); ``advantages`` is [B] (or [B, 1]).  Inputs may be float32 or bfloat16; the computation runs in
    float32.  Masked positions may hold any finite value: they change nothing.
    """

    name: str
    token_gate: BoundGate
    geometric: bool
    seq_gate: BoundGate | None = None
    loss_agg: str = "seq-mean-token-mean"

    def __call__(self, log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, mask: Tensor) -> ObjectiveOutput:
        _check_shapes(log_probs, old_log_probs, advantages, mask)
        maskf = mask.to(torch.float32)
        valid = maskf > 0
        log_ratio = torch.where(valid, log_probs.float() - old_log_probs.float(), 0.0)
        adv = advantages.float().reshape(-1)
        positive = (adv > 0).unsqueeze(-1)
        length = lengths(maskf)

        log_f = torch.where(valid, self.token_gate.log_f(log_ratio, positive), 0.0)
        if self.geometric:
            log_seq = seq_mean(log_f, maskf, length)
            gated_log_seq = log_seq if self.seq_gate is None else self.seq_gate.log_f(log_seq, positive[:, 0])
            seq_value = torch.exp(gated_log_seq.clamp(max=LOG_RATIO_MAX))
        else:
            seq_value = seq_mean(torch.exp(log_f.clamp(max=LOG_RATIO_MAX)), maskf, length)
        seq_terms = seq_value * adv * (length > 0)
        loss = -aggregate(seq_terms, length, self.loss_agg)

        with torch.no_grad():
            metrics = self._metrics(log_ratio, log_f, positive, valid, maskf, length, seq_value)
        return ObjectiveOutput(loss=loss, metrics=metrics)

    def _metrics(self, log_ratio, log_f, positive, valid, maskf, length, seq_value) -> dict[str, float]:
        """Diagnostics over response tokens (documented in docs/metrics.md).

        The *gate factor* ``a_t`` of a token is its gradient weight relative to the ungated objective (the same
        mean with ``f(ρ) = ρ``): ``f(ρ)/ρ · w(ρ)`` for arithmetic means, ``w(ρ)`` (times the sequence gate's
        ``0/1``) for geometric ones.  ``clip_frac`` = share of tokens with ``a_t = 0`` (hard-clipped),
        ``attenuated_frac`` = share with ``a_t < 1/2``.  ``token_weight_mean`` is the mean coefficient of
        ``Â_i/|y_i| · ∇log π`` (1 on-policy).  ``approx_kl`` is the k3 estimator ``(ρ−1) − log ρ``.
        """
        nonempty = length > 0
        w = self.token_gate.weight(log_ratio, positive)
        if self.geometric:
            seq_factor = torch.ones_like(seq_value)
            if self.seq_gate is not None:
                seq_factor = self.seq_gate.weight(seq_mean(log_ratio, maskf, length), positive[:, 0])
            gate_factor = w * seq_factor.unsqueeze(-1)
            token_weight = seq_value.unsqueeze(-1) * gate_factor
        else:
            gate_factor = torch.exp((log_f - log_ratio).clamp(max=LOG_RATIO_MAX)) * w
            token_weight = torch.exp(log_f.clamp(max=LOG_RATIO_MAX)) * w
        token_ratio = torch.exp(log_ratio.clamp(-LOG_RATIO_MAX, LOG_RATIO_MAX))
        seq_weight = torch.exp(seq_mean(log_ratio, maskf, length).clamp(-LOG_RATIO_MAX, LOG_RATIO_MAX))[nonempty]
        tokens = token_ratio[valid]
        values = torch.stack(
            [
                _mean(seq_weight),
                _var(seq_weight),
                _mean(tokens),
                _var(tokens),
                _mean(token_weight[valid]),
                _mean((gate_factor[valid] == 0).float()),
                _mean((gate_factor[valid] < 0.5).float()),
                _mean(tokens - 1 - log_ratio[valid]),
            ]
        )
        return dict(zip(METRICS, values.tolist()))


def _mean(x: Tensor) -> Tensor:
    return x.mean() if x.numel() else x.new_zeros(())


def _var(x: Tensor) -> Tensor:
    """Population variance (0 for fewer than two values)."""
    return x.var(unbiased=False) if x.numel() > 1 else x.new_zeros(())


def _check_shapes(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, mask: Tensor) -> None:
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be [B, T]; got shape {tuple(log_probs.shape)}")
    if old_log_probs.shape != log_probs.shape:
        raise ValueError(f"old_log_probs shape {tuple(old_log_probs.shape)} != log_probs {tuple(log_probs.shape)}")
    if mask.shape != log_probs.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != log_probs {tuple(log_probs.shape)}")
    if advantages.numel() != log_probs.shape[0] or advantages.dim() > 2:
        raise ValueError(f"advantages must be [B] = [{log_probs.shape[0]}]; got shape {tuple(advantages.shape)}")
