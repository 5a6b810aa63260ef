"""The objective library: GRPO, GSPO, GMPO, SAPO and SSPO with its five gates (SPEC.md).

    from sspo_exp.objectives import make_objective, log_gate
    obj = make_objective("sspo", gate="atanlog", tau_pos=0.2, tau_neg=0.3)
    out = obj(log_probs, old_log_probs, advantages, mask)   # [B,T], [B,T], [B], [B,T]
    out.loss, out.sums, out.metrics   # sums add over micro-batches; pooled_metrics(total) -> metrics

Every objective is a pure function of its inputs, built by composition in :mod:`.core`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import torch

from .aggregation import LOSS_AGGS
from .core import METRICS, SUMS, BoundGate, Objective, ObjectiveOutput, pooled_metrics
from .gates import GATES, IDENTITY, SAPO_GATE, Gate, clip_log_f, clip_weight, get_gate, log_gate

OBJECTIVES = ("grpo", "gspo", "gmpo", "sapo", "sspo")
_CLIPPED = ("grpo", "gspo", "gmpo")
#: Defaults where the caller gives none: ε = 0.2 is the middle of the paper's grid {0.1, 0.2, 0.3} (Appendix A).
DEFAULT_EPS = 0.2
DEFAULT_GATE = "atanlog"  # the paper's default gate (Eq. 15)

__all__ = [
    "GATES",
    "LOSS_AGGS",
    "METRICS",
    "OBJECTIVES",
    "SUMS",
    "Objective",
    "ObjectiveOutput",
    "from_config",
    "log_gate",
    "make_objective",
    "pooled_metrics",
]


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

    A parameter that the objective does not take is an error, not silently ignored.
    """
    if name not in OBJECTIVES:
        raise ValueError(f"objective={name!r} is not known; valid values: {', '.join(OBJECTIVES)}")
    if loss_agg not in LOSS_AGGS:
        raise ValueError(f"loss_agg={loss_agg!r} is not known; valid values: {', '.join(LOSS_AGGS)}")
    given = {"gate": gate, "tau_pos": tau_pos, "tau_neg": tau_neg, "eps_low": eps_low, "eps_high": eps_high}

    if name in _CLIPPED:
        _refuse(name, given, ("gate", "tau_pos", "tau_neg"))
        eps_low = DEFAULT_EPS if eps_low is None else eps_low
        eps_high = eps_low if eps_high is None else eps_high
        if not 0 < eps_low < 1:
            grid = "GSPO's own: 3e-4" if name == "gspo" else "the paper's grid: 0.1, 0.2, 0.3"
            raise ValueError(f"{name}: eps_low must lie in (0, 1) ({grid}); got {eps_low!r}")
        if not eps_high > 0:
            raise ValueError(f"{name}: eps_high must be > 0; got {eps_high!r}")
        clip = BoundGate(
            partial(clip_log_f, eps_low=eps_low, eps_high=eps_high),
            partial(clip_weight, eps_low=eps_low, eps_high=eps_high),
        )
        if name == "gspo":
            return Objective(name, _bind(IDENTITY), geometric=True, seq_gate=clip, loss_agg=loss_agg)
        return Objective(name, clip, geometric=name == "gmpo", loss_agg=loss_agg)

    _refuse(name, given, ("eps_low", "eps_high"))
    if name == "sapo":
        _refuse(name, given, ("gate",))
        _check_taus(name, tau_pos, tau_neg, "(tau_neg, tau_pos) in {(1, 1.05), (3, 4), (7, 8)}")
        return Objective(name, _bind(SAPO_GATE, tau_pos, tau_neg), geometric=False, loss_agg=loss_agg)

    spec = get_gate(DEFAULT_GATE if gate is None else gate)
    if spec.has_temperature:
        _check_taus(f"sspo gate {spec.name!r}", tau_pos, tau_neg, "(tau_neg, tau_pos) in {(0.3, 0.2), (0.6, 0.5)}")
    elif tau_pos is not None or tau_neg is not None:
        raise ValueError(
            f"sspo gate {spec.name!r} has no temperature; got tau_pos={tau_pos!r}, tau_neg={tau_neg!r} "
            "(leave both unset). Gates with a temperature: "
            + ", ".join(n for n, g in GATES.items() if g.has_temperature)
        )
    return Objective(f"sspo-{spec.name}", _bind(spec, tau_pos, tau_neg), geometric=True, loss_agg=loss_agg)


def from_config(objective: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> Objective:
    """Build the objective from the Hydra groups ``objective`` (conf/objective/) and ``gate`` (conf/gate/).

    The gate group (with SSPO's temperatures) is read only when ``objective.name == "sspo"``.
    """
    name = objective.get("name")
    kwargs = {k: objective.get(k) for k in ("eps_low", "eps_high", "tau_pos", "tau_neg")}
    kwargs["loss_agg"] = objective.get("loss_agg") or "seq-mean-token-mean"
    if name == "sspo":
        if not gate or not gate.get("name"):
            raise ValueError(f"objective=sspo needs a gate; valid values: {', '.join(GATES)}")
        kwargs.update(gate=gate["name"], tau_pos=gate.get("tau_pos"), tau_neg=gate.get("tau_neg"))
    return make_objective(name, **kwargs)


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


def _refuse(name: str, given: dict[str, Any], fields: tuple[str, ...]) -> None:
    for f in fields:
        if given[f] is not None:
            raise ValueError(f"objective {name!r} takes no {f} (got {f}={given[f]!r}); {_takes(name)}")


def _takes(name: str) -> str:
    if name in _CLIPPED:
        return f"{name} takes eps_low, eps_high"
    if name == "sapo":
        return "sapo takes tau_pos, tau_neg"
    return f"sspo takes gate ({', '.join(GATES)}) and tau_pos, tau_neg"


def _check_taus(who: str, tau_pos: float | None, tau_neg: float | None, grid: str) -> None:
    for label, tau in (("tau_pos", tau_pos), ("tau_neg", tau_neg)):
        if tau is None or isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0:
            raise ValueError(f"{who}: {label} must be a number > 0 (the paper's grid: {grid}); got {tau!r}")
