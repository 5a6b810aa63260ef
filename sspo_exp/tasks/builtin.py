"""The tasks with a prompt or a scorer of their own: the zero-shot default, the arithmetic task, CodeAct."""

from __future__ import annotations

from typing import Any

from sspo_exp.codeact.prompts import INSTRUCTION as CODEACT_INSTRUCTION
from sspo_exp.codeact.prompts import prompt_fn as codeact_prompt_fn
from sspo_exp.data.arithmetic import build_prompt as arithmetic_prompt
from sspo_exp.data.prompts import INSTRUCTION, PLAIN_TEMPLATE, build_prompt
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
    cfg = dataset_cfg or {}
    style = cfg.get("prompt_style", "instruct")
    turns = int(((cfg.get("env") or {}).get("max_turns", 5)))
    return f"codeact-{style}-{turns}turns-" + text_hash(CODEACT_INSTRUCTION, 8)


register_task(TaskRecord(DEFAULT, _zero_shot_prompt, _zero_shot_id, label="zero-shot question/answer"))
register_task(TaskRecord("arithmetic", _arithmetic_prompt, _arithmetic_id, label="generated arithmetic"))
register_task(TaskRecord("codeact", codeact_prompt_fn, _codeact_id, scorer=evaluate_codeact, row_marker="checker",
                         label="CodeAct (M3ToolEval)"), "codeact_arith")
