"""Step time of our trainer (``SSPOTrainer`` + ``sspo_exp.objectives``) against TRL's built-in ``loss_type="grpo"``.

Same tiny model (``conf/model/tiny.yaml`` architecture, untrained: speed does not depend on the weights), same
TRL config (``conf/trainer/cpu.yaml`` batch shape), one process, one thread, measured in one run:

1. loss + backward: the same buffered rollout micro-batch through each trainer's ``_compute_loss`` and
   ``backward``, the trainers interleaved, median over repetitions (the part our glue replaces);
2. whole optimizer steps: ``trainer.train()`` for a few steps each (generation + rewards + update), per step,
   best of two interleaved rounds.

    python benchmarks/train_step.py [--reps 30] [--steps 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from omegaconf import OmegaConf
from trl import GRPOTrainer

from sspo_exp import CONF_DIR
from sspo_exp.models import tiny
from sspo_exp.objectives import make_objective
from sspo_exp.rewards import REWARD_FUNCS
from sspo_exp.train.config import batch_plan, grpo_config
from sspo_exp.train.trainer import SSPOTrainer


def build(kind: str, model_dir: Path, cfg, out: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t = cfg.trainer
    plan = batch_plan(t.prompts_per_step, t.num_generations, t.per_device_batch_size, 1, t.mu)
    args = grpo_config(cfg, plan, str(out / kind))
    args.save_strategy = "no"
    args.loss_type, args.epsilon, args.epsilon_high = "grpo", 0.2, 0.2  # TRL's GRPO = our grpo with eps 0.2
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    data = Dataset.from_list([{"prompt": f"{a}+{b}\n", "answer": str(a + b)} for a in range(40) for b in range(40)])
    common = dict(model=model, processing_class=tok, reward_funcs=list(REWARD_FUNCS), args=args, train_dataset=data)
    if kind == "trl-grpo":
        return GRPOTrainer(**common)
    name, gate = kind.split("-", 1) if "-" in kind else (kind, None)
    extra = {"gate": gate, "tau_pos": 0.2, "tau_neg": 0.3} if name == "sspo" else {"eps_low": 0.2, "eps_high": 0.2}
    return SSPOTrainer(**common, objective=make_objective(name, **extra))


def loss_backward_times(trainers: dict, reps: int) -> dict[str, float]:
    first = next(iter(trainers.values()))
    first.model.train()
    first._prepare_inputs(next(iter(first.get_train_dataloader())))
    inputs = first._buffered_inputs[1]  # second micro-batch: carries old log-probs (ratio != 1 after an update)
    times = {k: [] for k in trainers}
    for _ in range(reps):
        for kind, tr in trainers.items():
            tr.model.train()
            tr.current_gradient_accumulation_steps = tr.args.gradient_accumulation_steps
            tr.model.zero_grad()
            start = time.perf_counter()
            tr._compute_loss(tr.model, inputs).backward()
            times[kind].append(time.perf_counter() - start)
            tr._metrics["train"].clear()
    return {k: statistics.median(v) for k, v in times.items()}


def step_times(trainers: dict, steps: int, rounds: int = 2) -> dict[str, float]:
    """Seconds per optimizer step of ``trainer.train()``, best of ``rounds`` interleaved runs (noise on a shared CPU)."""
    from transformers.trainer_callback import ProgressCallback

    out = {k: float("inf") for k in trainers}
    for _ in range(rounds):
        for kind, tr in trainers.items():
            tr.remove_callback(ProgressCallback)
            tr.args.max_steps = steps
            torch.manual_seed(0)
            start = time.perf_counter()
            tr.train()
            out[kind] = min(out[kind], (time.perf_counter() - start) / steps)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--steps", type=int, default=6)
    ns = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    torch.set_num_threads(1)
    arch = OmegaConf.load(CONF_DIR / "model" / "tiny.yaml")
    cfg = OmegaConf.create({"trainer": OmegaConf.load(CONF_DIR / "trainer" / "cpu.yaml"), "seed": 0})
    cfg.trainer.save_steps = cfg.trainer.mu
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok = tiny.build_tokenizer()
        tiny.save(tiny.build_model(arch, tok, 0), tok, tmp / "model")
        kinds = ("trl-grpo", "grpo", "sspo-atanlog")
        trainers = {k: build(k, tmp / "model", cfg, tmp) for k in kinds}
        lb = loss_backward_times(trainers, ns.reps)
        st = step_times(trainers, ns.steps)
    shape = f"{cfg.trainer.prompts_per_step}x{cfg.trainer.num_generations} completions/step, " \
            f"<= {cfg.trainer.max_completion_length} tokens, micro-batch {cfg.trainer.per_device_batch_size}"
    print(f"tiny model ({sum(p.numel() for p in trainers['grpo'].model.parameters()) / 1e6:.2f}M params), {shape}, 1 thread")
    print(f"{'trainer':<14} {'loss+backward ms':>17} {'ratio':>6} {'whole step s':>13} {'ratio':>6}")
    for k in kinds:
        print(f"{k:<14} {1e3 * lb[k]:>17.1f} {lb[k] / lb['trl-grpo']:>6.3f} {st[k]:>13.3f} {st[k] / st['trl-grpo']:>6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
