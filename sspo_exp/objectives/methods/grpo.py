"""GRPO (SPEC.md Eq. 2): ``J = 1/G Σ_i 1/|y_i| Σ_t fClip(ρ_{i,t}; Â_i) · Â_i``: token ratios, hard clip,
arithmetic mean over tokens."""

from __future__ import annotations

from ..registry import register_objective
from ._clip import ClippedObjective


@register_objective("grpo")
class GRPO(ClippedObjective):
    equation = 2

    def build(self, spec, kit):
        clip = kit.clip(spec.eps_low, spec.eps_high)
        return kit.Objective(spec.label, clip, geometric=False, loss_agg=spec.loss_agg)
