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

from dataclasses import dataclass
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

#: The sufficient statistics behind :data:`METRICS`, summed over one call's responses or tokens.  Sums add:
#: the sums of several micro-batches (and devices) are the sums of the whole optimizer step, and
#: :func:`pooled_metrics` turns them into the step's metrics.  Deviations from 1 (``s − 1``, ``ρ − 1``) rather
#: than raw values keep ``Σx²/n − (Σx/n)²`` free of cancellation when the weights sit near 1.
SUMS = (
    "seqs",  # responses with at least one token
    "seq_dev",  # Σ_i (s_i − 1)
    "seq_dev_sq",  # Σ_i (s_i − 1)²
    "tokens",  # response tokens
    "token_dev",  # Σ_t (ρ_t − 1)
    "token_dev_sq",  # Σ_t (ρ_t − 1)²
    "token_weight",  # Σ_t coefficient of Â_i/|y_i| · ∇log π_t
    "clipped",  # tokens with gate factor 0
    "attenuated",  # tokens with gate factor < 1/2
    "log_ratio",  # Σ_t log ρ_t (with token_dev: Σ_t (ρ−1) − log ρ, the k3 estimator)
)


@dataclass(frozen=True)
class BoundGate:
    """A gate with its advantage-dependent parameters (ε or τ) bound: ``log f`` and ``w = d log f / d log ρ``."""

    log_f: GateFn
    weight: GateFn


@dataclass
class ObjectiveOutput:
    """``loss``: 0-dim float32 tensor to minimise (``−J``). ``sums``: float32 tensor [len(SUMS)] of the
    diagnostics' sufficient statistics, on the inputs' device, detached (no host sync was needed to make it).

    ``metrics`` turns ``sums`` into floats named in :data:`METRICS` (this copies to the host: a sync on GPU);
    the trainer instead adds ``sums`` over a whole optimizer step and calls :func:`pooled_metrics` once.
    """

    loss: Tensor
    sums: Tensor

    @property
    def metrics(self) -> dict[str, float]:
        return pooled_metrics(self.sums.tolist())


def pooled_metrics(sums) -> dict[str, float]:
    """:data:`METRICS` from summed :data:`SUMS` (a sequence of floats in that order, e.g. a step's total).

    Means are pooled ``Σx / n`` over every response (``seq_*``) or token (the rest) that went into the sums;
    variances are population variances ``Σ(x−m)²/n`` of those same values; shares are counts over tokens.
    A mean or variance over nothing is 0.
    """
    v = dict(zip(SUMS, (float(x) for x in sums)))
    n_seq, n_tok = v["seqs"], v["tokens"]

    def mean(total: float, n: float) -> float:
        return total / n if n > 0 else 0.0

    def var(dev: float, dev_sq: float, n: float) -> float:
        return max(mean(dev_sq, n) - mean(dev, n) ** 2, 0.0)

    return {
        "seq_weight_mean": (1.0 + mean(v["seq_dev"], n_seq)) if n_seq > 0 else 0.0,
        "seq_weight_var": var(v["seq_dev"], v["seq_dev_sq"], n_seq),
        "token_ratio_mean": (1.0 + mean(v["token_dev"], n_tok)) if n_tok > 0 else 0.0,
        "token_ratio_var": var(v["token_dev"], v["token_dev_sq"], n_tok),
        "token_weight_mean": mean(v["token_weight"], n_tok),
        "clip_frac": mean(v["clipped"], n_tok),
        "attenuated_frac": mean(v["attenuated"], n_tok),
        "approx_kl": max(mean(v["token_dev"] - v["log_ratio"], n_tok), 0.0),
    }


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
            token_f = None
        else:
            token_f = torch.exp(log_f.clamp(max=LOG_RATIO_MAX))
            seq_value = seq_mean(token_f, maskf, length)
        seq_terms = seq_value * adv * (length > 0)
        loss = -aggregate(seq_terms, length, self.loss_agg)

        with torch.no_grad():
            sums = self._sums(log_ratio, log_f, token_f, positive, valid, maskf, length, seq_value.detach())
        return ObjectiveOutput(loss=loss, sums=sums)

    def _sums(self, log_ratio, log_f, token_f, positive, valid, maskf, length, seq_value) -> Tensor:
        """:data:`SUMS` of this batch in one pass over the tokens (documented in docs/metrics.md).

        The *gate factor* ``a_t`` of a token is its gradient weight relative to the ungated objective (the same
        mean with ``f(ρ) = ρ``): ``f(ρ)/ρ · w(ρ)`` for arithmetic means, ``w(ρ)`` (times the sequence gate's
        ``0/1``) for geometric ones.  ``clipped`` counts tokens with ``a_t = 0`` (hard-clipped), ``attenuated``
        those with ``a_t < 1/2``.  ``token_weight`` sums the coefficient of ``Â_i/|y_i| · ∇log π`` (1 on-policy).
        ``log_ratio`` is 0 at masked positions, so ``ρ − 1 = expm1(log ρ)`` needs no mask.
        """
        nonempty = length > 0
        w = self.token_gate.weight(log_ratio, positive)
        row_log_ratio = log_ratio.sum(dim=-1)
        if self.geometric:
            seq_factor = None
            if self.seq_gate is not None:
                seq_factor = self.seq_gate.weight(row_log_ratio / length.clamp(min=1.0), positive[:, 0])
            row_w = torch.linalg.vecdot(w, maskf)
            coef = seq_value if seq_factor is None else seq_value * seq_factor
            token_weight = (coef * row_w).sum()
            gate_factor = w if seq_factor is None else w * seq_factor.unsqueeze(-1)
        else:
            gate_factor = torch.exp((log_f - log_ratio).clamp(max=LOG_RATIO_MAX)) * w
            token_weight = torch.linalg.vecdot((token_f * w).flatten(), maskf.flatten())
        clipped = ((gate_factor == 0) & valid).sum()
        attenuated = ((gate_factor < 0.5) & valid).sum()
        token_dev = torch.expm1(log_ratio.clamp(-LOG_RATIO_MAX, LOG_RATIO_MAX)).flatten()
        seq_dev = torch.expm1((row_log_ratio / length.clamp(min=1.0)).clamp(-LOG_RATIO_MAX, LOG_RATIO_MAX))
        seq_dev = seq_dev * nonempty
        return torch.stack(
            [
                nonempty.sum().float(),
                seq_dev.sum(),
                torch.dot(seq_dev, seq_dev),
                length.sum(),
                token_dev.sum(),
                torch.dot(token_dev, token_dev),
                token_weight,
                clipped.float(),
                attenuated.float(),
                row_log_ratio.sum(),
            ]
        )


def _check_shapes(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, mask: Tensor) -> None:
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be [B, T]; got shape {tuple(log_probs.shape)}")
    if old_log_probs.shape != log_probs.shape:
        raise ValueError(f"old_log_probs shape {tuple(old_log_probs.shape)} != log_probs {tuple(log_probs.shape)}")
    if mask.shape != log_probs.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != log_probs {tuple(log_probs.shape)}")
    if advantages.numel() != log_probs.shape[0] or advantages.dim() > 2:
        raise ValueError(f"advantages must be [B] = [{log_probs.shape[0]}]; got shape {tuple(advantages.shape)}")
