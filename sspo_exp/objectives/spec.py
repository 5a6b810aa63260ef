"""What an objective is, checked without torch: names, hyper-parameters and their allowed values.

:func:`objective_spec` is the one place that decides whether a set of hyper-parameters is valid (the training plan
calls it before torch is imported; :func:`sspo_exp.objectives.make_objective` builds from its result).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

OBJECTIVES = ("grpo", "gspo", "gmpo", "sapo", "sspo")
CLIPPED = ("grpo", "gspo", "gmpo")
#: ``loss_agg``: the paper's ``1/G Σ_i`` of per-response means (default), or DAPO-style token weighting.
LOSS_AGGS = ("seq-mean-token-mean", "token-mean")
#: SSPO's gates (conf/gate/) and whether each has a temperature τ (SPEC.md "Gates"; gates.GATES is the torch side).
GATE_HAS_TEMPERATURE = {"expsig": True, "expatan": True, "gumbel": False, "atanlog": True, "siglog": True}
#: Defaults where the caller gives none: ε = 0.2 is the middle of the paper's grid {0.1, 0.2, 0.3} (Appendix A).
DEFAULT_EPS = 0.2
DEFAULT_GATE = "atanlog"  # the paper's default gate (Eq. 15)


@dataclass(frozen=True)
class ObjectiveSpec:
    """A valid objective: its name and exactly the hyper-parameters it takes (the others are None)."""

    name: str
    loss_agg: str = LOSS_AGGS[0]
    gate: str | None = None
    tau_pos: float | None = None
    tau_neg: float | None = None
    eps_low: float | None = None
    eps_high: float | None = None

    @property
    def label(self) -> str:
        """``grpo``, ``sspo-atanlog``: the objective as runs and tables name it."""
        return f"sspo-{self.gate}" if self.name == "sspo" else self.name


def objective_spec(name: str, *, gate: str | None = None, tau_pos: float | None = None, tau_neg: float | None = None,
                   eps_low: float | None = None, eps_high: float | None = None,
                   loss_agg: str = LOSS_AGGS[0]) -> ObjectiveSpec:  # fmt: skip
    """Check objective ``name``'s hyper-parameters (see ``make_objective``); raise ``ValueError`` naming the bad one."""
    if name not in OBJECTIVES:
        raise ValueError(f"objective={name!r} is not known; valid values: {', '.join(OBJECTIVES)}")
    if loss_agg not in LOSS_AGGS:
        raise ValueError(f"loss_agg={loss_agg!r} is not known; valid values: {', '.join(LOSS_AGGS)}")
    given = {"gate": gate, "tau_pos": tau_pos, "tau_neg": tau_neg, "eps_low": eps_low, "eps_high": eps_high}
    if name in CLIPPED:
        _refuse(name, given, ("gate", "tau_pos", "tau_neg"))
        eps_low = DEFAULT_EPS if eps_low is None else eps_low
        eps_high = eps_low if eps_high is None else eps_high
        if not _number(eps_low) or not 0 < eps_low < 1:
            grid = "GSPO's own: 3e-4" if name == "gspo" else "the paper's grid: 0.1, 0.2, 0.3"
            raise ValueError(f"{name}: eps_low must lie in (0, 1) ({grid}); got {eps_low!r}")
        if not _number(eps_high) or not eps_high > 0:
            raise ValueError(f"{name}: eps_high must be > 0; got {eps_high!r}")
        return ObjectiveSpec(name, loss_agg, eps_low=eps_low, eps_high=eps_high)
    _refuse(name, given, ("eps_low", "eps_high"))
    if name == "sapo":
        _refuse(name, given, ("gate",))
        _check_taus(name, tau_pos, tau_neg, "(tau_neg, tau_pos) in {(1, 1.05), (3, 4), (7, 8)}")
        return ObjectiveSpec(name, loss_agg, tau_pos=tau_pos, tau_neg=tau_neg)
    gate = DEFAULT_GATE if gate is None else gate
    if gate not in GATE_HAS_TEMPERATURE:
        raise ValueError(f"gate={gate!r} is not known; valid values: {', '.join(GATE_HAS_TEMPERATURE)}")
    if GATE_HAS_TEMPERATURE[gate]:
        _check_taus(f"sspo gate {gate!r}", tau_pos, tau_neg, "(tau_neg, tau_pos) in {(0.3, 0.2), (0.6, 0.5)}")
    elif tau_pos is not None or tau_neg is not None:
        raise ValueError(
            f"sspo gate {gate!r} has no temperature; got tau_pos={tau_pos!r}, tau_neg={tau_neg!r} "
            "(leave both unset). Gates with a temperature: " + ", ".join(n for n, t in GATE_HAS_TEMPERATURE.items() if t)
        )
    return ObjectiveSpec(name, loss_agg, gate=gate, tau_pos=tau_pos, tau_neg=tau_neg)


def spec_from_config(objective: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> ObjectiveSpec:
    """The spec of the Hydra groups ``objective`` (conf/objective/) and ``gate`` (conf/gate/, read for SSPO only)."""
    name = objective.get("name")
    kwargs = {k: objective.get(k) for k in ("eps_low", "eps_high", "tau_pos", "tau_neg")}
    kwargs["loss_agg"] = objective.get("loss_agg") or LOSS_AGGS[0]
    if name == "sspo":
        if not gate or not gate.get("name"):
            raise ValueError(f"objective=sspo needs a gate; valid values: {', '.join(GATE_HAS_TEMPERATURE)}")
        kwargs.update(gate=gate["name"], tau_pos=gate.get("tau_pos"), tau_neg=gate.get("tau_neg"))
    return objective_spec(name, **kwargs)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _refuse(name: str, given: dict[str, Any], fields: tuple[str, ...]) -> None:
    for f in fields:
        if given[f] is not None:
            raise ValueError(f"objective {name!r} takes no {f} (got {f}={given[f]!r}); {_takes(name)}")


def _takes(name: str) -> str:
    if name in CLIPPED:
        return f"{name} takes eps_low, eps_high"
    if name == "sapo":
        return "sapo takes tau_pos, tau_neg"
    return f"sspo takes gate ({', '.join(GATE_HAS_TEMPERATURE)}) and tau_pos, tau_neg"


def _check_taus(who: str, tau_pos: float | None, tau_neg: float | None, grid: str) -> None:
    for label, tau in (("tau_pos", tau_pos), ("tau_neg", tau_neg)):
        if tau is None or not _number(tau) or not tau > 0:
            raise ValueError(f"{who}: {label} must be a number > 0 (the paper's grid: {grid}); got {tau!r}")
