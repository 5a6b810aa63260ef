"""The tiny policy: a ~1M-parameter Llama-style causal LM and a char-level tokenizer, built locally (no download).

The tokenizer is a ``tokenizers`` BPE model with an empty merge list (so one token per character) over printable
ASCII and newline, plus the answer-format tags ``<think> </think> <answer> </answer>`` as single added tokens
(not *special*, so ``decode(skip_special_tokens=True)`` keeps them for the reward) and ``<pad>`` / ``<eos>``
as special tokens. Llama rather than Qwen2: transformers 5 forces its BPE ``Qwen2Tokenizer`` on any
directory whose config says ``qwen2``, which would not reload our char-level tokenizer. Both are saved to one directory that reloads with ``AutoModelForCausalLM`` / ``AutoTokenizer``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast, LlamaConfig, LlamaForCausalLM

from sspo_exp.models import TINY_ARCH_FIELDS as ARCH_FIELDS  # conf/model/tiny.yaml


FORMAT_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
#: CodeAct's tags, single tokens in the tokenizer of a CodeAct-cold-started tiny model (``build_tokenizer(CODEACT_TAGS)``)
CODEACT_TAGS = ("<execute>", "</execute>", "<solution>", "</solution>")
PAD, EOS = "<pad>", "<eos>"
CHARS = "".join(sorted(set(string.printable) - set("\t\r\x0b\x0c")))  # printable ASCII, space and newline



def build_tokenizer(extra_tags: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """Char-level tokenizer: ids 0,1 = ``<pad>``, ``<eos>``; then the format tags; then one id per character; then
    ``extra_tags`` (e.g. :data:`CODEACT_TAGS`), whole tokens like the format tags."""
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, *FORMAT_TAGS, *CHARS, *extra_tags])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, fuse_unk=False))
    core.decoder = decoders.Fuse()
    # left padding: decoder-only generation; saved in tokenizer_config.json so it survives a reload
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS, padding_side="left")
    tokenizer.add_tokens(list(FORMAT_TAGS) + list(extra_tags))  # in the vocab: whole tokens, not special
    return tokenizer


def build_model(arch: Mapping[str, Any], tokenizer: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    """A randomly initialised Llama causal LM (tied embeddings) with the fields of ``ARCH_FIELDS``."""
    missing = [f for f in ARCH_FIELDS if f not in arch]
    if missing:
        raise ValueError(f"model config is missing {missing}; the tiny model needs all of {list(ARCH_FIELDS)}")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        **{f: int(arch[f]) for f in ARCH_FIELDS},
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, path: str | Path) -> Path:
    """Write model + tokenizer in HF format so ``from_pretrained(path)`` reloads both."""
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
