"""Token gates, each written as ``log f`` — a function of ``log ρ`` (SPEC.md, "Gates for SSPO").

A gate maps the token log-ratio ``log ρ = logp − old_logp`` to ``log f(ρ)``.  Working in log space keeps every
gate finite for any finite input: the five SSPO gates are bounded in log space (e.g. atanlog lies in
``(−τπ/2, τπ/2)``), so the geometric mean ``exp(mean_t log f)`` never overflows.

Each gate also gives its *token weight* ``w(ρ) = ρ · f'(ρ)/f(ρ) = d log f / d log ρ`` (the paper's Eqs. 16, 18–22),
which multiplies ``∇ log π`` in SSPO's gradient (Eq. 14).  The tests check ``w`` against autograd of ``log f``
and against SPEC.md's table written in the ratio domain.

Gates whose formula uses ``ρ`` itself (expsig, expatan, gumbel, SAPO's soft gate) exponentiate
``min(log ρ, LOG_RATIO_MAX)``: beyond ``ρ = e^20 ≈ 4.9e8`` every such gate is already flat in float32, and the
clamp keeps ``inf · 0`` out of the backward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

#: log ρ is clamped to this before ``exp`` wherever a formula needs ρ itself (a numerical guard, not the paper's).
LOG_RATIO_MAX = 20.0

LogF = Callable[[Tensor, Tensor], Tensor]


def _ratio(log_ratio: Tensor) -> Tensor:
    return torch.exp(log_ratio.clamp(max=LOG_RATIO_MAX))


# --- the five SSPO gates (Eqs. 15, 18-22); ``tau`` broadcasts against ``log_ratio`` -------------------------


def expsig(log_ratio: Tensor, tau: Tensor) -> Tensor:
    """Eq. 18: ``f = exp(4τ·σ((ρ−1)/τ) − 2τ)``; condition (iii.1)."""
    return 4 * tau * torch.sigmoid((_ratio(log_ratio) - 1) / tau) - 2 * tau


def expatan(log_ratio: Tensor, tau: Tensor) -> Tensor:
    """Eq. 19: ``f = exp(τ·arctan((ρ−1)/τ))``; condition (iii.1)."""
    return tau * torch.atan((_ratio(log_ratio) - 1) / tau)


def gumbel(log_ratio: Tensor, tau: Tensor | None = None) -> Tensor:
    """Eq. 20: ``f = exp(−exp(−(ρ−1)) + 1)``, no temperature; condition (iii.2)."""
    return 1 - torch.exp(1 - _ratio(log_ratio))


def atanlog(log_ratio: Tensor, tau: Tensor) -> Tensor:
    """Eq. 15 (the paper's default): ``f = exp(τ·arctan(log ρ / τ))``; condition (iii.2)."""
    return tau * torch.atan(log_ratio / tau)


def siglog(log_ratio: Tensor, tau: Tensor) -> Tensor:
    """Eq. 21: ``f = exp(4τ·σ(log ρ/τ) − 2τ)``; condition (iii.2)."""
    return 4 * tau * torch.sigmoid(log_ratio / tau) - 2 * tau


# --- token weights w(ρ) = ρ f'/f = d log f / d log ρ (Eqs. 16, 18-22) -------------------------------------


def expsig_weight(log_ratio: Tensor, tau: Tensor) -> Tensor:
    rho = _ratio(log_ratio)
    s = torch.sigmoid((rho - 1) / tau)
    return 4 * s * (1 - s) * rho


def expatan_weight(log_ratio: Tensor, tau: Tensor) -> Tensor:
    rho = _ratio(log_ratio)
    return rho / (1 + ((rho - 1) / tau) ** 2)


def gumbel_weight(log_ratio: Tensor, tau: Tensor | None = None) -> Tensor:
    rho = _ratio(log_ratio)
    return rho * torch.exp(1 - rho)


def atanlog_weight(log_ratio: Tensor, tau: Tensor) -> Tensor:
    return 1 / (1 + (log_ratio / tau) ** 2)


def siglog_weight(log_ratio: Tensor, tau: Tensor) -> Tensor:
    s = torch.sigmoid(log_ratio / tau)
    return 4 * s * (1 - s)


@dataclass(frozen=True)
class Gate:
    """One SSPO gate: ``log f`` and ``w = d log f / d log ρ`` as functions of ``log ρ``.

    ``condition`` is the paper's form of property (iii): ``"iii.1"`` (``f'/f`` is bell-shaped) or ``"iii.2"``
    (``w = ρ f'/f`` is bell-shaped and ``w(0) = 0``).
    """

    name: str
    log_f: LogF
    weight: LogF
    condition: str
    has_temperature: bool = True


GATES: dict[str, Gate] = {
    "expsig": Gate("expsig", expsig, expsig_weight, "iii.1"),
    "expatan": Gate("expatan", expatan, expatan_weight, "iii.1"),
    "gumbel": Gate("gumbel", gumbel, gumbel_weight, "iii.2", has_temperature=False),
    "atanlog": Gate("atanlog", atanlog, atanlog_weight, "iii.2"),
    "siglog": Gate("siglog", siglog, siglog_weight, "iii.2"),
}

def identity(log_ratio: Tensor, tau: Tensor | None = None) -> Tensor:
    """``f(ρ) = ρ``: SSPO with it is unclipped GSPO (an identity of SPEC.md). Not one of the paper's gates."""
    return log_ratio


def identity_weight(log_ratio: Tensor, tau: Tensor | None = None) -> Tensor:
    return torch.ones_like(log_ratio)


IDENTITY = Gate("identity", identity, identity_weight, "none", has_temperature=False)


def get_gate(name: str) -> Gate:
    if name not in GATES:
        raise ValueError(f"gate={name!r} is not a known SSPO gate; valid values: {', '.join(GATES)}")
    return GATES[name]


def log_gate(name: str, log_ratio: Tensor, tau: float | Tensor | None = None) -> Tensor:
    """``log f(ρ)`` of gate ``name`` as a function of ``log ρ``, elementwise.

    >>> log_gate("atanlog", torch.tensor([0.0]), 0.2)
    tensor([0.])
    """
    gate = get_gate(name)
    if gate.has_temperature:
        tau = None if tau is None else torch.as_tensor(tau, dtype=log_ratio.dtype, device=log_ratio.device)
        if tau is None or not bool((tau > 0).all()):
            raise ValueError(f"gate {name!r} needs a temperature tau > 0; got tau={tau!r}")
    elif tau is not None:
        raise ValueError(f"gate {name!r} has no temperature; got tau={tau!r} (pass tau=None)")
    return gate.log_f(log_ratio, tau)


# --- the baselines' gates, in the same log-space form --------------------------------------------------------


def clip_log_f(log_ratio: Tensor, positive: Tensor, eps_low: float, eps_high: float) -> Tensor:
    """Advantage-aware clip in log space: ``log min(ρ, 1+ε_high)`` if ``Â > 0`` else ``log max(ρ, 1−ε_low)``.

    This is exactly PPO's ``min(ρÂ, clip(ρ)Â)`` (SPEC.md, "Advantage-aware clip").
    """
    upper = log_ratio.clamp(max=math.log1p(eps_high))
    lower = log_ratio.clamp(min=math.log1p(-eps_low))
    return torch.where(positive, upper, lower)


def clip_weight(log_ratio: Tensor, positive: Tensor, eps_low: float, eps_high: float) -> Tensor:
    """``d log fClip / d log ρ``: 1 where the ratio is inside its advantage-aware bound, 0 where clipped."""
    inside = torch.where(positive, log_ratio <= math.log1p(eps_high), log_ratio >= math.log1p(-eps_low))
    return inside.to(log_ratio.dtype)


def sapo_log_f(log_ratio: Tensor, tau: Tensor) -> Tensor:
    """SAPO's soft gate (Eqs. 8–10) in log space: ``log[σ(τ(ρ−1)) · 4/τ]``."""
    return torch.nn.functional.logsigmoid(tau * (_ratio(log_ratio) - 1)) + math.log(4.0) - torch.log(tau)


def sapo_weight(log_ratio: Tensor, tau: Tensor) -> Tensor:
    """``d log fSoft / d log ρ = τρ(1 − σ(τ(ρ−1)))``; times ``fSoft`` it is SAPO's token weight ``4σ(1−σ)ρ``."""
    rho = _ratio(log_ratio)
    return tau * rho * torch.sigmoid(-tau * (rho - 1))


#: SAPO's gate in the same form (not an SSPO gate: f(1) = 2/τ); its weight times f is SAPO's ``4σ(1−σ)ρ``.
SAPO_GATE = Gate("sapo", sapo_log_f, sapo_weight, "none")
