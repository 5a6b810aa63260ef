"""The CodeAct prompt: CodeAct's instruction (execute / solution tags, the turn budget) and the task.

``instruct`` (pretrained models): the instruction of CodeAct's MINT template (``<execute>`` to run Python and see
the output, ``<solution>`` to answer; our wording) and ``Task:\\n<question>`` as one user message, through the
tokenizer's chat template when it has one. ``compact`` (the tiny char-level model, which learns the format in its
cold start): the bare question and a newline, as the arithmetic task's compact prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from sspo_exp.data.prompts import render_chat

PROMPT_STYLES = ("instruct", "compact")
INSTRUCTION = (
    "You are solving a task with the help of an interactive Python interpreter. At each turn, think step by step, "
    "then either run Python code by enclosing it in <execute> </execute> (you will see its output; variables persist "
    "between turns) or give the final answer by enclosing it in <solution> </solution>. You have {max_turns} turns; "
    "the first <solution> ends the task."
)


def build_prompt(question: str, tokenizer: Any = None, prompt_style: str = "instruct", max_turns: int = 5,
                 chat_template_kwargs: Mapping[str, Any] | None = None) -> str:
    if prompt_style == "compact":
        return f"{question}\n"
    if prompt_style != "instruct":
        raise ValueError(f"dataset.prompt_style must be one of {list(PROMPT_STYLES)}, got {prompt_style!r}")
    text = f"{INSTRUCTION.format(max_turns=max_turns)}\n\nTask:\n{question}"
    if not getattr(tokenizer, "chat_template", None):
        return f"{text}\n"

    # keep the template's BOS: CodeAct episodes encode their prompt without special tokens (codeact.rollout/evaluate)
    return render_chat([{"role": "user", "content": text}], tokenizer, chat_template_kwargs, keep_bos=True)


def prompt_fn(dataset_cfg: Any, chat_template_kwargs: Mapping[str, Any] | None = None):
    """``(question, tokenizer) -> prompt`` for a ``codeact`` dataset block (its ``prompt_style``, ``env.max_turns``)."""
    cfg = dataset_cfg or {}
    style = cfg.get("prompt_style", "instruct") if hasattr(cfg, "get") else "instruct"
    env = (cfg.get("env") if hasattr(cfg, "get") else None) or {}
    turns = int(env.get("max_turns", 5))
    return lambda question, tokenizer: build_prompt(question, tokenizer, style, turns, chat_template_kwargs)
