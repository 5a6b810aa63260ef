"""Policies: the one loader of models and tokenizers, for training and evaluation alike.

``load_policy(model_cfg, dataset_cfg, seed, dtype)`` gives the policy a training run starts from: ``model.path`` (a
local HF-format directory or a hub id), its supervised cold start when ``model.cold_start.enabled`` (paper §4.3,
docs/cold_start.md), or the embedded tiny model, built and cold-started locally on first use — the cold start is a
cached stage computed once per key (``sspo_exp.models.cold_start``, ``stage``). ``load_model`` / ``load_tokenizer`` load any HF-format causal LM (``sspo-exp
eval`` uses them with its own dtype and device).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: dtypes a model may be loaded in ("auto" = the checkpoint's own).
DTYPES = ("auto", "float32", "bfloat16", "float16")


def missing_local_dir(spec: str) -> bool:
    """``spec`` is written as a local path (``/``, ``.``, ``~`` first, or more than one ``/``; an HF id is
    ``org/name``) and no such directory exists: the user's mistake, found before anything loads."""
    from pathlib import Path

    spec = str(spec)
    return (spec.startswith((".", "/", "~")) or spec.count("/") > 1) and not Path(spec).expanduser().is_dir()


def ensure_pad_token(tokenizer):
    """Left-padded batches need a pad token: the tokenizer's own, else its eos (the only place this fallback lives)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(path: str, chat_template: str | None = "auto"):
    """The tokenizer at ``path``, left padding (batched generation), pad = eos if it has none; a ``chat_template``
    other than ``auto``/None (a Jinja string) replaces the tokenizer's own."""
    from transformers import AutoTokenizer

    tokenizer = ensure_pad_token(AutoTokenizer.from_pretrained(str(path), padding_side="left"))
    if chat_template and chat_template != "auto":
        tokenizer.chat_template = chat_template
    return tokenizer


def load_model(path: str, dtype: str = "float32", attn_implementation: str | None = None, device: str | None = None):
    """The causal LM at ``path`` in ``dtype`` (one of :data:`DTYPES`), on ``device`` (None: where it loads)."""
    import torch
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: choose one of {', '.join(DTYPES)}")
    kwargs: dict[str, Any] = {"dtype": "auto" if dtype == "auto" else getattr(torch, dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    return model.to(device) if device else model


def policy_path(model_cfg: Mapping[str, Any], dataset_cfg: Mapping[str, Any], seed: int) -> str:
    """Where the initial policy's weights are: ``model.path``, or its cold start's cache directory (computed on first
    use: the tiny model's, or the SFT of ``model.path`` when ``model.cold_start.enabled``; ``sspo_exp.models.cold_start``)."""
    from sspo_exp.models.cold_start import cold_started_path

    return cold_started_path(model_cfg, model_cfg.get("cold_start"), dataset_cfg, seed)


def load_policy(model_cfg: Mapping[str, Any], dataset_cfg: Mapping[str, Any], seed: int, dtype: str = "float32",
                path: str | None = None):
    """``(model, tokenizer)`` a run starts from (see the module docstring). The weights are loaded in ``dtype``
    (training: float32 master weights whatever the checkpoint's dtype, ``sspo_exp.train.config.train_dtype``);
    ``path``: :func:`policy_path`'s answer when the caller already has it."""
    path = path or policy_path(model_cfg, dataset_cfg, seed)
    model = load_model(path, dtype, model_cfg.get("attn_implementation") if model_cfg.get("path") else None)
    return model, load_tokenizer(path, model_cfg.get("chat_template") or "auto")
