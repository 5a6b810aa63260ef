"""The registry of tasks (:class:`TaskRecord`), keyed by benchmark / ``dataset.name``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: ``prompt(dataset_cfg, chat_template_kwargs) -> fn(question, tokenizer) -> str``
PromptFactory = Callable[[Any, dict], Callable[[str, Any], str]]


@dataclass(frozen=True)
class TaskRecord:
    """One task. ``prompt`` builds its prompt function; ``prompt_id(dataset_cfg)`` names that builder in evaluation
    profiles (a hash of the prompt text where it is fixed); ``scorer`` scores rows that carry ``row_marker`` (a column
    only this task's rows have) instead of the answer check; ``label`` is how tables name it; ``checker_id(dataset_cfg)``
    names the answer check in evaluation profiles when the task picks its own (None: the project's checker version)."""

    name: str
    prompt: PromptFactory
    prompt_id: Callable[[Any], str]
    scorer: Callable[..., Any] | None = None
    row_marker: str | None = None
    label: str = ""
    checker_id: Callable[[Any], str] | None = None


_TASKS: dict[str, TaskRecord] = {}
DEFAULT = "zero-shot"  #: the record of every benchmark or dataset not registered by name (gsm8k, math500, aime, …)


def register_task(record: TaskRecord, *names: str) -> TaskRecord:
    """Register ``record`` under its name and ``names`` (aliases: ``codeact_arith`` shares CodeAct's record)."""
    for name in (record.name, *names):
        _TASKS[name] = record
    return record


def task(name: str | None) -> TaskRecord:
    """The record of benchmark / dataset ``name`` (the zero-shot record when none is registered by that name)."""
    return _TASKS.get(str(name), _TASKS[DEFAULT])


def episode_scorer(rows: Sequence[dict[str, Any]]) -> Callable[..., Any] | None:
    """The scorer of the task whose rows these are, when it has its own (None: the answer check scores them)."""
    if not rows:
        return None
    return next((t.scorer for t in _TASKS.values() if t.row_marker and t.row_marker in rows[0]), None)
