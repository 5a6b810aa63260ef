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
tiny model can learn from correct data (set ``target_noise: 0`` for that). Measured with the defaults
(``sspo-exp train``, SSPO/atanlog, 60 steps), held-out greedy accuracy before -> after RL: seed 0 51.5 -> 95.0%,
seed 1 45.5 -> 67.5%, seed 2 45.0 -> 90.0%, seed 3 44.0 -> 85.5%; with rewards shuffled inside each batch
(seed 0, TRL's GRPO loss) it fell, 51.5 -> 46.5%.

The result is published under ``$SSPO_EXP_CACHE`` (default ``~/.cache/sspo-exp``)``/coldstart-tiny-s<seed>-<hash>/``
in HF format through :func:`sspo_exp.models.stage.run_stage` (once per key even when many jobs ask at once; atomic;
a killed build leaves nothing half-written and is redone — it takes about a minute, so it keeps no checkpoints).
A second call with the same config loads it instead of training.

:func:`cold_started_path` is the one entry point for every model: this tiny cold start, the SFT cold start of an
HF model (``sspo_exp.models.sft``), or no cold start.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sspo_exp.data.arithmetic import ArithmeticConfig, build_prompt, generate
from sspo_exp.models import tiny
from sspo_exp.models.cold_start_spec import ColdStartSpec, cold_start_spec
from sspo_exp.models.stage import cache_root, run_stage

__all__ = ["cache_root", "cold_started_path", "completion", "training_texts", "working"]


def working(a: int, op: str, b: int, carry: bool = True) -> tuple[str, int]:
    """Column-by-column working of ``a op b`` (``op`` in ``+ -``, ``a, b >= 0``) and the answer it leads to.

    Units column first; each column shows its digits, the carry/borrow taken from the previous column, and the
    raw result: ``47+38 -> "7+8=15 4+3+1=8"`` (answer 85), ``42-17 -> "2-7=-5 4-1-1=2"`` (answer 25).
    When ``a < b`` it is the working of ``-(b - a)``: ``17-42 -> "-(42-17) 2-7=-5 4-1-1=2"``
    (answer -25). With ``carry=False`` every carry and borrow is dropped — the deliberate slip of the noisy
    targets (``47+38 -> "7+8=15 4+3=7"``, answer 75).
    """
    if op == "-" and a < b:
        text, value = working(b, "-", a, carry)
        return f"-({b}-{a}) {text}", -value
    columns, digits, c, place, value = [], max(len(str(a)), len(str(b))), 0, 1, 0
    for _ in range(digits):
        da, db = a % 10, b % 10
        raw = da + db + c if op == "+" else da - db - c
        columns.append(f"{da}{op}{db}" + (f"{op}1" if c else "") + f"={raw}")
        value += (raw % 10) * place
        c = int(carry and (raw >= 10 if op == "+" else raw < 0))
        a, b, place = a // 10, b // 10, place * 10
    return " ".join(columns), value + (c * place if op == "+" else 0)


def completion(question: str, answer: str, drop_carry: bool = False) -> str:
    """The cold-start target for one problem, in the paper's format ``<think>…</think> <answer>…</answer>``.

    Single-step ``a+b`` / ``a-b`` problems get the column working of :func:`working` as their think part
    (``drop_carry`` makes it, and the answer, the slipped version). Any other problem (``*``, several steps,
    word problems) restates the question as its think part and gives ``answer`` unchanged.
    """
    expression = _operands(question)
    if expression is None or expression[1][0] == "*":
        return f"<think>{question}</think> <answer>{answer}</answer>"
    (a, b), (op,) = expression
    text, value = working(a, op, b, carry=not drop_carry)
    return f"<think>{text}</think> <answer>{value}</answer>"


def _operands(question: str) -> tuple[list[int], list[str]] | None:
    """``(operands, ops)`` of a bare single-step expression like ``47+38`` / ``5-12`` (None for anything else)."""
    for op in "+-*":
        left, sep, right = question.partition(op)
        if sep and left.isdigit() and right.isdigit():
            return [int(left), int(right)], [op]
    return None


def training_texts(dataset: Mapping[str, Any], target_noise: float, seed: int) -> list[tuple[str, str]]:
    """``(prompt, completion)`` pairs of the train split; ``target_noise`` of them carry the dropped-carry slip."""
    rows = generate(ArithmeticConfig.from_config(dataset), "train", int(dataset.get("seed", 0)))
    rng = random.Random(seed)
    style = dataset.get("prompt_style", "compact")
    return [
        (build_prompt(r["question"], None, style), completion(r["question"], r["answer"], rng.random() < target_noise))
        for r in rows
    ]


def _batch(tokenizer, pairs: list[tuple[str, Any]]) -> dict[str, torch.Tensor]:
    """Padded SFT batch. A completion is a string (trained on, then ``<eos>``) or a list of ``(text, trained)``
    segments (multi-turn targets: environment observations are context, not targets; no ``<eos>`` appended)."""
    prompts = [tokenizer(p, add_special_tokens=False).input_ids for p, _ in pairs]
    completions, trained = [], []
    for _, c in pairs:
        segments = [(c, True)] if isinstance(c, str) else list(c)
        ids, keep = [], []
        for text, learn in segments:
            seg = tokenizer(text, add_special_tokens=False).input_ids
            ids, keep = ids + seg, keep + [learn] * len(seg)
        if isinstance(c, str):
            ids, keep = ids + [tokenizer.eos_token_id], keep + [True]
        completions.append(ids)
        trained.append(keep)
    width = max(len(p) + len(c) for p, c in zip(prompts, completions))
    ids = torch.full((len(pairs), width), tokenizer.pad_token_id)
    labels = torch.full((len(pairs), width), -100)
    attention = torch.zeros((len(pairs), width), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        n = len(p) + len(c)
        ids[i, :n] = torch.tensor(p + c)
        labels[i, len(p) : n] = torch.tensor([t if k else -100 for t, k in zip(c, trained[i])])
        attention[i, :n] = 1
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


#: Without a terminal, the longest silence between two progress lines of the tiny cold start (seconds).
LOG_SECONDS = 30.0


def train(model, tokenizer, pairs: list[tuple[str, Any]], cfg: Mapping[str, Any], seed: int, log_every: int = 100, callback=None) -> None:
    """Plain next-token SFT on completions (prompt tokens masked), AdamW, linear warmup then cosine decay."""
    steps, bs = int(cfg["steps"]), int(cfg["batch_size"])
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg["learning_rate"]), weight_decay=float(cfg["weight_decay"]))
    warm = max(1, int(cfg["warmup_steps"]))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps))))
    )
    rng, model_was_training, t0 = random.Random(seed), model.training, time.time()
    # a progress bar on a terminal (as transformers' Trainer shows); in a log file a line every log_every steps
    # and at least every LOG_SECONDS, so a slow machine is never silent for minutes
    bar = tqdm(total=steps, desc="cold start", unit="step", disable=not (log_every and sys.stderr.isatty()))
    last = t0
    model.train()
    for step in range(steps):
        loss = model(**_batch(tokenizer, rng.sample(pairs, bs))).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        bar.update(1)
        if not bar.disable:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        elif log_every and ((step + 1) % log_every == 0 or time.time() - last >= LOG_SECONDS):
            last = time.time()
            print(f"cold start: step {step + 1}/{steps} loss {loss.item():.3f} ({last - t0:.0f}s)", flush=True)
        if callback is not None:
            callback(step + 1)
    bar.close()
    model.train(model_was_training)


def cold_started_path(model_cfg: Mapping[str, Any], cold_start_cfg: Mapping[str, Any] | None,
                      dataset_cfg: Mapping[str, Any], seed: int, cache: str | os.PathLike | None = None,
                      distributed: bool = False) -> str:
    """What the RL run loads as its initial policy (``from_pretrained`` path), computing the cold start if needed.

    Which cold start (if any) is :func:`sspo_exp.models.cold_start_spec.cold_start_spec`'s answer: the tiny model's
    (``model.path`` null), the SFT of ``model.path`` on ``dataset_cfg``'s training split (``model.cold_start.enabled:
    true``, ``sspo_exp.models.sft``, seeded by ``model.cold_start.seed`` or, when null, by ``seed``), or none
    (``model.path`` itself). Computed results are cached in ``cache`` (default ``$SSPO_EXP_CACHE`` or
    ``~/.cache/sspo-exp``) under the spec's ``stage_id``, once per key (``sspo_exp.models.stage``).

    In a multi-process launch (``WORLD_SIZE > 1``) the SFT stage is built by all processes together only with
    ``distributed=True`` (``sspo-exp cold-start`` under ``accelerate launch``); otherwise it must be cached already
    (``sspo_exp.models.stage.StageMissing``). The tiny stage is built by one process while the others wait.
    """
    spec = cold_start_spec(model_cfg, cold_start_cfg, dataset_cfg, seed)
    if spec is None:
        return str(model_cfg["path"])
    root = cache if cache is not None else cache_root()
    if spec.kind == "tiny-codeact":
        from sspo_exp.codeact import cold_start as codeact

        return str(run_stage(root, spec.stage_id, lambda work: codeact.build(work, spec.stage_id, model_cfg, spec.key),
                             spec.key))
    if spec.kind == "tiny":
        return str(run_stage(root, spec.stage_id, lambda work: _build_tiny(work, spec, model_cfg, cold_start_cfg,
                                                                            dataset_cfg), spec.key))
    from sspo_exp.models import sft

    return str(run_stage(root, spec.stage_id,
                         lambda work: sft.build(work, model_cfg, cold_start_cfg, dataset_cfg, spec.seed), spec.key,
                         launch="together" if distributed else "cached"))


def _build_tiny(work: Path, spec: ColdStartSpec, arch: Mapping[str, Any], cold_start: Mapping[str, Any],
                dataset: Mapping[str, Any]) -> dict[str, Any]:
    """Build and cold-start the tiny model into ``work / "out"`` (a minute on one CPU: no checkpoints)."""
    tokenizer = tiny.build_tokenizer()
    model = tiny.build_model(arch, tokenizer, spec.seed)
    print(f"cold start: training the tiny model ({int(cold_start['steps'])} SFT steps) -> {spec.stage_id}", flush=True)
    train(model, tokenizer, training_texts(dataset, float(cold_start["target_noise"]), spec.seed), cold_start, spec.seed)
    tiny.save(model, tokenizer, work / "out")
    return {"steps": int(cold_start["steps"])}
