"""The paper's reward (``sspo_exp.rewards``, SPEC.md "Training setup") as a verl reward function.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` per response
(``reward.custom_reward_function.path=pkg://sspo_exp.integrations.verl_reward``, ``name=compute_score``) and logs
the returned dict's extra keys. verl's reward loop may call it from an executor thread, where our math-verify
budget (a signal) cannot run; off the main thread the score is computed in a one-process pool instead, so a right
answer that only math-verify recognises is never scored 0 (as ``sspo_exp.rewards`` asks: main thread or a pool).
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor

from sspo_exp.rewards import math_reward

_POOL: ProcessPoolExecutor | None = None
_LOCK = threading.Lock()


def _score(solution_str: str, ground_truth: str) -> dict[str, float]:
    r = math_reward(solution_str, str(ground_truth))
    return {"score": r.total, "acc": r.answer, "format": r.format}


def _pool() -> ProcessPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:  # spawn: a fork of a threaded (Ray) process may hold another thread's locks
            _POOL = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return _POOL


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict[str, float]:
    """``score`` = r_answer + r_format in [0, 2] (verl's reward), ``acc`` = r_answer (verl's validation accuracy:
    ``val-core/<data_source>/acc/mean@1`` with greedy decoding = Pass@1), ``format`` = r_format."""
    if threading.current_thread() is threading.main_thread():
        return _score(solution_str, ground_truth)
    return _pool().submit(_score, solution_str, ground_truth).result()
