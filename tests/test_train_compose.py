"""``conf/train.yaml`` composes with every model preset, trainer and objective, and passes validation."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from sspo_exp import CONF_DIR
from sspo_exp.train.config import ConfigError, validate
from sspo_exp.train.run import run_id
from waiting import CEILING

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
    cfg = _compose("model=local", "model.path=/models/my-llm", "model.name=my-llm", "trainer.mu=0")
    with pytest.raises(ConfigError, match="trainer.mu=0"):
        validate(cfg, world_size=1)


def test_local_model_is_named_by_the_user():
    from sspo_exp.train.run import group_name, tags

    cfg = _compose("model=local", "model.path=/models/my-llm", "model.name=my-llm")
    validate(cfg, world_size=1)
    assert run_id(cfg).startswith("sspo-atanlog-s0-") and group_name(cfg).startswith("my-llm·arithmetic·sspo-atanlog·")
    assert "model:my-llm" in tags(cfg)
    assert set(cfg.model) == {"name", "path", "dtype", "attn_implementation", "chat_template",
                              "chat_template_kwargs", "resources"}  # no tiny architecture; its job shape (docs/cluster.md)
    for missing, given in (("name", "model.path=/models/my-llm"), ("path", "model.name=my-llm")):
        with pytest.raises(ConfigError, match=f"model.{missing} is required with model=local"):
            validate(_compose("model=local", given), world_size=1)


def test_a_loaded_model_may_not_be_called_tiny():
    with pytest.raises(ConfigError, match=r"model.path='/models/my-llm' with model.name='tiny'.*model=local"):
        validate(_compose("model.path=/models/my-llm"), world_size=1)


@pytest.mark.parametrize("preset", [*sorted(PRESETS), "local"])
def test_models_train_fp32_master_weights(preset, monkeypatch):
    """A bf16 checkpoint is trained in float32 (trainer.bf16 = bf16 autocast compute); pure bf16 weights only under
    DeepSpeed, whose optimizer keeps its own fp32 master copy."""
    from sspo_exp.train.config import train_dtype

    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    named = ("model.path=/m", "model.name=m") if preset == "local" else ()
    cfg = _compose(f"model={preset}", "trainer=gpu", *named)
    assert cfg.trainer.bf16 and train_dtype(cfg) == "float32"
    bf16 = _compose(f"model={preset}", "trainer=gpu", "model.dtype=bfloat16", *named)
    with pytest.raises(ConfigError, match="model.dtype='bfloat16'.*float32"):
        validate(bf16, world_size=8)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert train_dtype(bf16) == "bfloat16"
    for bad in ("auto", "float16"):
        with pytest.raises(ConfigError, match=f"model.dtype='{bad}': choose one of float32, bfloat16"):
            train_dtype(_compose(f"model={preset}", f"model.dtype={bad}", *named))


def test_hydra_job_is_named_train():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True)
    assert cfg.hydra.job.name == "train"


def test_cli_rejects_a_bad_config_fast_and_prints_the_job_config(tmp_path):
    env_cmd = [sys.executable, "-m", "sspo_exp.cli", "train"]
    out = subprocess.run(env_cmd + ["--cfg", "job"], capture_output=True, text=True, timeout=CEILING, cwd=tmp_path)
    assert out.returncode == 0 and "objective:" in out.stdout and "name: sspo" in out.stdout
    bad = subprocess.run(env_cmd + ["trainer.num_generations=1", f"output_root={tmp_path}"], capture_output=True,
                         text=True, timeout=CEILING, cwd=tmp_path)  # fmt: skip
    assert bad.returncode != 0 and "trainer.num_generations=1" in bad.stderr + bad.stdout
    assert not any(tmp_path.glob("sspo-*"))  # rejected before a run directory (or a model) was created
