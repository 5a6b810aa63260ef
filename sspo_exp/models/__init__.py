"""Policies: the embedded tiny model (built and cold-started locally) or any HF-format causal LM."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def load_policy(model_cfg: Mapping[str, Any], dataset_cfg: Mapping[str, Any], seed: int):
    """``(model, tokenizer)`` for a ``model`` config block.

    ``model.path`` set: load that local HF-format directory or hub id with ``AutoModelForCausalLM`` /
    ``AutoTokenizer`` (left padding; pad = eos when the tokenizer has no pad token).
    ``name: tiny`` without a path: the cold-started tiny model for ``(model_cfg, dataset_cfg, seed)``, trained on
    the first call and loaded from the cache afterwards (``sspo_exp.models.cold_start``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_cfg.get("path")
    if not path:
        if model_cfg.get("name") != "tiny":
            raise ValueError(f"model.path is required for model.name={model_cfg.get('name')!r}; only 'tiny' is built locally")
        if dataset_cfg.get("name") == "codeact_arith":  # hook (codeact): cold-started on the CodeAct format
            from sspo_exp.codeact.cold_start import cold_started as codeact_cold_started

            path = codeact_cold_started(model_cfg, model_cfg["cold_start"], dataset_cfg, seed)
        elif dataset_cfg.get("name") != "arithmetic":
            raise ValueError(f"model=tiny is cold-started on dataset=arithmetic; got dataset.name={dataset_cfg.get('name')!r}")
        else:
            from sspo_exp.models.cold_start import cold_started

            path = cold_started(model_cfg, model_cfg["cold_start"], dataset_cfg, seed)
    model = AutoModelForCausalLM.from_pretrained(str(path))
    tokenizer = AutoTokenizer.from_pretrained(str(path), padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
