"""Greedy Pass@1 evaluation with provenance (SPEC.md "Evaluation"; ``sspo-exp eval``).

``evaluate(model, tokenizer, rows, max_new_tokens, batch_size)`` is the in-process API; :mod:`.evaluator` scores a
training run's policy (initial and at a step); ``run_eval(cfg)`` is the command (:mod:`.run`); :mod:`.settings`
checks both configs without importing torch.
"""

from __future__ import annotations

import importlib

_LAZY = {"EvalResult": ".core", "SampleRecord": ".core", "evaluate": ".core", "score": ".core"}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
