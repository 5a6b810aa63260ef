"""SSPO (SPEC.md Eqs. 11, 17): ``J = 1/G Σ_i (Π_t f(ρ_{i,t}; Â_i))^{1/|y_i|} · Â_i`` with one of the five gates of
Eqs. 15, 18–22 (conf/gate/; computed in log space), whose τ is a *width* (larger τ, slower decay)."""

from __future__ import annotations

from typing import Any, Mapping

from ..registry import ObjectiveDef, ObjectiveSpec, as_float, check_taus, register_objective

#: SSPO's gates (conf/gate/) and whether each has a temperature τ (SPEC.md "Gates"; gates.GATES is the torch side).
GATE_HAS_TEMPERATURE = {"expsig": True, "expatan": True, "gumbel": False, "atanlog": True, "siglog": True}
DEFAULT_GATE = "atanlog"  # the paper's default gate (Eq. 15)


@register_objective("sspo")
class SSPO(ObjectiveDef):
    """``gate`` (default ``"atanlog"``) and, except for ``"gumbel"``, ``tau_pos``, ``tau_neg`` > 0 (the paper's grid
    has (τ_neg, τ_pos) ∈ {(0.3, 0.2), (0.6, 0.5)}). Configured by the Hydra ``gate`` group."""

    equation = 11
    params = ("gate", "tau_pos", "tau_neg")
    reads_gate_group = True

    def takes(self) -> str:
        return f"sspo takes gate ({', '.join(GATE_HAS_TEMPERATURE)}) and tau_pos, tau_neg"

    def from_config(self, objective: Mapping[str, Any], gate: Mapping[str, Any] | None) -> dict[str, Any]:
        values = super().from_config(objective, gate)
        if not gate or not gate.get("name"):
            raise ValueError(f"objective=sspo needs a gate; valid values: {', '.join(GATE_HAS_TEMPERATURE)}")
        return {**values, "gate": gate["name"], "tau_pos": gate.get("tau_pos"), "tau_neg": gate.get("tau_neg")}

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        gate, tau_pos, tau_neg = values["gate"], values["tau_pos"], values["tau_neg"]
        gate = DEFAULT_GATE if gate is None else gate
        if gate not in GATE_HAS_TEMPERATURE:
            raise ValueError(f"gate={gate!r} is not known; valid values: {', '.join(GATE_HAS_TEMPERATURE)}")
        if GATE_HAS_TEMPERATURE[gate]:
            check_taus(f"sspo gate {gate!r}", tau_pos, tau_neg, "(tau_neg, tau_pos) in {(0.3, 0.2), (0.6, 0.5)}")
        elif tau_pos is not None or tau_neg is not None:
            with_tau = ", ".join(n for n, t in GATE_HAS_TEMPERATURE.items() if t)
            raise ValueError(f"sspo gate {gate!r} has no temperature; got tau_pos={tau_pos!r}, tau_neg={tau_neg!r} "
                             f"(leave both unset). Gates with a temperature: {with_tau}")  # fmt: skip
        return {"gate": gate, "tau_pos": tau_pos, "tau_neg": tau_neg}

    def label(self, spec: ObjectiveSpec) -> str:
        return f"sspo-{spec.gate}"

    def hyper_label(self, spec: ObjectiveSpec) -> str:
        """``τ0.3/0.2`` (τ_neg/τ_pos); empty for a gate without temperature (gumbel)."""
        return "" if spec.tau_pos is None else f"τ{as_float(spec.tau_neg)}/{as_float(spec.tau_pos)}"

    def tags(self, spec: ObjectiveSpec) -> list[str]:
        return [self.name, f"gate:{spec.gate}"]

    def build(self, spec, kit):
        gate = kit.bind(kit.get_gate(spec.gate), spec.tau_pos, spec.tau_neg)
        return kit.Objective(spec.label, gate, geometric=True, loss_agg=spec.loss_agg)
