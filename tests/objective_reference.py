"""An independent, scalar reference of SPEC.md written in the ratio domain with ``math`` only.

It shares no code with ``sspo_exp.objectives`` (which works in log space on tensors), so agreement between the
two is evidence that both read the equations the same way.
"""

from __future__ import annotations

import math


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# f(ρ; τ) of the five SSPO gates, SPEC.md table, verbatim.
GATE_F = {
    "expsig": lambda r, t: math.exp(4 * t * sigmoid((r - 1) / t) - 2 * t),
    "expatan": lambda r, t: math.exp(t * math.atan((r - 1) / t)),
    "gumbel": lambda r, t: math.exp(-math.exp(-(r - 1)) + 1),
    "atanlog": lambda r, t: math.exp(t * math.atan(math.log(r) / t)),
    "siglog": lambda r, t: math.exp(4 * t * sigmoid(math.log(r) / t) - 2 * t),
}

# Token weight w(ρ) = ρ f'/f, SPEC.md table column "token weight", verbatim.
GATE_W = {
    "expsig": lambda r, t: 4 * sigmoid((r - 1) / t) * (1 - sigmoid((r - 1) / t)) * r,
    "expatan": lambda r, t: r / (1 + ((r - 1) / t) ** 2),
    "gumbel": lambda r, t: r * math.exp(1 - r),
    "atanlog": lambda r, t: 1 / (1 + (math.log(r) / t) ** 2),
    "siglog": lambda r, t: 4 * sigmoid(math.log(r) / t) * (1 - sigmoid(math.log(r) / t)),
}


def fclip(r: float, a: float, eps_low: float, eps_high: float) -> float:
    return min(r, 1 + eps_high) if a > 0 else max(r, 1 - eps_low)


def fsoft(r: float, a: float, tau_pos: float, tau_neg: float) -> float:
    tau = tau_pos if a > 0 else tau_neg
    return sigmoid(tau * (r - 1)) * 4 / tau


def sequence_term(name: str, ratios: list[float], a: float, **hp) -> float:
    """The bracket of SPEC.md's objective table for one response (ratios of its valid tokens only)."""
    n = len(ratios)
    if name == "grpo":
        return sum(fclip(r, a, hp["eps_low"], hp["eps_high"]) for r in ratios) / n * a
    if name == "gspo":
        s = math.prod(ratios) ** (1 / n)
        return fclip(s, a, hp["eps_low"], hp["eps_high"]) * a
    if name == "gmpo":
        return math.prod(abs(fclip(r, a, hp["eps_low"], hp["eps_high"])) for r in ratios) ** (1 / n) * a
    if name == "sapo":
        return sum(fsoft(r, a, hp["tau_pos"], hp["tau_neg"]) for r in ratios) / n * a
    if name == "sspo":
        tau = hp.get("tau_pos") if a > 0 else hp.get("tau_neg")
        return math.prod(GATE_F[hp["gate"]](r, tau) for r in ratios) ** (1 / n) * a
    raise KeyError(name)


def objective_J(name: str, batch: list[tuple[list[float], float]], **hp) -> float:
    """J = 1/G Σ_i sequence_term_i for a batch of (ratios, advantage) pairs."""
    return sum(sequence_term(name, ratios, a, **hp) for ratios, a in batch) / len(batch)
