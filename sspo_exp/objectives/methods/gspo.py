"""GSPO (SPEC.md Eqs. 5–6): ``J = 1/G Σ_i fClip(s_i; Â_i) · Â_i`` with ``s_i = exp(1/|y_i| Σ_t log ρ_{i,t})``:
the unclipped geometric mean of the token ratios, then the hard clip on the sequence."""

from __future__ import annotations

from ..registry import register_objective
from ._clip import ClippedObjective


@register_objective("gspo")
class GSPO(ClippedObjective):
    equation = 5
    eps_grid = "GSPO's own: 3e-4"  # sequence-level ratios sit much closer to 1 than token ratios

    def build(self, spec, kit):
        seq_clip = kit.clip(spec.eps_low, spec.eps_high)
        return kit.Objective(spec.label, kit.bind(kit.IDENTITY), geometric=True, seq_gate=seq_clip,
                             loss_agg=spec.loss_agg)  # fmt: skip
