"""The tasks with a prompt or a scorer of their own: the zero-shot default, the arithmetic task, CodeAct."""

from __future__ import annotations

from typing import Any

from sspo_exp.codeact.episode import EMPTY_OUTPUT, TRUNCATED, EnvConfig
from sspo_exp.codeact.format import ACTION_FORMATS, TAGS
from sspo_exp.codeact.prompts import env_knobs as codeact_knobs
from sspo_exp.codeact.prompts import prompt_fn as codeact_prompt_fn
from sspo_exp.data.arithmetic import build_prompt as arithmetic_prompt
from sspo_exp.data.prompts import INSTRUCTION, PLAIN_TEMPLATE, build_prompt
from sspo_exp.rewards import CHECKER_VERSION
from sspo_exp.tasks.codeact import evaluate_codeact
from sspo_exp.tasks.prompts import text_hash
from sspo_exp.tasks.registry import DEFAULT, TaskRecord, register_task


def _zero_shot_id(dataset_cfg: Any = None) -> str:
    return "zero-shot-" + text_hash(INSTRUCTION + "\0" + PLAIN_TEMPLATE, 8)


def _zero_shot_prompt(dataset_cfg: Any, chat_template_kwargs: dict):
    return lambda question, tokenizer: build_prompt(question, tokenizer, chat_template_kwargs)


def _arithmetic_style(dataset_cfg: Any) -> str:
    return (dataset_cfg or {}).get("prompt_style", "compact")


def _arithmetic_id(dataset_cfg: Any) -> str:
    style = _arithmetic_style(dataset_cfg)
    return _zero_shot_id() if style == "instruct" else f"arithmetic-{style}"


def _arithmetic_prompt(dataset_cfg: Any, chat_template_kwargs: dict):
    style = _arithmetic_style(dataset_cfg)
    return lambda question, tokenizer: arithmetic_prompt(question, tokenizer, style, chat_template_kwargs)


def _codeact_id(dataset_cfg: Any) -> str:
    """``codeact-<style>[-<format>_actions]-<turns>turns-<budget>-<answer check>[-retry]-obs<chars>-<hash>``: the
    profile's ``prompt`` field names the episode protocol too, so a cell records which answer check (upstream |
    strict) and which action format scored it (``-upstream_actions``; ``tags``, the format before the key existed,
    adds nothing, so its ids did not move) and cells scored under different protocols never share a profile id; the
    hash covers every fixed text, the action format's included."""
    style, turns, retry, action_format = codeact_knobs(dataset_cfg)
    fmt = ACTION_FORMATS[action_format]
    env = dict(((dataset_cfg or {}).get("env") or {}))
    budget = env.get("budget", EnvConfig.budget)
    check = env.get("answer_check", EnvConfig.answer_check)
    chars = env.get("max_observation_chars", EnvConfig.max_observation_chars)
    cap = env.get("max_episode_tokens", EnvConfig.max_episode_tokens)
    texts = (*fmt.fixed_texts(turns, retry), EMPTY_OUTPUT, TRUNCATED,
             str(env.get("observation_prefix", EnvConfig.observation_prefix)))
    actions = "" if fmt is TAGS else f"-{fmt.name}_actions"
    return (f"codeact-{style}{actions}-{turns}turns-{budget}{f'-cap{cap}' if cap else ''}-{check}{'-retry' if retry else ''}"
            f"-obs{chars}-" + text_hash("\0".join(texts), 8))


register_task(TaskRecord(DEFAULT, _zero_shot_prompt, _zero_shot_id, label="zero-shot question/answer"))
register_task(TaskRecord("arithmetic", _arithmetic_prompt, _arithmetic_id, label="generated arithmetic"))
def _codeact_checker(dataset_cfg: Any) -> str:
    """The profile's ``checker`` of a CodeAct cell: which check judged M3ToolEval rows (``env.answer_check``), and
    the project's checker version (the ``math`` rows)."""
    env = (dataset_cfg or {}).get("env") or {}
    return f"codeact-{env.get('answer_check', EnvConfig.answer_check)}+{CHECKER_VERSION}"


register_task(TaskRecord("codeact", codeact_prompt_fn, _codeact_id, scorer=evaluate_codeact, row_marker="checker",
                         label="CodeAct (M3ToolEval)", checker_id=_codeact_checker), "codeact_arith")
