"""What the hard-clipped objectives (GRPO, GSPO, GMPO) share: ε_low/ε_high, their check and their label."""

from __future__ import annotations

from typing import Any

from ..registry import ObjectiveDef, ObjectiveSpec, as_float, is_number

#: ε where the caller gives none: 0.2 is the middle of the paper's grid {0.1, 0.2, 0.3} (Appendix A).
DEFAULT_EPS = 0.2


class ClippedObjective(ObjectiveDef):
    """An objective with SPEC.md's advantage-aware clip ``fClip(x; Â)``: ``eps_low`` in (0, 1) (default
    :data:`DEFAULT_EPS`), ``eps_high`` > 0 (default ``eps_low``; a larger value is DAPO's clip-higher)."""

    params = ("eps_low", "eps_high")
    #: the ε values the error message suggests
    eps_grid = "the paper's grid: 0.1, 0.2, 0.3"

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        eps_low = DEFAULT_EPS if values["eps_low"] is None else values["eps_low"]
        eps_high = eps_low if values["eps_high"] is None else values["eps_high"]
        if not is_number(eps_low) or not 0 < eps_low < 1:
            raise ValueError(f"{self.name}: eps_low must lie in (0, 1) ({self.eps_grid}); got {eps_low!r}")
        if not is_number(eps_high) or not eps_high > 0:
            raise ValueError(f"{self.name}: eps_high must be > 0; got {eps_high!r}")
        return {"eps_low": eps_low, "eps_high": eps_high}

    def hyper_label(self, spec: ObjectiveSpec) -> str:
        """``ε0.2`` (symmetric clip) or ``ε0.0003/0.0004`` (ε_low/ε_high)."""
        low, high = as_float(spec.eps_low), as_float(spec.eps_high)
        return f"ε{low}" if high in (None, low) else f"ε{low}/{high}"
