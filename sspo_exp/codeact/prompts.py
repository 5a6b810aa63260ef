"""The CodeAct prompt: the action format's instruction (``env.action_format``, :mod:`sspo_exp.codeact.format`) and
the task.

``instruct`` (pretrained models): the user message of the environment's action format, through the tokenizer's
chat template when it has one. ``tags``: our instruction (``<execute>`` to run Python and see the output,
``<solution>`` to answer, the turn budget; its last sentence follows ``env.retry``) and ``Task:\\n<question>`` (a
question that already opens with ``Task:``, as CodeActInstruct's do, is not given a second one). ``upstream``:
M3ToolEval's ``get_prompt`` text for code-as-action, verbatim (an M3ToolEval row's tool list and instruction; a task
without tools, CodeActInstruct's, with the tool list left out). ``compact`` (the tiny char-level model, which learns
the format in its cold start): the bare question and a newline, as the arithmetic task's compact prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from sspo_exp.codeact.episode import EnvConfig
from sspo_exp.codeact.format import ACTION_FORMATS
from sspo_exp.data.prompts import render_chat

PROMPT_STYLES = ("instruct", "compact")


class PromptKnobs(NamedTuple):
    """What of a ``codeact`` dataset block the prompt depends on."""

    style: str
    max_turns: int
    retry: bool
    action_format: str


def build_prompt(question: str, tokenizer: Any = None, prompt_style: str = "instruct", max_turns: int = 10,
                 chat_template_kwargs: Mapping[str, Any] | None = None, retry: bool = True,
                 action_format: str = EnvConfig.action_format) -> str:
    if prompt_style == "compact":
        return f"{question}\n"
    if prompt_style != "instruct":
        raise ValueError(f"dataset.prompt_style must be one of {list(PROMPT_STYLES)}, got {prompt_style!r}")
    text = ACTION_FORMATS[action_format].prompt_text(question, max_turns, retry)
    if not getattr(tokenizer, "chat_template", None):
        return f"{text}\n"

    # keep the template's BOS: CodeAct episodes encode their prompt without special tokens (codeact.rollout/evaluate)
    return render_chat([{"role": "user", "content": text}], tokenizer, chat_template_kwargs, keep_bos=True)


def env_knobs(dataset_cfg: Any) -> PromptKnobs:
    """The :class:`PromptKnobs` of a ``codeact`` dataset block (the environment's defaults where unset)."""
    cfg = dataset_cfg or {}
    style = cfg.get("prompt_style", "instruct") if hasattr(cfg, "get") else "instruct"
    env = (cfg.get("env") if hasattr(cfg, "get") else None) or {}
    return PromptKnobs(style, int(env.get("max_turns", EnvConfig.max_turns)), bool(env.get("retry", EnvConfig.retry)),
                       str(env.get("action_format", EnvConfig.action_format)))


def prompt_fn(dataset_cfg: Any, chat_template_kwargs: Mapping[str, Any] | None = None):
    """``(question, tokenizer) -> prompt`` for a ``codeact`` dataset block (its ``prompt_style``, ``env.max_turns``,
    ``env.retry``, ``env.action_format``)."""
    k = env_knobs(dataset_cfg)
    return lambda question, tokenizer: build_prompt(question, tokenizer, k.style, k.max_turns, chat_template_kwargs,
                                                    k.retry, k.action_format)
