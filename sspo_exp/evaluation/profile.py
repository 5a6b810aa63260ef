"""The evaluation profile: everything that decides a greedy Pass@1 besides the weights (issue: one protocol per table).

Greedy decoding under another dtype or backend flips answers (one AIME problem is 3.3 points), and a Base row scored
one way beside trained rows scored another would make Δ Avg measure the protocol, not the training. So every result
records its profile, and the report puts two rows in one table only when their profiles agree
(``sspo_exp.report.tables.profile_check``).

    backend               hf | vllm
    dtype                 the weights' dtype during generation (training's own evaluation: the training weights')
    max_new_tokens        the generation budget
    prompt                the prompt builder (``zero-shot-v1``, ``arithmetic-compact``, ...)
    chat_template         ``none`` or a short hash of the tokenizer's chat template text
    chat_template_kwargs  extra template arguments (``model.chat_template_kwargs``, e.g. Qwen3's enable_thinking)
    stop                  the stop rule (greedy until EOS or the budget)
    checker               the answer checker's version (``sspo_exp.rewards.CHECKER_VERSION``)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

STOP_RULE = "eos-or-budget"  #: greedy decoding until the tokenizer's EOS token or ``max_new_tokens``


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def id(self) -> str:
        """A short fingerprint of every field: two results with one id were scored under one protocol."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True, default=str).encode()).hexdigest()[:10]


def template_hash(tokenizer: Any) -> str:
    """``none`` for a tokenizer without a chat template (prompts are plain text), else a hash of the template."""
    text = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if not text:
        return "none"
    text = text if isinstance(text, str) else json.dumps(text, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]


def prompt_id(benchmark: str, dataset_cfg: Any) -> str:
    """The prompt builder a benchmark uses (``sspo_exp.evaluation.run.prompt_fn_for``)."""
    if benchmark == "arithmetic":
        return f"arithmetic-{(dataset_cfg or {}).get('prompt_style', 'compact')}"
    return "zero-shot-v1"


def make_profile(backend: str, dtype: str, max_new_tokens: int, prompt: str, tokenizer: Any,
                 chat_template_kwargs: dict | None = None) -> EvalProfile:  # fmt: skip
    from sspo_exp.rewards import CHECKER_VERSION

    return EvalProfile(backend, str(dtype), int(max_new_tokens), prompt, template_hash(tokenizer),
                       dict(chat_template_kwargs or {}), STOP_RULE, CHECKER_VERSION)  # fmt: skip


def differences(profiles: dict[str, dict]) -> dict[str, dict[str, Any]]:
    """``{field: {who: value}}`` for every field on which the named profiles disagree."""
    fields = sorted({k for p in profiles.values() for k in p})
    out = {}
    for f in fields:
        values = {who: p.get(f) for who, p in profiles.items()}
        if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) > 1:
            out[f] = values
    return out
