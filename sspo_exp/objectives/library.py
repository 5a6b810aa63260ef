"""Building objectives: a checked :class:`.registry.ObjectiveSpec` → an :class:`.core.Objective` (torch).

Import from :mod:`sspo_exp.objectives`, which re-exports these lazily. Each objective builds itself (its
definition's ``build``, :mod:`.registry`) from the blocks of :mod:`.kit`.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import kit
from .core import Objective
from .registry import ObjectiveSpec, objective_definition
from .spec import objective_spec, spec_from_config


def make_objective(
    name: str,
    *,
    gate: str | None = None,
    tau_pos: float | None = None,
    tau_neg: float | None = None,
    eps_low: float | None = None,
    eps_high: float | None = None,
    loss_agg: str = "seq-mean-token-mean",
    **extra: Any,
) -> Objective:
    """Build objective ``name`` (a registered objective; :data:`OBJECTIVES` ship) with its hyper-parameters.

    - ``grpo`` / ``gspo`` / ``gmpo``: ``eps_low`` in (0, 1) (default 0.2), ``eps_high`` > 0 (default ``eps_low``;
      a larger value is DAPO's clip-higher).
    - ``sapo``: ``tau_pos``, ``tau_neg`` > 0 (slopes; the paper's grid has (τ_neg, τ_pos) ∈ {(1, 1.05), (3, 4), (7, 8)}).
    - ``sspo``: ``gate`` (default ``"atanlog"``) and, except for ``"gumbel"``, ``tau_pos``, ``tau_neg`` > 0
      (widths; the paper's grid has (τ_neg, τ_pos) ∈ {(0.3, 0.2), (0.6, 0.5)}).
    - ``loss_agg``: ``"seq-mean-token-mean"`` (the paper's 1/G Σ_i, default) or ``"token-mean"`` (DAPO-style).
    - ``extra``: hyper-parameters of another registered objective (its ``params``).

    A parameter that the objective does not take is an error, not silently ignored (:func:`.spec.objective_spec`).
    """
    spec = objective_spec(name, gate=gate, tau_pos=tau_pos, tau_neg=tau_neg, eps_low=eps_low, eps_high=eps_high,
                          loss_agg=loss_agg, **extra)  # fmt: skip
    return build(spec)


def build(spec: ObjectiveSpec) -> Objective:
    """The objective callable of a checked :class:`.registry.ObjectiveSpec`."""
    return objective_definition(spec.name).build(spec, kit)


def from_config(objective: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> Objective:
    """Build the objective from the Hydra groups ``objective`` (conf/objective/) and ``gate`` (conf/gate/).

    The gate group (with SSPO's temperatures) is read only by an objective that takes it (``reads_gate_group``).
    """
    return build(spec_from_config(objective, gate))
