"""``conf/train.yaml`` composes with every model preset, trainer and objective, and passes validation."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from sspo_exp import CONF_DIR
from sspo_exp.train.config import ConfigError, validate
from sspo_exp.train.run import run_id

PRESETS = {"qwen2.5-7b-instruct": "Qwen/Qwen2.5-7B-Instruct", "qwen3-8b": "Qwen/Qwen3-8B",
           "qwen3-14b": "Qwen/Qwen3-14B", "qwen3-30b-a3b": "Qwen/Qwen3-30B-A3B"}  # fmt: skip


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def test_default_is_the_embedded_cpu_job():
    cfg = _compose()
    assert (cfg.model.name, cfg.objective.name, cfg.gate.name, cfg.dataset.name) == ("tiny", "sspo", "atanlog", "arithmetic")
    assert cfg.trainer.use_cpu and cfg.trainer.rollout == "hf" and cfg.wandb.mode == "offline"
    validate(cfg, world_size=1)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_paper_models_on_the_gpu_trainer(preset):
    cfg = _compose(f"model={preset}", "trainer=gpu")
    assert cfg.model.path == PRESETS[preset] and cfg.model.name == preset
    plan = validate(cfg, world_size=8)
    assert (cfg.trainer.num_generations, cfg.trainer.max_completion_length, cfg.trainer.mu, cfg.trainer.beta) == (8, 512, 2, 0.0)
    assert cfg.trainer.rollout == "vllm_colocate" and plan.steps_per_generation == 2 * plan.gradient_accumulation_steps


@pytest.mark.parametrize("objective", ["grpo", "gspo", "gmpo", "sapo", "sspo"])
def test_every_objective_composes_and_validates(objective):
    validate(_compose(f"objective={objective}"), world_size=1)


@pytest.mark.parametrize("gate", ["expsig", "expatan", "gumbel", "atanlog", "siglog"])
def test_every_gate_composes_and_validates(gate):
    cfg = _compose(f"gate={gate}")
    validate(cfg, world_size=1)
    assert run_id(cfg).startswith(f"sspo-{gate}-s0-")


def test_local_model_dir_and_bad_values_fail_before_loading():
    cfg = _compose("model.path=/models/my-llm", "trainer.mu=0")
    with pytest.raises(ConfigError, match="trainer.mu=0"):
        validate(cfg, world_size=1)


def test_cli_rejects_a_bad_config_fast_and_prints_the_job_config(tmp_path):
    env_cmd = [sys.executable, "-m", "sspo_exp.cli", "train"]
    out = subprocess.run(env_cmd + ["--cfg", "job"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and "objective:" in out.stdout and "name: sspo" in out.stdout
    bad = subprocess.run(env_cmd + ["trainer.num_generations=1", f"output_root={tmp_path}"], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert bad.returncode != 0 and "trainer.num_generations=1" in bad.stderr + bad.stdout
    assert not any(tmp_path.glob("sspo-*"))  # rejected before a run directory (or a model) was created
