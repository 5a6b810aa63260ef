"""Policies: the one loader of models and tokenizers, for training and evaluation alike.

``load_model`` / ``load_tokenizer`` load any HF-format causal LM (training's initial policy through
``sspo_exp.stages.policy.load_policy``, ``sspo-exp eval`` with its own dtype and device); ``tiny`` builds the
embedded tiny model. This package imports nothing else of the project: what a run starts from (a cold start, a
cached stage) is ``sspo_exp.stages``'.
"""

from __future__ import annotations

from typing import Any

#: Architecture fields of ``conf/model/tiny.yaml`` (documented there; ``sspo_exp.models.tiny`` builds from them).
TINY_ARCH_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "max_position_embeddings")  # fmt: skip
#: dtypes a model may be loaded in ("auto" = the checkpoint's own).
DTYPES = ("auto", "float32", "bfloat16", "float16")


def missing_local_dir(spec: str) -> bool:
    """``spec`` is written as a local path (``/``, ``.``, ``~`` first, or more than one ``/``; an HF id is
    ``org/name``) and no such directory exists: the user's mistake, found before anything loads."""
    from pathlib import Path

    spec = str(spec)
    return (spec.startswith((".", "/", "~")) or spec.count("/") > 1) and not Path(spec).expanduser().is_dir()


def missing_local_dir_message(field: str, spec: str) -> str:
    """The one line for a :func:`missing_local_dir` ``spec`` given as config ``field``."""
    return f"{field}={spec}: no such directory (and not an HF model id 'org/name')"


def hub_id(spec: str | None) -> str | None:
    """``spec`` when :func:`load_model` would fetch it from the Hub (an ``org/name`` id, no such local directory)."""
    from pathlib import Path

    if not spec or str(spec).startswith((".", "/", "~")) or str(spec).count("/") > 1 or Path(str(spec)).exists():
        return None
    return str(spec)


def encode(tokenizer, texts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
    """The token ids ``tokenizer(texts, add_special_tokens=...).input_ids`` gives, in one batched call to the
    tokenizer's Rust backend, without the Python wrapper's conversions (the tiny cold start's 40,000 texts: 0.3 s
    instead of 0.8-1.3 s; the default job's 20,000 training prompts: 0.08 s instead of 0.39 s). The wrapper resets the
    backend's padding, truncation and special-token splitting on every call; a backend left padding or truncating by
    an earlier call, one whose splitting differs from the tokenizer's setting, a tokenizer class that changes how the
    fast tokenizer encodes (its own ``__call__`` or ``_encode_plus``: infilling, input modes), or a slow tokenizer goes
    through it."""
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    split = bool(getattr(tokenizer, "split_special_tokens", False))
    if (backend is not None and backend.padding is None and backend.truncation is None
            and getattr(backend, "encode_special_tokens", split) == split and _plain_fast(tokenizer)):  # fmt: skip
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=add_special_tokens)]
    return tokenizer(texts, add_special_tokens=add_special_tokens).input_ids


#: transformers' fast tokenizer class (5.x, 4.x), whose encoding is one call to the Rust backend
FAST_BASES = ("TokenizersBackend", "PreTrainedTokenizerFast")
#: what a subclass overrides to encode differently (:func:`encode` then calls the tokenizer)
ENCODING_METHODS = ("__call__", "_encode_plus", "_batch_encode_plus", "_switch_to_input_mode", "prepare_for_tokenization")


def _plain_fast(tokenizer) -> bool:
    """``tokenizer``'s class encodes as transformers' fast tokenizer class does (found by name: no import here)."""
    cls = type(tokenizer)
    base = next((c for c in cls.__mro__ if c.__name__ in FAST_BASES), None)
    return base is not None and all(getattr(cls, m, None) is getattr(base, m, None) for m in ENCODING_METHODS)


#: What ``from_pretrained`` of a model and its tokenizer reads first (the weights are checked by their index).
MODEL_FILES = ("config.json", "tokenizer_config.json")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def hub_model_missing(repo: str, cache_dir: str | None = None) -> list[str]:
    """The files of Hub model ``repo`` (default branch) that :func:`load_model` / :func:`load_tokenizer` need and the
    local HF hub cache (``cache_dir``: ``$HF_HUB_CACHE``) lacks: config, tokenizer config, and every weight shard
    its index names ([] = all there, so ``HF_HUB_OFFLINE=1`` loads it). Reads only the cache (~ms, no network)."""
    import json

    from huggingface_hub import try_to_load_from_cache

    def cached(name: str) -> str | None:
        found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
        return found if isinstance(found, str) else None

    missing = [name for name in MODEL_FILES if not cached(name)]
    index = next((found for found in map(cached, WEIGHT_INDEXES) if found), None)
    if index:
        shards = sorted(set(json.loads(open(index, encoding="utf-8").read()).get("weight_map", {}).values()))
        missing += [shard for shard in shards if not cached(shard)]
    elif not any(cached(name) for name in WEIGHT_FILES):
        missing.append("model.safetensors")
    return missing


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
