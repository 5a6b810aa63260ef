"""A miniature Qwen2.5-Instruct checkpoint built locally (no download), for ``model.path=<dir>`` / ``eval.model=<dir>``.

What makes it stand in for a real pretrained instruct model rather than our char-level tiny one:

* ``Qwen2ForCausalLM`` (GQA: 4 query heads over 2 KV heads, tied embeddings, rope theta 1e6), random weights,
  saved in **bfloat16** with ``dtype: bfloat16`` in ``config.json`` like the real checkpoint;
* a **byte-level BPE** tokenizer trained here with ``tokenizers`` through Qwen2's own pipeline (NFC, Qwen2's split
  regex, ByteLevel), special tokens appended *after* the learned vocabulary as in Qwen (``<|endoftext|>``,
  ``<|im_start|>``, ``<|im_end|>``), ``eos = <|im_end|>``, ``pad = <|endoftext|>``, no BOS; the model's embedding
  is padded past ``len(tokenizer)`` (Qwen2.5: 151,936 rows for 151,665 tokens);
* Qwen2.5's Jinja chat template (default system prompt, ``add_generation_prompt``);
* Qwen2.5-Instruct's ``generation_config.json``, whose *sampling* defaults (``do_sample``, temperature 0.7,
  top-p 0.8, top-k 20, repetition penalty 1.05) greedy evaluation and TRL rollouts must override.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
# Qwen2.5-Instruct's template without its tool-calling branches.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first)"
    " or (message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
GENERATION_PROMPT = "<|im_start|>assistant\n"
ARCH = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=1024, rope_theta=1e6, tie_word_embeddings=True)  # fmt: skip
#: The same model with head_dim 64 for vLLM's CPU attention kernel (it rejects head_dim 8 or 16): 2 heads of 64.
VLLM_ARCH = {**ARCH, "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2, "num_key_value_heads": 2}


def corpus(n: int = 120, seed: int = 0) -> list[str]:
    """A few KB of generated math text: word problems, equations, the instruction and the answer tags."""
    from sspo_exp.data.prompts import INSTRUCTION

    rng = random.Random(seed)
    names, things = ["Ben", "Lena", "Sam", "Ava", "Omar"], ["apples", "books", "coins", "people", "meters"]
    lines = [INSTRUCTION, DEFAULT_SYSTEM] * 3  # frequent text compresses, as English does in a real vocabulary
    for _ in range(n):
        a, b = rng.randint(0, 999), rng.randint(1, 99)
        op, val = rng.choice([("+", a + b), ("-", a - b), ("*", a * b)])
        who, what = rng.choice(names), rng.choice(things)
        lines.append(f"{who} has {a} {what} and gets {b} more. How many {what} does {who} have?")
        lines.append(f"<think> {a} {op} {b} = {val} </think> <answer> {val} </answer>")
    return lines


def build_tokenizer(vocab_size: int = 512):
    """A Qwen2-style byte-level BPE tokenizer trained on :func:`corpus` (``Qwen2Tokenizer`` on disk)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    core = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    core.train_from_iterator(corpus(), trainer=trainer)
    model = json.loads(core.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    vocab = dict(model["vocab"])
    vocab.update({t: len(vocab) + i for i, t in enumerate(SPECIALS)})  # ids after the learned ones, in Qwen's order
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>",
                         additional_special_tokens=["<|im_start|>", "<|im_end|>"],
                         model_max_length=32768, errors="replace", clean_up_tokenization_spaces=False,
                         split_special_tokens=False)  # fmt: skip
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_local_qwen(path: Path, seed: int = 0, arch: dict | None = None) -> Path:
    """Write the miniature Qwen2.5-Instruct checkpoint into ``path`` (see the module docstring); ``arch`` replaces
    :data:`ARCH` (e.g. :data:`VLLM_ARCH`)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    tok = build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    vocab = -(-len(tok) // 64) * 64  # embedding padded past the tokenizer, as Qwen's
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=vocab, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=None, **(arch or ARCH))  # fmt: skip
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"], eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"], do_sample=True, temperature=0.7, top_p=0.8, top_k=20,
        repetition_penalty=1.05,
    )  # fmt: skip
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def local_qwen_dir(tmp_path_factory) -> Path:
    """The miniature Qwen2.5-Instruct directory, built once per test session."""
    return build_local_qwen(tmp_path_factory.mktemp("local-qwen2.5") / "Qwen2.5-mini-Instruct")
