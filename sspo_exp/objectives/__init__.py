"""The objective library: GRPO, GSPO, GMPO, SAPO and SSPO with its five gates (SPEC.md).

    from sspo_exp.objectives import make_objective, log_gate
    obj = make_objective("sspo", gate="atanlog", tau_pos=0.2, tau_neg=0.3)
    out = obj(log_probs, old_log_probs, advantages, mask)   # [B,T], [B,T], [B], [B,T]
    out.loss, out.sums, out.metrics   # sums add over micro-batches; pooled_metrics(total) -> metrics

Every objective is a pure function of its inputs, built by composition in :mod:`.core`. Each objective is one file
of :mod:`.methods` that registers itself (:func:`register_objective`, as verl's ``register_policy_loss``); its
checks, labels and tags import without torch (a config is validated before torch loads), its ``build`` receives
the torch blocks of :mod:`.kit`. The rest loads torch on first use.
"""

from __future__ import annotations

import importlib

from .methods._clip import DEFAULT_EPS
from .methods.sspo import DEFAULT_GATE
from .registry import (LOSS_AGGS, ObjectiveDef, ObjectiveSpec, objective_definition, objective_names,
                       register_objective, unregister_objective)
from .spec import OBJECTIVES, objective_spec, spec_from_config

#: The torch side, imported on first access (PEP 562): name -> module.
_LAZY = {
    "make_objective": ".library", "build": ".library", "from_config": ".library",
    "METRICS": ".core", "SUMS": ".core", "pooled_metrics": ".core", "BoundGate": ".core", "Objective": ".core", "ObjectiveOutput": ".core",
    "GATES": ".gates", "Gate": ".gates", "get_gate": ".gates", "log_gate": ".gates",
}  # fmt: skip

__all__ = ["DEFAULT_EPS", "DEFAULT_GATE", "LOSS_AGGS", "OBJECTIVES", "ObjectiveDef", "ObjectiveSpec", "objective_spec",
           "spec_from_config", "objective_definition", "objective_names", "register_objective", "unregister_objective",
           *_LAZY]  # fmt: skip


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
