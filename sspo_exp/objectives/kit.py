"""The torch building blocks an objective's ``build(spec, kit)`` receives: this module is ``kit``.

It is passed in (by :func:`sspo_exp.objectives.library.build`) rather than imported by the objective's file, so that
file, with its checks and labels, imports without torch. An objective is a composition (:mod:`.core`): a token gate
(``bind`` one of :data:`GATES`, :data:`IDENTITY`, :data:`SAPO_GATE`, or ``clip``), an arithmetic or geometric mean
over tokens, an optional sequence gate, and the shared aggregation.
"""

from __future__ import annotations

from functools import partial

import torch

from .core import BoundGate, Objective
from .gates import GATES, IDENTITY, SAPO_GATE, Gate, clip_log_f, clip_weight, get_gate

__all__ = ["BoundGate", "Objective", "GATES", "IDENTITY", "SAPO_GATE", "Gate", "get_gate", "bind", "clip", "torch"]


def clip(eps_low: float, eps_high: float) -> BoundGate:
    """SPEC.md's advantage-aware clip ``fClip(x; Â)`` with its ε bound."""
    return BoundGate(partial(clip_log_f, eps_low=eps_low, eps_high=eps_high),
                     partial(clip_weight, eps_low=eps_low, eps_high=eps_high))  # fmt: skip


def bind(gate: Gate, tau_pos: float | None = None, tau_neg: float | None = None) -> BoundGate:
    """Bind a gate's temperatures, ``τ(Â) = τ_pos if Â > 0 else τ_neg`` (SPEC.md); picklable (partials of
    module-level functions, no lambdas)."""
    if not gate.has_temperature:
        return BoundGate(partial(_untempered, gate.log_f), partial(_untempered, gate.weight))
    return BoundGate(partial(_tempered, gate.log_f, tau_pos, tau_neg),
                     partial(_tempered, gate.weight, tau_pos, tau_neg))


def _tempered(fn, tau_pos: float, tau_neg: float, log_ratio: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    tau = torch.where(positive, tau_pos, tau_neg).to(log_ratio.dtype)
    return fn(log_ratio, tau)


def _untempered(fn, log_ratio: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    return fn(log_ratio, None)
