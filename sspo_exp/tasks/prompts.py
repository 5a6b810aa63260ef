"""The prompt builder of training and evaluation alike (:class:`PromptBuilder`), taken from the task registry."""

from __future__ import annotations

import hashlib
from typing import Any

from sspo_exp.plain import to_plain
from sspo_exp.tasks.registry import task


def text_hash(text: str, n: int = 8) -> str:
    """A short hash of a prompt text (profiles change when the text does)."""
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def prompt_id(benchmark: str, dataset_cfg: Any) -> str:
    """The prompt builder a benchmark uses, with a hash of its fixed text (the evaluation profile records it)."""
    return task(benchmark).prompt_id(dataset_cfg)


class PromptBuilder:
    """``builder(question, tokenizer) -> prompt``: the task's prompt (zero-shot instruction prompt, the arithmetic
    task's ``prompt_style``, CodeAct's instruction), chat templates rendered with ``chat_template_kwargs``; ``id``
    names it in the evaluation profile."""

    def __init__(self, benchmark: str, dataset_cfg: Any, chat_template_kwargs: Any = None):
        record = task(benchmark)
        self.chat_template_kwargs = dict(to_plain(chat_template_kwargs) or {})
        self.id = record.prompt_id(dataset_cfg)
        self.checker = record.checker_id(dataset_cfg) if record.checker_id else None  #: None: the project's checker
        self._build = record.prompt(dataset_cfg, self.chat_template_kwargs)

    def __call__(self, question: str, tokenizer: Any) -> str:
        return self._build(question, tokenizer)


def prompt_fn_for(benchmark: str, dataset_cfg: Any, chat_template_kwargs: Any = None) -> PromptBuilder:
    """The prompt builder of training and evaluation alike: ``chat_template_kwargs`` is the model's
    ``model.chat_template_kwargs``."""
    return PromptBuilder(benchmark, dataset_cfg, chat_template_kwargs)
