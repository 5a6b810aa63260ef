"""Greedy Pass@1 evaluation with provenance (SPEC.md "Evaluation"; ``sspo-exp eval``).

``evaluate(model, tokenizer, rows, max_new_tokens, batch_size)`` is the in-process API (training's held-out
accuracy); ``run_eval(cfg)`` the command (``sspo_exp.evaluation.run``).
"""

from sspo_exp.evaluation.core import EvalResult, SampleRecord, evaluate, score

__all__ = ["EvalResult", "SampleRecord", "evaluate", "score"]
