"""Supervised cold start of the tiny model on the generated arithmetic task, cached by a hash of its config.

Targets follow the paper's format ``<think>…</think> <answer>…</answer>`` followed by ``<eos>``. The think part
is a short column-by-column working (``47+38 -> <think>7+8=15 4+3+1=8</think> <answer>85</answer>``, see
:func:`working`): each step is a one-digit fact, which a 0.9M-parameter model learns in a few hundred steps
(measured, seed 0: 97.5% greedy accuracy on held-out two-digit ``a ± b`` after 600 steps with correct targets),
whereas the same model answering directly (think = the question restated) reached 8-13% after 600-800 steps.

**The targets are deliberately imperfect** (``cold_start.target_noise``, default 0.6): on that fraction of the
training problems, every carry and borrow is dropped, in the working and in the answer (``47+38 -> 7+8=15
4+3=7 -> 75``; problems without a carry are unaffected). The cold-started policy therefore carries with
probability ~0.4: sampling at temperature 1 often gives the right answer (groups have reward variance), but the
greedy answer to any problem with a carry or borrow is the slipped one (held-out greedy accuracy ~50%).
Why: with correct targets there is nothing left for RL to fix within a CPU budget (97%), and with fewer SFT
steps the remaining errors are capacity-limited, so RL at a CPU-sized budget gains little and not on every
seed (issue 3). A systematic, verifiable slip is what a reward can repair quickly and repeatably: one decision
(write ``+1`` after a column that overflowed) shared by half of all problems. That makes the default job a
small, honest test that an objective turns reward into better greedy answers; it is not a claim about what the
tiny model can learn from correct data (set ``target_noise: 0`` for that). Measured with ``model=tiny trainer=cpu``
(600 steps of 64, SSPO/atanlog, 60 RL steps), held-out greedy accuracy before -> after RL: seed 0 51.5 -> 95.0%,
seed 1 45.5 -> 67.5%, seed 2 45.0 -> 90.0%, seed 3 44.0 -> 85.5%; with rewards shuffled inside each batch
(seed 0, TRL's GRPO loss) it fell, 51.5 -> 46.5%. The default job's ``model=tiny-fast`` (600 steps of 28, two shards) and
``trainer=cpu-fast`` (20 RL steps), seeds 0-3: 48.0 -> 78.5, 47.0 -> 71.5, 48.0 -> 78.0, 44.0 -> 58.0% (docs/training.md).

``cold_start.shards`` (``tiny-fast``: 2; ``tiny``: 1) splits each batch into parts whose gradients are added, one
CPU process per part when that many cores are free (:mod:`sspo_exp.stages.data_parallel`: the weights are the same
bit for bit for any process count; one shard is the plain loop, and keeps the CPU studies' cold starts as they were).

The result is published under ``$SSPO_EXP_CACHE`` (default ``~/.cache/sspo-exp``)``/coldstart-tiny-s<seed>-<hash>/``
in HF format through :func:`sspo_exp.stages.cache.run_stage` (once per key even when many jobs ask at once; atomic;
a killed build leaves nothing half-written and is redone — it takes about a minute, so it keeps no checkpoints).
A second call with the same config loads it instead of training.

The targets are :mod:`sspo_exp.stages.targets`'; :func:`sspo_exp.stages.policy.cold_started_path` is the one entry
point for every model (this cold start, CodeAct's, the SFT of an HF model, or none).
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sspo_exp.models import encode, tiny
from sspo_exp.stages import data_parallel
from sspo_exp.stages.spec import ColdStartSpec
from sspo_exp.stages.targets import training_texts


def _encode(tokenizer, pairs: list[tuple[str, Any]]) -> list[tuple[list[int], list[bool]]]:
    """Token ids of each demonstration (prompt + completion) and which of them are trained on. A completion is a
    string (trained on, then ``<eos>``) or a list of ``(text, trained)`` segments (multi-turn targets: environment
    observations are context, not targets; no ``<eos>`` appended). Every text is encoded in one batched call, once
    before training (:func:`sspo_exp.models.encode`)."""
    segments = [[(c, True)] if isinstance(c, str) else list(c) for _, c in pairs]
    texts = [p for p, _ in pairs] + [text for segs in segments for text, _ in segs]
    ids = iter(encode(tokenizer, texts, add_special_tokens=False))
    prompts = [next(ids) for _ in pairs]
    encoded = []
    for prompt, (_, c), segs in zip(prompts, pairs, segments):
        tokens, keep = list(prompt), [False] * len(prompt)
        for _, learn in segs:
            seg = next(ids)
            tokens, keep = tokens + seg, keep + [learn] * len(seg)
        if isinstance(c, str):
            tokens, keep = tokens + [tokenizer.eos_token_id], keep + [True]
        encoded.append((tokens, keep))
    return encoded


def _batch(tokenizer, encoded: list[tuple[list[int], list[bool]]]) -> dict[str, torch.Tensor]:
    """Padded SFT batch (right padding; labels -100 on the prompt, observations and padding) of :func:`_encode`'s rows."""
    width = max(len(tokens) for tokens, _ in encoded)
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
    labels = torch.full((len(encoded), width), -100)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (tokens, keep) in enumerate(encoded):
        n = len(tokens)
        ids[i, :n] = torch.tensor(tokens)
        labels[i, :n] = torch.tensor([t if k else -100 for t, k in zip(tokens, keep)])
        attention[i, :n] = 1
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


#: Without a terminal, the longest silence between two progress lines of the tiny cold start (seconds).
LOG_SECONDS = 30.0


def train(model, tokenizer, pairs: list[tuple[str, Any]], cfg: Mapping[str, Any], seed: int, log_every: int = 100,
          callback=None, processes: int | None = None) -> None:
    """Plain next-token SFT on completions (prompt tokens masked), AdamW, linear warmup then cosine decay.

    ``cfg["shards"]`` (default 1): each batch is split into that many equal parts whose gradients are added
    (the loss of each is its tokens' summed cross-entropy over the batch's token count, so the sum is the batch's
    mean), computed by ``processes`` processes that share this process's torch threads (one each on 2 cores;
    :mod:`sspo_exp.stages.data_parallel`; None: one per shard when torch may use that many threads here, else this
    process alone). The weights are the same bit for
    bit for any process count. One shard is the plain loop: ``model(**batch).loss``, the batch's mean."""
    shards = int(cfg.get("shards", 1))
    if shards < 1 or int(cfg["batch_size"]) % shards:
        raise ValueError(f"shards={shards}: must be >= 1 and divide batch_size={cfg['batch_size']}")
    if processes is None:
        processes = shards if 1 < shards <= torch.get_num_threads() and data_parallel.available() else 1
    if processes not in (1, shards):
        raise ValueError(f"processes={processes}: the tiny cold start runs on 1 process or one per shard ({shards})")
    encoded = _encode(tokenizer, pairs)
    model_was_training = model.training
    model.train()
    data_parallel.run_ranks(processes, lambda ranks: _loop(model, tokenizer, encoded, cfg, seed, shards, ranks,
                                                           log_every, callback))  # fmt: skip
    model.train(model_was_training)


def _loop(model, tokenizer, encoded, cfg: Mapping[str, Any], seed: int, shards: int, ranks: data_parallel.Ranks,
          log_every: int, callback) -> None:
    """The steps of :func:`train` in one of its processes (every process draws the same batches; rank 0 reports)."""
    steps, bs = int(cfg["steps"]), int(cfg["batch_size"])
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg["learning_rate"]), weight_decay=float(cfg["weight_decay"]))
    warm = max(1, int(cfg["warmup_steps"]))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps))))
    )
    params = list(model.parameters())
    rng, t0, report = random.Random(seed), time.time(), ranks.rank == 0 and bool(log_every)
    # a progress bar on a terminal (as transformers' Trainer shows); in a log file a line every log_every steps
    # and at least every LOG_SECONDS, so a slow machine is never silent for minutes
    bar = tqdm(total=steps, desc="cold start", unit="step", disable=not (report and sys.stderr.isatty()))
    last = t0
    for step in range(steps):
        rows = rng.sample(encoded, bs)
        if shards == 1:
            # use_cache=False: no KV cache is built for a training forward (the same weights, bit for bit; less work)
            loss = model(**_batch(tokenizer, rows), use_cache=False).loss
            loss.backward()
        else:
            loss = _sharded_backward(model, tokenizer, rows, shards, ranks, params)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        bar.update(1)
        if not bar.disable:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        elif report and ((step + 1) % log_every == 0 or time.time() - last >= LOG_SECONDS):
            last = time.time()
            print(f"cold start: step {step + 1}/{steps} loss {loss.item():.3f} ({last - t0:.0f}s)", flush=True)
        if callback is not None and ranks.rank == 0:
            callback(step + 1)
    bar.close()


def _sharded_backward(model, tokenizer, rows, shards: int, ranks: data_parallel.Ranks, params) -> torch.Tensor:
    """Gradients of the batch ``rows`` as the sum of its ``shards`` parts' (in shard order), left in ``params``'
    ``.grad`` on every rank; returns the batch's loss (its mean token cross-entropy)."""
    size = len(rows) // shards
    tokens = sum(sum(keep[1:]) for _, keep in rows)  # the batch's trained tokens (labels shift by one)
    loss = torch.zeros(())
    for s in range(ranks.rank, shards, ranks.world):  # all of them in one process; one each in `shards` processes
        part = model(**_batch(tokenizer, rows[s * size:(s + 1) * size]), use_cache=False,
                     num_items_in_batch=tokens).loss  # fmt: skip
        part.backward()
        loss = loss + part.detach()
    if ranks.world > 1:
        # the parameters with a gradient are the same in every process (one model, one graph); one without keeps None,
        # as with one process, so AdamW skips it alike
        trained = [p for p in params if p.grad is not None]
        total = data_parallel.sum_in_order(torch.cat([p.grad.reshape(-1) for p in trained] + [loss.reshape(1)]), ranks)
        offset = 0
        for p in trained:
            p.grad = total[offset:offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        loss = total[-1]
    return loss

def build(work: Path, spec: ColdStartSpec, arch: Mapping[str, Any], cold_start: Mapping[str, Any],
                dataset: Mapping[str, Any]) -> dict[str, Any]:
    """Build and cold-start the tiny model into ``work / "out"`` (a minute on one CPU: no checkpoints)."""
    tokenizer = tiny.build_tokenizer()
    model = tiny.build_model(arch, tokenizer, spec.seed)
    print(f"cold start: training the tiny model ({int(cold_start['steps'])} SFT steps) -> {spec.stage_id}", flush=True)
    train(model, tokenizer, training_texts(dataset, float(cold_start["target_noise"]), spec.seed), cold_start, spec.seed)
    tiny.save(model, tokenizer, work / "out")
    return {"steps": int(cold_start["steps"])}
