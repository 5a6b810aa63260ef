"""Shared pieces of the training tests: a tiny untrained model on disk and a small config built in code."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

ARCH = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip


def tiny_model_dir(root: Path, seed: int = 0) -> Path:
    """An untrained tiny Llama + char tokenizer saved in HF format (loaded through ``model.path``)."""
    from sspo_exp.models import tiny

    path = Path(root) / f"tiny-untrained-{seed}"
    if not (path / "config.json").exists():
        tok = tiny.build_tokenizer()
        tiny.save(tiny.build_model(ARCH, tok, seed), tok, path)
    return path


def small_cfg(output_root: Path, model_dir: Path, **trainer):
    """A composed-looking config: a few fast steps on the arithmetic task, W&B offline."""
    t = dict(
        rollout="hf", num_generations=4, mu=2, prompts_per_step=2, per_device_batch_size=4,
        max_prompt_length=32, max_completion_length=8, max_steps=4, learning_rate=1e-3,
        lr_scheduler_type="constant", warmup_ratio=0.0, temperature=1.0, top_p=1.0, beta=0.0, max_grad_norm=1.0,
        weight_decay=0.0, save_steps=2, eval_steps=0, eval_samples=8, use_cpu=True, bf16=False,
        gradient_checkpointing=False, vllm=dict(mode="colocate", gpu_memory_utilization=0.3, server_host=None, server_port=8000),
    )  # fmt: skip
    t.update(trainer)
    return OmegaConf.create(
        dict(
            model=dict(name="tiny-untrained", path=str(model_dir), dtype="float32", attn_implementation=None, chat_template="auto"),
            objective=dict(name="sspo", loss_agg="seq-mean-token-mean"),
            gate=dict(name="atanlog", tau_pos=0.2, tau_neg=0.3),
            dataset=dict(name="arithmetic", digits=1, operations=["+"], steps=1, train_size=64, test_size=8, seed=0),
            trainer=t,
            seed=0,
            output_root=str(output_root),
            wandb=dict(mode="offline", project="sspo-exp-test", entity=None, tags=[]),
        )
    )


def digit_reward(prompts, completions, **kwargs) -> list[float]:
    """A dense stand-in reward (fraction of digits) so an untrained model gets reward variance and gradients."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


CHILD = """
import os, sys, time, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
import train_helpers as h
import sspo_exp.rewards, sspo_exp.train.callbacks as cb
sspo_exp.rewards.REWARD_FUNCS = (h.digit_reward, sspo_exp.rewards.format_reward)
if {stop_after!r}:
    on_log = cb.ProgressLine.on_log
    def stop_on_log(self, args, state, *a, **k):
        out = on_log(self, args, state, *a, **k)
        if state.global_step >= {stop_after!r}:
            open({stop_after_marker!r}, "w").close()
            while True:  # wait here to be killed
                time.sleep(1)
        return out
    cb.ProgressLine.on_log = stop_on_log
from omegaconf import OmegaConf
from sspo_exp.train.run import train
train(OmegaConf.create({cfg!r}))
"""


def child_script(cfg, stop_after: int = 0, marker: str | Path = "") -> str:
    """Python source that trains ``cfg`` with the dense stand-in reward. With ``stop_after=N`` it logs step N, then
    creates the file ``marker`` and waits there to be killed (a kill at a known step, on a machine of any speed)."""
    from omegaconf import OmegaConf

    return CHILD.format(tests=str(Path(__file__).parent), stop_after=stop_after, stop_after_marker=str(marker),
                        cfg=OmegaConf.to_container(cfg))  # fmt: skip


def train_learning_run(tmp_path, monkeypatch, overrides: list[str], shuffle: bool) -> dict:
    """``sspo-exp train`` with ``overrides`` on one torch thread; ``shuffle``: the control that cannot learn (each
    rollout's advantages permuted, cutting the link between a completion's reward and its own tokens)."""
    import torch
    from hydra import compose, initialize_config_dir

    from sspo_exp import CONF_DIR
    from sspo_exp.train.run import train
    from sspo_exp.train.trainer import SSPOTrainer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_SILENT", "true")
    torch.set_num_threads(1)
    if shuffle:
        generate = SSPOTrainer._generate_and_score_completions

        def shuffled(self, inputs):
            out = generate(self, inputs)
            out["advantages"] = out["advantages"][torch.randperm(len(out["advantages"]))]
            return out

        monkeypatch.setattr(SSPOTrainer, "_generate_and_score_completions", shuffled)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, f"output_root={tmp_path}"])
    return train(cfg)
