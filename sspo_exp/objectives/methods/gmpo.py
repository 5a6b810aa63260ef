"""GMPO (SPEC.md Eq. 7): ``J = 1/G Σ_i [Π_t |fClip(ρ_{i,t}; Â_i)|]^{1/|y_i|} · Â_i``: token ratios, hard clip,
geometric mean over tokens (in log space)."""

from __future__ import annotations

from ..registry import register_objective
from ._clip import ClippedObjective


@register_objective("gmpo")
class GMPO(ClippedObjective):
    equation = 7

    def build(self, spec, kit):
        clip = kit.clip(spec.eps_low, spec.eps_high)
        return kit.Objective(spec.label, clip, geometric=True, loss_agg=spec.loss_agg)
