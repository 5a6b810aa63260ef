"""SAPO (SPEC.md Eqs. 8–10): ``J = 1/G Σ_i 1/|y_i| Σ_t fSoft(ρ_{i,t}; Â_i) · Â_i`` with
``fSoft(x; Â) = σ(τ(Â)(x−1))·4/τ(Â)``: token ratios, a soft gate whose τ is a *slope* (larger τ, faster decay),
arithmetic mean over tokens."""

from __future__ import annotations

from typing import Any

from ..registry import ObjectiveDef, ObjectiveSpec, as_float, check_taus, register_objective


@register_objective("sapo")
class SAPO(ObjectiveDef):
    """``tau_pos``, ``tau_neg`` > 0 (the paper's grid has (τ_neg, τ_pos) ∈ {(1, 1.05), (3, 4), (7, 8)})."""

    equation = 8
    params = ("tau_pos", "tau_neg")

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        check_taus(self.name, values["tau_pos"], values["tau_neg"], "(tau_neg, tau_pos) in {(1, 1.05), (3, 4), (7, 8)}")
        return values

    def hyper_label(self, spec: ObjectiveSpec) -> str:
        return f"τ{as_float(spec.tau_neg)}/{as_float(spec.tau_pos)}"

    def build(self, spec, kit):
        gate = kit.bind(kit.SAPO_GATE, spec.tau_pos, spec.tau_neg)
        return kit.Objective(spec.label, gate, geometric=False, loss_agg=spec.loss_agg)
