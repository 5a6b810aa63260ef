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
exp(1/|y_i| Σ_t log f)``.  Each response's term ``T_i`` is multiplied by its advantage ``Â_i`` and the terms are
reduced by :func:`~sspo_exp.objectives.aggregation.aggregate`; the loss is ``−J``.

Besides the loss, every call returns the two per-response weights the objective applies (docs/metrics.md,
"Applied weights"): ``applied_seq_weight`` ``W_i = T_i / T_i|_{ρ≡1}`` (the weight J puts on ``Â_i``, 1 on-policy:
SSPO's gated geometric mean ``S_i`` of Eq. 14, GSPO's clipped ``fClip(s_i)``) and ``grad_seq_weight``
``E_i = 1/|y_i| Σ_t c_{i,t}``, the mean coefficient of ``Â_i/|y_i| · ∇log π_θ(y_{i,t})`` in ∇J (0 for a clipped
token or sequence).
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
    "applied_seq_weight_mean",
    "applied_seq_weight_var",
    "grad_seq_weight_mean",
    "grad_seq_weight_var",
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
    "applied_dev",  # Σ_i (W_i − 1), W_i the applied sequence weight
    "applied_dev_sq",  # Σ_i (W_i − 1)²
    "grad_dev",  # Σ_i (E_i − 1), E_i the gradient's effective sequence weight
    "grad_dev_sq",  # Σ_i (E_i − 1)²
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
    #: [B] float32, detached: ``W_i``, the weight J applies to response i's advantage relative to on-policy (0 for a
    #: response with no tokens; docs/metrics.md)
    applied_seq_weight: Tensor | None = None
    #: [B] float32, detached: ``E_i``, the mean over response i's tokens of their coefficient in ∇J (0 if empty)
    grad_seq_weight: Tensor | None = None

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
        "applied_seq_weight_mean": (1.0 + mean(v["applied_dev"], n_seq)) if n_seq > 0 else 0.0,
        "applied_seq_weight_var": var(v["applied_dev"], v["applied_dev_sq"], n_seq),
        "grad_seq_weight_mean": (1.0 + mean(v["grad_dev"], n_seq)) if n_seq > 0 else 0.0,
        "grad_seq_weight_var": var(v["grad_dev"], v["grad_dev_sq"], n_seq),
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
            gated_log_seq = self._seq_log_f(log_seq, positive)
            seq_value = torch.exp(gated_log_seq.clamp(max=LOG_RATIO_MAX))
            token_f = None
        else:
            token_f = torch.exp(log_f.clamp(max=LOG_RATIO_MAX))
            seq_value = seq_mean(token_f, maskf, length)
        seq_terms = seq_value * adv * (length > 0)
        loss = -aggregate(seq_terms, length, self.loss_agg)

        with torch.no_grad():  # the applied weights W_i, E_i (module docstring) and the diagnostics' sums
            log_f_on = self.token_gate.log_f(torch.zeros_like(log_ratio[:, :1]), positive)  # [B, 1]: log f(1)
            if self.geometric:  # log W_i = gated mean log f − its value at ρ ≡ 1
                applied_dev = torch.expm1((gated_log_seq - self._seq_log_f(log_f_on[:, 0], positive))
                                          .clamp(-LOG_RATIO_MAX, LOG_RATIO_MAX))  # fmt: skip
                log_seq_arg = log_seq
            else:  # W_i = 1/|y_i| Σ_t f(ρ_t)/f(1)
                applied_dev = seq_mean(torch.expm1((log_f - log_f_on).clamp(max=LOG_RATIO_MAX)), maskf, length)
                log_seq_arg = None
            w = self.token_gate.weight(log_ratio, positive)
            row_coef, gate_factor = self._coefficients(w, log_f, log_ratio, token_f, log_seq_arg, positive, maskf,
                                                       seq_value.detach())  # fmt: skip
            nonempty = (length > 0).float()
            applied = (1.0 + applied_dev) * nonempty
            grad_weight = row_coef / length.clamp(min=1.0)
            sums = self._sums(log_ratio, valid, length, gate_factor, row_coef, applied_dev * nonempty,
                              (grad_weight - 1.0) * nonempty)  # fmt: skip
        return ObjectiveOutput(loss=loss, sums=sums, applied_seq_weight=applied, grad_seq_weight=grad_weight)

    def _seq_log_f(self, log_seq: Tensor, positive: Tensor) -> Tensor:
        """The sequence gate (GSPO's clip of ``log s_i``) on a mean log gate [B]; the identity without one."""
        return log_seq if self.seq_gate is None else self.seq_gate.log_f(log_seq, positive[:, 0])

    def _coefficients(self, w, log_f, log_ratio, token_f, log_seq, positive, maskf, seq_value) -> tuple[Tensor, Tensor]:
        """``Σ_t c_{i,t}`` per response [B] and each token's gate factor ``a_t`` [B, T].

        ``c_{i,t}`` is the coefficient of ``Â_i/|y_i| · ∇log π_θ(y_{i,t})`` in ∇J (SPEC.md Eq. 14's ``S_i·w(ρ)`` for a
        geometric mean, times the sequence gate's derivative ``d log g / d log x`` for GSPO; ``f(ρ)·w(ρ)`` for an
        arithmetic one; 1 on-policy). The gate factor is ``c`` relative to the ungated objective (the same mean with
        ``f(ρ) = ρ``): ``f(ρ)/ρ · w(ρ)`` for arithmetic means, ``w(ρ)`` (times the sequence gate's factor) for
        geometric ones.
        """
        if self.geometric:
            coef = seq_value
            gate_factor = w
            if self.seq_gate is not None:
                seq_factor = self.seq_gate.weight(log_seq, positive[:, 0])
                coef = seq_value * seq_factor
                gate_factor = w * seq_factor.unsqueeze(-1)
            return coef * torch.linalg.vecdot(w, maskf), gate_factor
        gate_factor = torch.exp((log_f - log_ratio).clamp(max=LOG_RATIO_MAX)) * w
        return torch.linalg.vecdot(token_f * w, maskf), gate_factor

    def _sums(self, log_ratio, valid, length, gate_factor, row_coef, applied_dev, grad_dev) -> Tensor:
        """:data:`SUMS` of this batch in one pass over the tokens (documented in docs/metrics.md).

        ``clipped`` counts tokens with gate factor ``a_t = 0`` (hard-clipped), ``attenuated`` those with
        ``a_t < 1/2``; ``token_weight`` sums ``c_{i,t}`` (:meth:`_coefficients`). ``applied_dev``/``grad_dev`` are
        ``W_i − 1`` and ``E_i − 1`` per response (0 for an empty one). ``log_ratio`` is 0 at masked positions, so
        ``ρ − 1 = expm1(log ρ)`` needs no mask.
        """
        nonempty = length > 0
        row_log_ratio = log_ratio.sum(dim=-1)
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
                row_coef.sum(),
                clipped.float(),
                attenuated.float(),
                row_log_ratio.sum(),
                applied_dev.sum(),
                torch.dot(applied_dev, applied_dev),
                grad_dev.sum(),
                torch.dot(grad_dev, grad_dev),
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
