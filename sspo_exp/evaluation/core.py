"""Greedy Pass@1 (SPEC.md "Evaluation": zero-shot prompts, greedy decoding, the training reward's answer check).

:func:`evaluate` is the one function both ``sspo-exp eval`` and training's held-out accuracy can call. Every row
gives exactly one record; a sample whose generation or scoring fails is recorded as incorrect with the reason,
so ``n`` always equals the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sspo_exp import rewards
from sspo_exp.evaluation.generate import GenerationFailure, generate_hf


@dataclass
class SampleRecord:
    id: str
    prompt: str
    completion: str
    gold: str
    extracted: str | None  #: text inside the last <answer></answer> (None: no such pair)
    correct: bool  #: r_answer == 1 under sspo_exp.rewards.math_reward
    format: float  #: r_format of the completion
    error: str = ""  #: why the sample failed (generation/scoring) or why the answer was refused
    hit_limit: bool = False  #: generation stopped at max_new_tokens (no EOS)
    cut: bool = False  #: hit the limit with no </answer> (rewards.cut_before_answer)


@dataclass
class EvalResult:
    n: int
    n_correct: int
    n_failed: int
    records: list[SampleRecord] = field(default_factory=list)

    @property
    def pass_at_1(self) -> float:
        """Pass@1 in percent (0-100), the paper's unit."""
        return 100.0 * self.n_correct / self.n if self.n else float("nan")

    @property
    def cut_before_answer(self) -> float:
        """Share (0-1) of the samples that hit the generation budget before writing ``</answer>``."""
        return sum(r.cut for r in self.records) / self.n if self.n else float("nan")

    @property
    def accuracy(self) -> float:
        """Pass@1 as a fraction in [0, 1]."""
        return self.n_correct / self.n if self.n else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"pass@1": self.pass_at_1, "n": self.n, "n_correct": self.n_correct, "n_failed": self.n_failed,
                "cut_before_answer": self.cut_before_answer, "samples": [asdict(r) for r in self.records]}


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
    :func:`sspo_exp.data.prompts.build_prompt`; the arithmetic task passes its own). Rows with a ``checker``
    column (CodeAct) are scored as multi-turn episodes by :func:`sspo_exp.codeact.evaluate.evaluate_codeact` in the
    environment ``codeact_env`` (a dataset block's ``env``: turns, observations, sandbox; None: the defaults).
    """
    from sspo_exp.data.prompts import build_prompt

    prompt_fn = prompt_fn or build_prompt
    prompts = [prompt_fn(r["question"], tokenizer) for r in rows]
    if rows and "checker" in rows[0]:  # CodeAct rows: multi-turn episodes in the sandbox, the task's checker
        from sspo_exp.codeact.evaluate import evaluate_codeact

        return evaluate_codeact(model, tokenizer, rows, prompts, max_new_tokens, batch_size, env=codeact_env,
                                chat_template_kwargs=getattr(prompt_fn, "chat_template_kwargs", None))  # the prompts'

    completions = generate_hf(model, tokenizer, prompts, max_new_tokens, batch_size, progress=progress, desc=desc)
    return score(rows, prompts, completions)
