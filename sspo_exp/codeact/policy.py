"""Sampling one CodeAct turn per context from an HF causal LM (the :data:`~sspo_exp.codeact.episode.Policy`).

Contexts are left-padded into one batch and sampled with ``generate``; a row stops after the first
``</execute>`` / ``</solution>`` (checked on the decoded new tokens, so it works for any tokenizer, char-level or
BPE, where a tag may be split across tokens) or at EOS. Each row's new ids are then cut right after the token that
completed the stop string (or after EOS); what follows (padding, or tokens sampled past a stop string inside the
same token) is dropped, so the kept ids are exactly a prefix of what was sampled.
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


class HFPolicy:
    """Sample (or decode greedily with ``temperature=0``) one turn per context; ``model`` is used as given."""

    def __init__(self, model: Any, tokenizer: Any, temperature: float = 1.0, top_p: float = 1.0,
                 top_k: int | None = None, batch_size: int = 64):
        self.model, self.tokenizer = model, tokenizer
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
        sample = self.temperature > 0
        kwargs = dict(do_sample=sample, max_new_tokens=max(1, max(budgets)), pad_token_id=pad,
                      eos_token_id=tok.eos_token_id, stopping_criteria=[_StopOnTags(tok, width, STOP_STRINGS)])
        if sample:
            kwargs.update(temperature=float(self.temperature), top_p=float(self.top_p), top_k=self.top_k or 0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        was_training = self.model.training
        self.model.eval()
        try:
            gen = self.model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), **kwargs)
        finally:
            self.model.train(was_training)
        new = gen[:, width:].tolist()
        return [cut_at_stop(row, tok)[: max(budget, 0)] for row, budget in zip(new, budgets)]
