"""The CodeAct prompt: CodeAct's instruction (execute / solution tags, the turn budget) and the task.

``instruct`` (pretrained models): the instruction of CodeAct's MINT template (``<execute>`` to run Python and see
the output, ``<solution>`` to answer; our wording) and ``Task:\\n<question>`` as one user message, through the
tokenizer's chat template when it has one (a question that already opens with ``Task:``, as CodeActInstruct's do,
is not given a second one). ``compact`` (the tiny char-level model, which learns the format in its cold start): the
bare question and a newline, as the arithmetic task's compact prompt. The last sentence of the instruction follows
the environment: with retries (M3ToolEval's protocol) a wrong solution is answered and the episode goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from sspo_exp.codeact.episode import EnvConfig
from sspo_exp.data.prompts import render_chat

PROMPT_STYLES = ("instruct", "compact")
INSTRUCTION = (
    "You are solving a task with the help of an interactive Python interpreter. At each turn, think step by step, "
    "then either run Python code by enclosing it in <execute> </execute> (you will see its output; variables persist "
    "between turns) or give the final answer by enclosing it in <solution> </solution>. You have {max_turns} turns; "
)
ENDINGS = {False: "the first <solution> ends the task.",
           True: "if your <solution> is wrong you will be told so and may try again."}


def instruction(max_turns: int, retry: bool) -> str:
    """The instruction text for an environment with ``max_turns`` turns and (no) retries."""
    return INSTRUCTION.format(max_turns=max_turns) + ENDINGS[bool(retry)]


def build_prompt(question: str, tokenizer: Any = None, prompt_style: str = "instruct", max_turns: int = 10,
                 chat_template_kwargs: Mapping[str, Any] | None = None, retry: bool = True) -> str:
    if prompt_style == "compact":
        return f"{question}\n"
    if prompt_style != "instruct":
        raise ValueError(f"dataset.prompt_style must be one of {list(PROMPT_STYLES)}, got {prompt_style!r}")
    task = question if question.lstrip().startswith("Task:") else f"Task:\n{question}"
    text = f"{instruction(max_turns, retry)}\n\n{task}"
    if not getattr(tokenizer, "chat_template", None):
        return f"{text}\n"

    # keep the template's BOS: CodeAct episodes encode their prompt without special tokens (codeact.rollout/evaluate)
    return render_chat([{"role": "user", "content": text}], tokenizer, chat_template_kwargs, keep_bos=True)


def env_knobs(dataset_cfg: Any) -> tuple[str, int, bool]:
    """``(prompt_style, max_turns, retry)`` of a ``codeact`` dataset block (the environment's defaults where unset)."""
    cfg = dataset_cfg or {}
    style = cfg.get("prompt_style", "instruct") if hasattr(cfg, "get") else "instruct"
    env = (cfg.get("env") if hasattr(cfg, "get") else None) or {}
    return style, int(env.get("max_turns", EnvConfig.max_turns)), bool(env.get("retry", EnvConfig.retry))


def prompt_fn(dataset_cfg: Any, chat_template_kwargs: Mapping[str, Any] | None = None):
    """``(question, tokenizer) -> prompt`` for a ``codeact`` dataset block (its ``prompt_style``, ``env.max_turns``,
    ``env.retry``)."""
    style, turns, retry = env_knobs(dataset_cfg)
    return lambda question, tokenizer: build_prompt(question, tokenizer, style, turns, chat_template_kwargs, retry)
