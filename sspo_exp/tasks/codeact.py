"""The ``codeact`` benchmark's solved rate: greedy multi-turn episodes, scored by each task's checker.

Same loop as training (``episode.run_episodes``: one sandbox per episode, the task's ``setup`` first), greedy
decoding (the paper's protocol), the environment's protocol (default M3ToolEval's: ``max_new_tokens`` new tokens
per turn, 10 turns, a wrong solution answered with the retry message until solved or out of turns; each row's
checker judges inside the episode, with ``env.answer_check`` for M3ToolEval rows). One record per row, as every benchmark (``sspo_exp.evaluation.core``): ``completion``
is the whole episode text (turns and observations), ``extracted`` its final solution, ``correct`` the checker's
verdict, ``format`` the CodeAct format level, ``error`` why it was not solved (no solution, the checker's reason)
plus the episode's end and statistics. Pass@1 = solved rate in percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sspo_exp.codeact.checkers import check
from sspo_exp.codeact.episode import EnvConfig, run_episodes
from sspo_exp.codeact.settings import env_config
from sspo_exp.tasks.results import EvalResult, SampleRecord


def evaluate_codeact(model: Any, tokenizer: Any, rows: Sequence[dict[str, str]], prompts: Sequence[str],
                     max_new_tokens: int, batch_size: int = 16, env: Any = None, policy: Any = None,
                     chat_template_kwargs: Any = None):
    """Solved rate of greedy episodes; ``env`` is an :class:`EnvConfig`, or a dataset block's ``env`` mapping (the
    token budget is then ``max_new_tokens``; observation turns rendered with ``chat_template_kwargs``, those of the
    prompts), or None (the defaults)."""
    from sspo_exp.codeact.policy import HFPolicy  # torch: the task registry is read by torch-free config checks

    if not isinstance(env, EnvConfig):
        env = env_config({"env": env}, int(max_new_tokens), chat_template_kwargs)
    policy = policy or HFPolicy(model, tokenizer, temperature=0.0, batch_size=batch_size,
                                stop_strings=env.actions.stop_strings)
    records = []
    for k in range(0, len(rows), batch_size):
        chunk, texts = rows[k : k + batch_size], prompts[k : k + batch_size]
        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in texts]
        episodes = run_episodes(ids, policy, tokenizer, env, [r.get("setup") or None for r in chunk],
                                judges=[judge(r, env) for r in chunk])
        for row, prompt, ep in zip(chunk, texts, episodes, strict=True):
            solved, why = check(ep.solution, row["answer"], row.get("checker", "math"), env.sandbox, env.answer_check)
            stats = ", ".join(f"{key}={value:g}" for key, value in ep.stats().items())
            stats += f", wrong_answers={ep.wrong_answers}"
            records.append(SampleRecord(row["id"], prompt, tokenizer.decode(ep.completion_ids, skip_special_tokens=True),
                                        row["answer"], ep.solution, solved, ep.format,
                                        "" if solved else f"{why}; end={ep.end}; {stats}"))
    return EvalResult(len(records), sum(r.correct for r in records), 0, records)


def judge(row: dict[str, Any], env: EnvConfig):
    """``solution -> solved`` for one row (its checker and gold; ``env.answer_check`` for M3ToolEval rows)."""
    return lambda solution: check(solution, row["answer"], row.get("checker", "math"), env.sandbox, env.answer_check)[0]
