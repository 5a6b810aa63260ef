"""Greedy Pass@1 (SPEC.md "Evaluation": zero-shot prompts, greedy decoding, the training reward's answer check).

:func:`evaluate` is the one function both ``sspo-exp eval`` and training's held-out accuracy can call. Every row
gives exactly one record; a sample whose generation or scoring fails is recorded as incorrect with the reason,
so ``n`` always equals the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sspo_exp import rewards
from sspo_exp.data.prompts import build_prompt
from sspo_exp.evaluation.generate import GenerationFailure, generate_hf
from sspo_exp.tasks import episode_scorer
from sspo_exp.tasks.results import EvalResult, SampleRecord

__all__ = ["EvalResult", "SampleRecord", "evaluate", "score"]


def score(rows: Sequence[dict[str, str]], prompts: Sequence[str],
          completions: Sequence[str | GenerationFailure]) -> EvalResult:
    """One record per row: the completion scored by the training reward (``rewards.math_reward``)."""
    if not (len(rows) == len(prompts) == len(completions)):
        raise ValueError(f"rows ({len(rows)}), prompts ({len(prompts)}) and completions ({len(completions)}) differ")
    records, failed = [], 0
    for row, prompt, completion in zip(rows, prompts, completions):
        if isinstance(completion, GenerationFailure):
            failed += 1
            records.append(SampleRecord(row["id"], prompt, "", row["answer"], None, False, 0.0, completion.reason))
            continue
        hit = bool(getattr(completion, "hit_limit", False))  # generate.Completion; a plain str: unknown, False
        cut = rewards.cut_before_answer(completion, hit)
        completion = str(completion)
        try:
            r = rewards.math_reward(completion, row["answer"])
            records.append(SampleRecord(row["id"], prompt, completion, row["answer"], r.extracted, r.answer == 1.0,
                                        r.format, r.reason if r.answer != 1.0 else "", hit, cut))
        except Exception as e:  # math_reward does not raise; this guards the count, never drops a sample
            failed += 1
            records.append(SampleRecord(row["id"], prompt, completion, row["answer"], None, False, 0.0,
                                        f"scoring error: {type(e).__name__}", hit, cut))
    return EvalResult(len(records), sum(r.correct for r in records), failed, records)


def evaluate(model: Any, tokenizer: Any, rows: Sequence[dict[str, str]], max_new_tokens: int = 512,
             batch_size: int = 16, prompt_fn: Callable[[str, Any], str] | None = None,
             progress: bool = False, desc: str = "eval", codeact_env: Any = None) -> EvalResult:
    """Greedy Pass@1 of an HF model on rows ``{id, question, answer, source}``.

    ``prompt_fn(question, tokenizer)`` builds each prompt (default: the zero-shot
    :func:`sspo_exp.data.prompts.build_prompt`; the arithmetic task passes its own). Rows of a task with its own
    scorer (CodeAct's ``checker`` column: multi-turn episodes, ``sspo_exp.tasks.codeact``) are scored by it, in the
    environment ``codeact_env`` (a dataset block's ``env``: turns, observations, sandbox; None: the defaults).
    """
    prompt_fn = prompt_fn or build_prompt
    prompts = [prompt_fn(r["question"], tokenizer) for r in rows]
    scorer = episode_scorer(rows)
    if scorer is not None:
        return scorer(model, tokenizer, rows, prompts, max_new_tokens, batch_size, env=codeact_env,
                      chat_template_kwargs=getattr(prompt_fn, "chat_template_kwargs", None))  # the prompts'

    completions = generate_hf(model, tokenizer, prompts, max_new_tokens, batch_size, progress=progress, desc=desc)
    return score(rows, prompts, completions)
