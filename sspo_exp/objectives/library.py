"""Building objectives: a checked :class:`.spec.ObjectiveSpec` → an :class:`.core.Objective` (torch).

Import from :mod:`sspo_exp.objectives`, which re-exports these lazily.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import torch

from .core import METRICS, BoundGate, Objective, ObjectiveOutput
from .gates import GATES, IDENTITY, SAPO_GATE, Gate, clip_log_f, clip_weight, get_gate, log_gate
from .spec import CLIPPED, ObjectiveSpec, objective_spec, spec_from_config



def make_objective(
    name: str,
    *,
    gate: str | None = None,
    tau_pos: float | None = None,
    tau_neg: float | None = None,
    eps_low: float | None = None,
    eps_high: float | None = None,
    loss_agg: str = "seq-mean-token-mean",
) -> Objective:
    """Build objective ``name`` (one of :data:`OBJECTIVES`) with its hyper-parameters.

    - ``grpo`` / ``gspo`` / ``gmpo``: ``eps_low`` in (0, 1) (default 0.2), ``eps_high`` > 0 (default ``eps_low``;
      a larger value is DAPO's clip-higher).
    - ``sapo``: ``tau_pos``, ``tau_neg`` > 0 (slopes; the paper's grid has (τ_neg, τ_pos) ∈ {(1, 1.05), (3, 4), (7, 8)}).
    - ``sspo``: ``gate`` (default ``"atanlog"``) and, except for ``"gumbel"``, ``tau_pos``, ``tau_neg`` > 0
      (widths; the paper's grid has (τ_neg, τ_pos) ∈ {(0.3, 0.2), (0.6, 0.5)}).
    - ``loss_agg``: ``"seq-mean-token-mean"`` (the paper's 1/G Σ_i, default) or ``"token-mean"`` (DAPO-style).

    A parameter that the objective does not take is an error, not silently ignored (:func:`.spec.objective_spec`).
    """
    spec = objective_spec(name, gate=gate, tau_pos=tau_pos, tau_neg=tau_neg, eps_low=eps_low, eps_high=eps_high,
                          loss_agg=loss_agg)
    return build(spec)


def build(spec: ObjectiveSpec) -> Objective:
    """The objective callable of a checked :class:`.spec.ObjectiveSpec`."""
    if spec.name in CLIPPED:
        clip = BoundGate(
            partial(clip_log_f, eps_low=spec.eps_low, eps_high=spec.eps_high),
            partial(clip_weight, eps_low=spec.eps_low, eps_high=spec.eps_high),
        )
        if spec.name == "gspo":
            return Objective(spec.name, _bind(IDENTITY), geometric=True, seq_gate=clip, loss_agg=spec.loss_agg)
        return Objective(spec.name, clip, geometric=spec.name == "gmpo", loss_agg=spec.loss_agg)
    if spec.name == "sapo":
        return Objective(spec.name, _bind(SAPO_GATE, spec.tau_pos, spec.tau_neg), geometric=False, loss_agg=spec.loss_agg)
    gate = get_gate(spec.gate)
    return Objective(f"sspo-{gate.name}", _bind(gate, spec.tau_pos, spec.tau_neg), geometric=True, loss_agg=spec.loss_agg)


def from_config(objective: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> Objective:
    """Build the objective from the Hydra groups ``objective`` (conf/objective/) and ``gate`` (conf/gate/).

    The gate group (with SSPO's temperatures) is read only when ``objective.name == "sspo"``.
    """
    return build(spec_from_config(objective, gate))


def _tempered(fn, tau_pos: float, tau_neg: float, log_ratio: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Apply a tempered gate with ``τ(Â) = τ_pos if Â > 0 else τ_neg`` (SPEC.md)."""
    tau = torch.where(positive, tau_pos, tau_neg).to(log_ratio.dtype)
    return fn(log_ratio, tau)


def _untempered(fn, log_ratio: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    return fn(log_ratio, None)


def _bind(spec: Gate, tau_pos: float | None = None, tau_neg: float | None = None) -> BoundGate:
    """Bind a gate's temperatures (picklable: partials of module-level functions, no lambdas)."""
    if not spec.has_temperature:
        return BoundGate(partial(_untempered, spec.log_f), partial(_untempered, spec.weight))
    return BoundGate(partial(_tempered, spec.log_f, tau_pos, tau_neg), partial(_tempered, spec.weight, tau_pos, tau_neg))
