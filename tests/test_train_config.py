"""Config checks, TRL batch arithmetic, run identity and launch commands (fast: no model is loaded)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from sspo_exp.train.config import BatchPlan, ConfigError, batch_plan, grpo_config, validate
from sspo_exp.train.launch import accelerate_command, render
from sspo_exp.identity import job_type
from sspo_exp.train.run import group_name, run_id
from train_helpers import small_cfg


@pytest.fixture
def cfg(tmp_path):
    return small_cfg(tmp_path / "runs", tmp_path / "model")


# ------------------------------------------------------------------------------------------ batch arithmetic
@pytest.mark.parametrize(
    "P, G, b, W, mu, expected",
    [
        (4, 8, 32, 1, 2, BatchPlan(32, 1, 2, 64)),  # the CPU default shape: one micro-batch per step
        (4, 8, 8, 1, 2, BatchPlan(8, 4, 8, 64)),  # 4 micro-batches per step, 2 steps per rollout
        (32, 8, 4, 8, 2, BatchPlan(4, 8, 16, 512)),  # paper-like: 256 completions/step on 8 GPUs
        (32, 8, 4, 8, 4, BatchPlan(4, 8, 32, 1024)),  # Table 2 staleness mu=4
        (3, 2, 3, 2, 1, BatchPlan(3, 1, 1, 6)),  # mu=1 is on-policy: one micro-batch, one step per rollout
    ],
)
def test_batch_plan(P, G, b, W, mu, expected):
    plan = batch_plan(P, G, b, W, mu)
    assert plan == expected
    # the identities of the module docstring
    assert plan.per_device_train_batch_size * W * plan.gradient_accumulation_steps == P * G
    assert plan.steps_per_generation == mu * plan.gradient_accumulation_steps
    assert plan.generation_batch_size == mu * P * G


def test_trl_derives_the_same_generation_batch(cfg, tmp_path):
    """TRL computes generation_batch_size itself from our fields; it must equal mu * P * G."""
    cfg.trainer.update(prompts_per_step=4, num_generations=4, per_device_batch_size=2, mu=3, save_steps=3)
    plan = validate(cfg, world_size=1)
    args = grpo_config(cfg, plan, str(tmp_path))
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (2, 8)
    assert args.steps_per_generation == 24 and args.generation_batch_size == 3 * 4 * 4
    assert args.num_iterations == 1 and args.num_generations == 4 and args.beta == 0.0
    assert args.logging_steps == 1 and args.save_steps == 3 and args.use_vllm is False


@pytest.mark.parametrize(
    "args, field, allowed",
    [
        ((4, 8, 3, 1, 2), "trainer.per_device_batch_size=3", "[1, 2, 4, 8, 16, 32]"),
        ((4, 8, 4, 3, 2), "trainer.per_device_batch_size=4", "world_size=3"),
        ((4, 8, 8, 1, 0), "trainer.mu=0", ">= 1"),
        ((4, 1, 4, 1, 2), "trainer.num_generations=1", ">= 2"),
        ((0, 8, 8, 1, 2), "trainer.prompts_per_step=0", ">= 1"),
        ((4, 8, 8, 1, 1.5), "trainer.mu=1.5", "integer"),
    ],
)
def test_batch_plan_errors_name_field_and_allowed_values(args, field, allowed):
    with pytest.raises(ConfigError) as err:
        batch_plan(*args)
    assert field in str(err.value) and allowed in str(err.value)


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "path, value, words",
    [
        ("objective.name", "ppo", ["objective", "'ppo'", "grpo", "sspo"]),
        ("gate.name", "tanh", ["gate", "'tanh'", "atanlog", "siglog"]),
        ("trainer.rollout", "sglang", ["trainer.rollout", "hf", "vllm_colocate", "vllm_server"]),
        ("trainer.mu", 0, ["trainer.mu=0", ">= 1"]),
        ("trainer.num_generations", 1, ["trainer.num_generations=1", ">= 2"]),
        ("trainer.per_device_batch_size", 3, ["trainer.per_device_batch_size=3", "allowed"]),
        ("trainer.beta", 0.04, ["trainer.beta=0.04", "beta=0"]),
        ("trainer.save_steps", 3, ["trainer.save_steps=3", "multiple of trainer.mu=2"]),
        ("trainer.temperature", 0.0, ["trainer.temperature", "> 0"]),
        ("trainer.top_p", 1.5, ["trainer.top_p", "[0.0, 1.0]"]),
        ("trainer.max_steps", 0, ["trainer.max_steps", ">= 1"]),
        ("objective.loss_agg", "sum", ["objective.loss_agg", "seq-mean-token-mean", "token-mean"]),
        ("trainer.warmup_ratio", 1.0, ["trainer.warmup_ratio"]),  # transformers would read 1.0 as one step
        ("trainer.lr_scheduler_type", "cosine_warm", ["trainer.lr_scheduler_type", "constant", "cosine"]),
    ],
)
def test_validate_rejects_with_field_and_allowed_values(cfg, path, value, words):
    OmegaConf.update(cfg, path, value)
    with pytest.raises(ConfigError) as err:
        validate(cfg, world_size=1)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_temperature_on_a_gate_without_one(cfg):
    cfg.gate = {"name": "gumbel", "tau_pos": 0.2, "tau_neg": 0.3}
    with pytest.raises(ConfigError, match="gumbel.*no temperature"):
        validate(cfg, world_size=1)
    cfg.gate = {"name": "gumbel", "tau_pos": None, "tau_neg": None}
    validate(cfg, world_size=1)


def test_vllm_with_use_cpu_is_refused(cfg):
    cfg.trainer.rollout = "vllm_colocate"
    with pytest.raises(ConfigError, match="trainer.use_cpu=true.*trainer.use_cpu=false.*trainer.rollout=hf"):
        validate(cfg, world_size=1)


def test_vllm_modes_map_to_trl(cfg, tmp_path):
    cfg.trainer.update(use_cpu=False)
    for rollout, mode in (("vllm_colocate", "colocate"), ("vllm_server", "server")):
        cfg.trainer.rollout = rollout
        plan = validate(cfg, world_size=1)
        args = grpo_config(cfg, plan, str(tmp_path))
        assert args.use_vllm and args.vllm_mode == mode and args.vllm_importance_sampling_correction is False


def test_valid_default_passes(cfg):
    assert validate(cfg, world_size=1) == BatchPlan(4, 2, 4, 16)


# ------------------------------------------------------------------------------------------ run identity
def test_run_id_is_deterministic_and_ignores_logging_keys(cfg):
    rid = run_id(cfg)
    assert rid == run_id(cfg.copy()) and rid.startswith("sspo-atanlog-s0-")
    for path, value in (("wandb.mode", "online"), ("wandb.project", "x"), ("wandb.tags", ["a"]),
                        ("output_root", "/elsewhere"), ("launcher", {"name": "submitit_slurm"}),
                        ("trainer.eval_samples", 7), ("trainer.eval_steps", 3), ("trainer.vllm.server_port", 9),
                        ("final_eval.benchmarks", [])):  # fmt: skip
        other = cfg.copy()
        OmegaConf.update(other, path, value, force_add=True)
        assert run_id(other) == rid, path


@pytest.mark.parametrize("path, value", [("seed", 1), ("trainer.learning_rate", 1e-4), ("trainer.mu", 4),
                                         ("gate.tau_neg", 0.6), ("model.path", "/other")])  # fmt: skip
def test_run_id_changes_with_meaningful_keys(cfg, path, value):
    other = cfg.copy()
    OmegaConf.update(other, path, value)
    assert run_id(other) != run_id(cfg)


def test_gate_is_not_part_of_a_non_sspo_run(cfg):
    cfg.objective = {"name": "grpo", "eps_low": 0.2, "eps_high": 0.2, "loss_agg": "seq-mean-token-mean"}
    other = cfg.copy()
    other.gate.name = "gumbel"
    assert run_id(other) == run_id(cfg) and job_type(cfg) == "grpo"


def test_group_is_the_setting_without_seed(cfg):
    other = cfg.copy()
    other.seed = 7
    assert group_name(other) == group_name(cfg) and run_id(other) != run_id(cfg)
    other.trainer.mu = 4
    assert group_name(other) != group_name(cfg)


# ------------------------------------------------------------------------------------------ launch commands
def test_accelerate_command_two_nodes_zero3():
    line = render(accelerate_command("deepspeed_zero3", gpus_per_node=8, num_nodes=2, node_rank=1,
                                     main_process_ip="node001", overrides=["model=qwen3-8b", "trainer=gpu"]))  # fmt: skip
    assert line.startswith("accelerate launch --config_file ")
    assert "conf/accelerate/deepspeed_zero3.yaml --num_machines 2 --num_processes 16 --machine_rank 1" in line
    assert line.endswith("--main_process_ip node001 --main_process_port 29500 -m sspo_exp.cli train model=qwen3-8b trainer=gpu")


def test_accelerate_command_cpu_and_errors():
    cmd = accelerate_command("cpu_ddp", gpus_per_node=2)
    # --multi_gpu: accelerate's torchrun launcher (its MULTI_CPU/--cpu path starts ONE process without mpirun)
    assert cmd[:3] == ["accelerate", "launch", "--multi_gpu"] and cmd[cmd.index("--num_processes") + 1] == "2"
    assert cmd[-1] == "trainer.use_cpu=true"
    with pytest.raises(ValueError, match="deepspeed_zero3, fsdp, cpu_ddp"):
        accelerate_command("zero2")
    with pytest.raises(ValueError, match="node_rank=2"):
        accelerate_command(num_nodes=2, node_rank=2)


def test_accelerate_configs_parse():
    from sspo_exp import CONF_DIR

    types = {p.stem: OmegaConf.load(p).distributed_type for p in (CONF_DIR / "accelerate").glob("*.yaml")}
    assert types == {"deepspeed_zero3": "DEEPSPEED", "fsdp": "FSDP", "cpu_ddp": "MULTI_CPU"}
    # the sharded configs save loadable HF models (transformers' save_model writes weights only for these): every
    # checkpoint and the SFT cold start's output can be evaluated and loaded by RL
    assert OmegaConf.load(CONF_DIR / "accelerate" / "fsdp.yaml").fsdp_config.fsdp_state_dict_type == "FULL_STATE_DICT"
    assert OmegaConf.load(CONF_DIR / "accelerate" / "deepspeed_zero3.yaml").deepspeed_config.zero3_save_16bit_model


def test_summary_rewards_average_the_first_and_last_five_rollouts():
    from sspo_exp.train.run import reward_windows

    history = [{"loss": 0.1}] + [{"reward": float(r), "step": r} for r in range(1, 13)] + [{"entropy": 0.2}]
    assert reward_windows(history) == (3.0, 10.0)  # mean(1..5), mean(8..12)
    assert reward_windows([{"reward": 1.0}, {"reward": 2.0}]) == (1.5, 1.5)
    assert reward_windows([{"loss": 1.0}]) == (None, None)


def test_in_training_eval_is_accepted_under_sharded_engines(cfg, monkeypatch):
    """ZeRO-3 / FSDP runs evaluate inside training (sspo_exp/train/sharded.py; tests/test_sharded_eval.py)."""
    OmegaConf.update(cfg, "trainer.eval_samples", 4)
    for engine in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        monkeypatch.setenv(engine, "true")
        validate(cfg, world_size=1)
        monkeypatch.delenv(engine)


def test_sharding_on_the_cpu_is_refused(monkeypatch):
    """accelerate 1.15 would silently train unsharded (docs/engines.md): DeepSpeed/FSDP on a CPU device is refused."""
    import torch

    from sspo_exp.errors import ConfigError
    from sspo_exp.train.sharded import refuse_sharding_on_cpu

    for engine in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        monkeypatch.setenv(engine, "true")
        with pytest.raises(ConfigError, match="shards only on GPUs.*cpu_ddp"):
            refuse_sharding_on_cpu(torch.device("cpu"))
        refuse_sharding_on_cpu(torch.device("cuda", 0))  # a GPU: accelerate shards
        monkeypatch.delenv(engine)
    refuse_sharding_on_cpu(torch.device("cpu"))  # no sharded engine asked for


def test_generation_model_is_the_trainer_model_without_sharding():
    from types import SimpleNamespace

    from sspo_exp.train.sharded import generation_model

    state = SimpleNamespace(deepspeed_plugin=None, fsdp_plugin=None)
    trainer = SimpleNamespace(accelerator=SimpleNamespace(state=state), model="policy", model_wrapped="wrapped")
    with generation_model(trainer) as model:
        assert model == "policy"


def test_no_heldout_rows_means_no_heldout_evaluation(tmp_path):
    """trainer.eval_samples=0: the callback must not evaluate (and log None) at the last step."""
    from types import SimpleNamespace

    from sspo_exp.evaluation.evaluator import Evaluator
    from sspo_exp.evaluation.settings import EvalSettings
    from sspo_exp.rundir import RunDir
    from sspo_exp.train.callbacks import HeldoutEval

    class NoRows(Evaluator):
        def heldout(self, model, tag):
            raise AssertionError("evaluated an empty held-out set")

    ev = NoRows(EvalSettings(heldout_every=1), None, [], None, {}, RunDir(tmp_path, "r"), write=False)
    cb = HeldoutEval(ev)
    cb.trainer = SimpleNamespace(_metrics={"train": {}}, model=None)
    cb.on_step_end(None, SimpleNamespace(global_step=4, max_steps=4), None)
    assert cb.trainer._metrics["train"] == {}
    assert ev.at_step(None, 4, final=True) == {}


def test_the_scheduler_list_checked_without_transformers_is_transformers_own():
    from transformers import SchedulerType

    from sspo_exp.train.config import SCHEDULERS

    assert set(SCHEDULERS) == {s.value for s in SchedulerType}


@pytest.mark.parametrize("enabled", [True, False])
def test_checkpointing_flag_reaches_trl_under_either_transformers_name(tmp_path, enabled):
    """transformers 5.19 (.venv-vllm) calls it gradient_checkpointing, 5.2x activation_checkpointing."""
    from trl import GRPOConfig

    from sspo_exp.models.compat import checkpointing_kwargs

    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **checkpointing_kwargs(enabled))
    assert bool(getattr(args, "activation_checkpointing", None) or args.gradient_checkpointing) is enabled
