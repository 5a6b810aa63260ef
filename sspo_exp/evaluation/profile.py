"""The evaluation profile: everything besides the weights that decides a greedy Pass@1 (issue 11, item 1).

Greedy decoding under another dtype or backend flips answers (one AIME problem is 3.3 points), and a Base row scored
one way beside trained rows scored another would make Δ Avg measure the protocol, not the training. So every
result JSON records its profile (``"profile"``), the W&B summary carries it per benchmark
(``eval/<benchmark>/profile.<field>``, ``sspo_exp.keys.record_stats``), and the report puts rows in one table only when their profiles agree
(``sspo_exp.report.tables.profile_mismatches``).

    backend               hf | vllm
    dtype                 what the forward pass computed in: the weights' dtype, ``+autocast-<dtype>`` when the
                          trainer's mixed precision wraps the forward in autocast (training's own evaluation with
                          trainer.bf16 on a GPU); resolved from the loaded model, never "auto"
    max_new_tokens        the generation budget
    prompt                the prompt builder and a hash of its text (``zero-shot-<hash>``, ``arithmetic-compact``)
    chat_template         ``none`` or a hash of the tokenizer's chat template text
    chat_template_kwargs  extra template arguments (``model.chat_template_kwargs``, e.g. Qwen3's enable_thinking)
    stop                  the stop rule (greedy until an EOS id of the model or tokenizer, or the budget)
    checker               the answer checker's version (``sspo_exp.rewards.CHECKER_VERSION``); a task with its own
                          check names it (CodeAct: ``codeact-<upstream|strict>+<version>``)
    id                    a hash of all of the above: two results with one id were scored under one protocol
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sspo_exp.keys import PROFILE_FIELDS
from sspo_exp.rewards import CHECKER_VERSION

STOP_RULE = "greedy-eos-or-budget"  #: greedy decoding until an EOS id (model's or tokenizer's) or ``max_new_tokens``


def _hash(text: str, n: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


@dataclass(frozen=True)
class EvalProfile:
    backend: str
    dtype: str
    max_new_tokens: int
    prompt: str
    chat_template: str = "none"
    chat_template_kwargs: dict = field(default_factory=dict)
    stop: str = STOP_RULE
    checker: str = ""

    @property
    def id(self) -> str:
        """A short fingerprint of every field."""
        return _hash(json.dumps(asdict(self), sort_keys=True, default=str), 10)

    def as_dict(self) -> dict[str, Any]:
        """The fields (``sspo_exp.keys.PROFILE_FIELDS``) and ``id``: the result JSON's ``"profile"`` block."""
        data = asdict(self)
        assert tuple(data) == PROFILE_FIELDS, "keys.PROFILE_FIELDS names the profile's fields"
        return {**data, "id": self.id}


def template_hash(tokenizer: Any) -> str:
    """``none`` for a tokenizer without a chat template (prompts are plain text), else a hash of the template."""
    text = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if not text:
        return "none"
    text = text if isinstance(text, str) else json.dumps(text, sort_keys=True)
    return "sha256:" + _hash(text)


def compute_dtype(model: Any) -> str:
    """What ``model``'s forward computes in: its floating weights' dtype, with ``+autocast-<dtype>`` when
    accelerate wrapped the forward in autocast (it keeps the original as ``_original_forward``)."""
    params = model.parameters() if hasattr(model, "parameters") else ()
    weights = next((p.dtype for p in params if p.is_floating_point()), None)
    name = str(weights).removeprefix("torch.") if weights is not None else "unknown"
    if "_original_forward" in getattr(model, "__dict__", {}):
        from accelerate.state import AcceleratorState

        mp = AcceleratorState().mixed_precision if AcceleratorState._shared_state else "unknown"
        return f"{name}+autocast-{ {'bf16': 'bfloat16', 'fp16': 'float16'}.get(str(mp), str(mp)) }"
    return name


def make_profile(backend: str, dtype: str, max_new_tokens: int, prompt: str, tokenizer: Any,
                 chat_template_kwargs: dict | None = None, checker: str | None = None) -> EvalProfile:  # fmt: skip
    """``checker``: the task's own answer check (``PromptBuilder.checker``, e.g. CodeAct's upstream/strict); None:
    the project's (``CHECKER_VERSION``), so no other benchmark's profile id moves."""
    return EvalProfile(backend, str(dtype), int(max_new_tokens), prompt, template_hash(tokenizer),
                       dict(chat_template_kwargs or {}), STOP_RULE, checker or CHECKER_VERSION)  # fmt: skip
