"""Zero-shot prompts asking for ``<think>…</think> <answer>…</answer>`` (SPEC.md: "zero-shot prompts").

:func:`build_prompt` returns a **string**: the tokenizer's chat template rendered with the generation prompt when
the tokenizer has one, the plain-text template otherwise. Why a string and not TRL's conversational format (a
list of messages): with a string, TRL 1.16's ``GRPOTrainer`` decodes the completion verbatim
(``batch_decode(..., skip_special_tokens=True)``), so the reward sees exactly what the model wrote; with messages,
tokenizers that carry a response schema (Qwen3) have ``parse_response`` move the ``<think>`` block into a separate
reasoning field, which would change what the format reward scores. The same string is what evaluation feeds to
HF ``generate`` and vLLM, so training and evaluation prompt identically. (The reward functions accept message
lists too, re-wrapping a split-off reasoning field in ``<think>`` tags.)

``chat_template_kwargs`` (config ``model.chat_template_kwargs``) are passed to ``apply_chat_template`` here, the one
place prompts are rendered for training and evaluation alike: e.g. ``{enable_thinking: false}`` switches Qwen3's
template to its non-thinking mode (conf/model/qwen3-*.yaml say why). A template that does not read a key ignores it.

A leading BOS that the template writes is removed when the tokenizer adds BOS itself on encoding, so the prompt
is not tokenized with two BOS tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

INSTRUCTION = (
    "Solve the problem. First think step by step inside <think> </think>, then give only the final answer "
    "inside <answer> </answer>, i.e. <think> reasoning here </think> <answer> final answer here </answer>."
)
PLAIN_TEMPLATE = "{instruction}\n\nProblem: {question}\nResponse: "


def build_messages(question: str) -> list[dict[str, str]]:
    """The prompt as one user message (no system message: not every chat template accepts one)."""
    return [{"role": "user", "content": f"{INSTRUCTION}\n\n{question}"}]


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def build_prompt(question: str, tokenizer: Any = None, chat_template_kwargs: Mapping[str, Any] | None = None) -> str:
    """The zero-shot prompt for one question: chat-template-rendered (with ``chat_template_kwargs``) when
    ``tokenizer`` has a chat template, the plain-text template otherwise (also when ``tokenizer`` is None)."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-blank string, got {question!r:.80}")
    if not has_chat_template(tokenizer):
        return PLAIN_TEMPLATE.format(instruction=INSTRUCTION, question=question)
    return render_chat(build_messages(question), tokenizer, chat_template_kwargs)


def render_chat(messages: list[dict[str, str]], tokenizer: Any,
                chat_template_kwargs: Mapping[str, Any] | None = None, keep_bos: bool = False) -> str:
    """``messages`` through the tokenizer's chat template with the generation prompt and ``chat_template_kwargs``
    (the one call of ``apply_chat_template`` for prompts), without a leading BOS the tokenizer adds again when
    encoding (TRL encodes prompts with special tokens); ``keep_bos`` for callers that encode without them."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         **dict(chat_template_kwargs or {}))  # fmt: skip
    bos = getattr(tokenizer, "bos_token", None)
    if not keep_bos and bos and text.startswith(bos) and _adds_bos(tokenizer):
        text = text[len(bos) :]
    return text


def _adds_bos(tokenizer: Any) -> bool:
    bos_id = getattr(tokenizer, "bos_token_id", None)
    try:
        ids = tokenizer("a")["input_ids"]
    except Exception:
        return False
    return bos_id is not None and len(ids) > 0 and ids[0] == bos_id


def rows_to_dataset(rows: Sequence[dict[str, str]], tokenizer: Any = None, prompt_fn=None):
    """A ``datasets.Dataset`` for TRL: columns ``prompt`` (built per row), ``answer`` (the gold answer, the
    reward functions' ``answer`` argument), ``id`` and ``source``. ``prompt_fn(question, tokenizer)`` replaces
    :func:`build_prompt` (e.g. the arithmetic task's compact prompt)."""
    import datasets

    prompt_fn = prompt_fn or build_prompt
    return datasets.Dataset.from_dict(
        {
            "prompt": [prompt_fn(r["question"], tokenizer) for r in rows],
            "answer": [r["answer"] for r in rows],
            "id": [r["id"] for r in rows],
            "source": [r["source"] for r in rows],
        }
    )
