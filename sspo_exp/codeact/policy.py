"""Sampling one CodeAct turn per context (the :data:`~sspo_exp.codeact.episode.Policy`): from an HF causal LM
(:class:`HFPolicy`) or a vLLM engine (:class:`VLLMPolicy`, e.g. TRL's colocated one).

Both take the environment's stop strings (``stop_strings``: its action format's, ``EnvConfig.actions``: ``</execute>``
/ ``</solution>`` for ``tags``, ``End Action`` for ``upstream``; the tags' by default).
HF: contexts are left-padded into one batch and sampled with ``generate``; a row stops after the first stop
string (checked on the decoded new tokens, so it works for any tokenizer, char-level or
BPE, where a tag may be split across tokens) or at EOS. Each row's new ids are then cut right after the token that
completed the stop string (or after EOS); what follows (padding, or tokens sampled past a stop string inside the
same token) is dropped, so the kept ids are exactly a prefix of what was sampled.

Both sample from the model's plain distribution at the given temperature / top-p / top-k: none of the checkpoint's
own ``generation_config`` sampling defaults (Qwen2.5-Instruct ships ``repetition_penalty: 1.05``) apply, so π_old,
which TRL recomputes by a plain forward pass, is the distribution the turns were sampled from, and ``temperature=0``
is plain greedy decoding. Both stop at every EOS id the model declares (Qwen: ``<|im_end|>`` and
``<|endoftext|>``) and cut the kept ids with :func:`cut_at_stop`, so under greedy decoding they return the same ids
wherever the two engines' argmax agrees (``tests/test_vllm_codeact.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sspo_exp.codeact.format import STOP_STRINGS


class _StopOnTags:
    """Per-row stopping criterion: True once the row's decoded new tokens contain a stop string."""

    def __init__(self, tokenizer: Any, start: int, stops: Sequence[str]):
        self.tokenizer, self.start, self.stops = tokenizer, start, tuple(stops)
        self.tail = max(len(s) for s in stops) + 16

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs) -> torch.Tensor:
        done = []
        for row in input_ids[:, self.start :]:
            text = self.tokenizer.decode(row[-self.tail :], skip_special_tokens=True)
            done.append(any(s in text for s in self.stops))
        return torch.tensor(done, device=input_ids.device)


def cut_at_stop(ids: list[int], tokenizer: Any, stops: Sequence[str] = STOP_STRINGS) -> list[int]:
    """The shortest prefix of ``ids`` that ends with EOS or whose text contains a stop string (else all, minus pad)."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    for k, tok in enumerate(ids):
        if tok == eos:
            return ids[: k + 1]
        if tok == pad and pad != eos:
            return ids[:k]
        text = tokenizer.decode(ids[max(0, k - 47) : k + 1], skip_special_tokens=True)  # a tag spans < 48 tokens
        if any(s in text for s in stops):
            return ids[: k + 1]
    return ids


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokenizer's EOS id and every one the model's ``generation_config`` declares (vLLM stops at all of them)."""
    own = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [] if own is None else [own] if isinstance(own, int) else list(own)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.insert(0, tokenizer.eos_token_id)
    return ids


def plain_generation_config(model: Any, tokenizer: Any, temperature: float, top_p: float, top_k: int | None):
    """A ``GenerationConfig`` sampling at ``temperature`` / ``top_p`` / ``top_k`` (greedy at 0) and nothing else."""
    from transformers import GenerationConfig

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sample = {"do_sample": True, "temperature": float(temperature), "top_p": float(top_p), "top_k": int(top_k or 0)}
    return GenerationConfig(**(sample if temperature > 0 else {"do_sample": False}), num_beams=1,
                            repetition_penalty=1.0, eos_token_id=eos_ids(model, tokenizer), pad_token_id=pad,
                            bos_token_id=getattr(model.generation_config, "bos_token_id", None))


class HFPolicy:
    """Sample (or decode greedily with ``temperature=0``) one turn per context; ``model`` is used as given."""

    def __init__(self, model: Any, tokenizer: Any, temperature: float = 1.0, top_p: float = 1.0,
                 top_k: int | None = None, batch_size: int = 64, stop_strings: Sequence[str] = STOP_STRINGS):
        self.model, self.tokenizer, self.stops = model, tokenizer, tuple(stop_strings)
        self.temperature, self.top_p, self.top_k, self.batch_size = temperature, top_p, top_k, batch_size

    @torch.no_grad()
    def __call__(self, contexts: Sequence[Sequence[int]], budgets: Sequence[int]) -> list[list[int]]:
        out: list[list[int]] = []
        for k in range(0, len(contexts), self.batch_size):
            out += self._batch(contexts[k : k + self.batch_size], budgets[k : k + self.batch_size])
        return out

    def _batch(self, contexts, budgets) -> list[list[int]]:
        tok = self.tokenizer
        width = max(len(c) for c in contexts)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(self.model.parameters()).device
        ids = torch.full((len(contexts), width), pad, dtype=torch.long)
        attn = torch.zeros((len(contexts), width), dtype=torch.long)
        for i, c in enumerate(contexts):
            ids[i, width - len(c) :] = torch.tensor(list(c), dtype=torch.long)
            attn[i, width - len(c) :] = 1
        config = plain_generation_config(self.model, tok, self.temperature, self.top_p, self.top_k)
        config.max_new_tokens = max(1, max(budgets))
        # generate() fills every field the config leaves unset from model.generation_config: swapped for the call
        was_training, own = self.model.training, self.model.generation_config
        self.model.eval()
        self.model.generation_config = config
        try:
            stop = _StopOnTags(tok, width, self.stops)
            gen = self.model.generate(input_ids=ids.to(device), attention_mask=attn.to(device),
                                      generation_config=config, stopping_criteria=[stop])
        finally:
            self.model.generation_config = own
            self.model.train(was_training)
        new = gen[:, width:].tolist()
        return [cut_at_stop(row, tok, self.stops)[: max(budget, 0)] for row, budget in zip(new, budgets)]


class VLLMPolicy:
    """Sample (or decode greedily with ``temperature=0``) one turn per context with a ``vllm.LLM``: token-id prompts,
    one request per context with its own ``max_tokens`` (the turn's budget, within the engine's ``max_model_len``)
    and the environment's stop strings (``stop_strings``, as :class:`HFPolicy`'s). vLLM keeps the token that completed a stop string and drops what follows; the ids
    are then cut exactly as :class:`HFPolicy`'s (:func:`cut_at_stop`). The engine is used as given: in training,
    TRL's colocated engine, whose weights TRL syncs before it calls the rollout (``codeact/rollout.py``)."""

    def __init__(self, llm: Any, tokenizer: Any, temperature: float = 1.0, top_p: float = 1.0,
                 top_k: int | None = None, stop_strings: Sequence[str] = STOP_STRINGS):
        from vllm import SamplingParams  # vLLM is optional: imported only when a vLLM policy is built

        self.llm, self.tokenizer, self._params, self.stops = llm, tokenizer, SamplingParams, tuple(stop_strings)
        greedy = temperature <= 0
        self.sampling = dict(temperature=max(float(temperature), 0.0), top_p=1.0 if greedy else float(top_p),
                             top_k=0 if greedy else int(top_k or 0), min_p=0.0, repetition_penalty=1.0)
        self.max_len = llm.llm_engine.model_config.max_model_len

    def __call__(self, contexts: Sequence[Sequence[int]], budgets: Sequence[int]) -> list[list[int]]:
        too_long = max(len(c) for c in contexts) if contexts else 0
        if too_long >= self.max_len:
            raise ValueError(f"a CodeAct episode's context ({too_long} tokens) reached vLLM's max_model_len "
                             f"({self.max_len}): cap episodes with dataset.env.max_episode_tokens or fewer max_turns")
        params = [self._params(n=1, max_tokens=max(1, min(b, self.max_len - len(c))), stop=list(self.stops),
                               skip_special_tokens=True, **self.sampling)
                  for c, b in zip(contexts, budgets, strict=True)]
        outs = self.llm.generate([{"prompt_token_ids": list(c)} for c in contexts], sampling_params=params,
                                 use_tqdm=False)  # fmt: skip
        return [cut_at_stop(list(o.outputs[0].token_ids), self.tokenizer, self.stops)[: max(b, 0)]
                for o, b in zip(outs, budgets)]
