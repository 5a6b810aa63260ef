"""Job shapes of the paper's presets (conf/model/*.yaml resources blocks), their sbatch scripts, the GPU-hour estimate,
the checks at the job's real world size, and the ranks' DeepSpeed/FSDP environment — all without a cluster."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from sspo_exp import CONF_DIR
from sspo_exp.errors import ConfigError
from sspo_exp.sweeps import grid, resources
from sspo_exp.sweeps.distributed import engine_env

SLURM = ["launcher=submitit_slurm"]


def _compose(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def _point(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        return grid.plan_point(list(overrides))


@pytest.mark.parametrize("experiment, model, shape", [
    ("table1", "qwen2.5-7b-instruct", "8 ranks, 1x8 GPU, deepspeed_zero3, 48 h limit"),
    ("table2_math", "qwen3-8b", "8 ranks, 1x8 GPU, deepspeed_zero3, 48 h limit"),
    ("table2_math", "qwen3-14b", "8 ranks, 1x8 GPU, deepspeed_zero3, 48 h limit"),
    ("table2_math", "qwen3-30b-a3b", "16 ranks, 2x8 GPU, deepspeed_zero3, 48 h limit"),
])  # fmt: skip
def test_paper_presets_shape_their_jobs_and_are_valid_at_that_world_size(experiment, model, shape):
    plan, job, hours, _ = _point(f"experiment={experiment}", f"model={model}", *SLURM)
    assert job.describe() == shape and plan.world_size == job.world_size  # validated at the job's world size
    cfg = plan.cfg
    t = cfg.trainer
    n = cfg.model.resources.active_params_b or cfg.model.resources.params_b
    expected = t.max_steps * t.prompts_per_step * t.num_generations * (t.max_prompt_length + t.max_completion_length) \
        * 6 * n * 1e9 / (989e12 * 0.1) / 3600  # the stated formula, by hand
    assert hours == pytest.approx(expected) and hours > 1


def test_the_moe_estimate_counts_active_parameters():
    _, _, dense, _ = _point("experiment=table2_math", "model=qwen3-8b", *SLURM)
    _, _, moe, _ = _point("experiment=table2_math", "model=qwen3-30b-a3b", *SLURM)
    assert moe == pytest.approx(dense * 3.3 / 8.2)


def test_sbatch_script_of_a_preset_renders_with_its_shape(tmp_path):
    """submitit's own sbatch script for the Table 1 job: 1 node, 8 tasks, 8 GPUs, 48 h, requeue on signal."""
    import submitit

    from sspo_exp.sweeps.trial_jobs import launcher_executor

    _, shape, _, _ = _point("experiment=table1", *SLURM)
    executor = launcher_executor("submitit_slurm", grid.shape_overrides(shape), tmp_path / "%j")
    script = submitit.slurm.slurm._make_sbatch_string(command="python -m x", folder=tmp_path,
                                                      **executor._executor.parameters)  # fmt: skip
    for line in ("#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8", "#SBATCH --time=2880"):
        assert line in script, script


def test_any_field_of_the_shape_can_be_overridden():
    _, shape, _, _ = _point("experiment=table1", *SLURM, "model.resources.nodes=2")
    assert shape.world_size == 16
    _, shape, _, _ = _point("experiment=table1", *SLURM, "hydra.launcher.tasks_per_node=4", "hydra.launcher.gpus_per_node=4")
    assert (shape.world_size, shape.gpus) == (4, 4)


def test_local_launchers_stay_one_process():
    plan, shape, _, _ = _point("experiment=cpu_minigrid")
    assert shape.world_size == 1 and plan.world_size == 1 and grid.shape_overrides(shape) == []


@pytest.mark.parametrize("overrides, message", [
    (["hydra.launcher.tasks_per_node=3"], r"per_device_batch_size"),  # 3 ranks cannot split the batch
    (["model.resources.engine=ddp"], r"need ~122 GB per GPU .* engine=ddp"),  # a 7B model unsharded
    (["model.resources.engine=zero"], r"model.resources.engine='zero': choose one of ddp, deepspeed_zero3, fsdp"),
    (["hydra.launcher.gpus_per_node=0"], r"shard only on GPUs"),
    (["trainer.rollout=vllm_server"], r"server_gpus must be >= 1"),
])  # fmt: skip
def test_a_point_that_cannot_run_as_its_job_is_refused_before_submission(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _point("experiment=table1", *SLURM, *overrides)


def test_a_bad_point_in_a_sweep_is_one_line_and_exit_2(tmp_path, capsys):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("experiment: table1\ngrid: [{objective: grpo}]\n")
    assert grid.main([str(sweep), "launcher=submitit_slurm", "hydra.launcher.tasks_per_node=3", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "per_device_batch_size" in err and "Traceback" not in err


def test_no_wait_needs_a_slurm_launcher(tmp_path, capsys):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("grid: [{objective: grpo}]\n")
    assert grid.main([str(sweep), f"output_root={tmp_path}", "--no-wait"]) == 2
    assert "--no-wait: only launcher=submitit_slurm" in capsys.readouterr().err


@pytest.mark.parametrize("engine, expected", [
    ("deepspeed_zero3", {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}),
    ("fsdp", {"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "FULL_SHARD"}),
    ("ddp", {}),
])  # fmt: skip
def test_ranks_get_the_engine_environment_accelerate_launch_would_give(engine, expected):
    env = engine_env(engine, num_machines=2, num_processes=16, machine_rank=1, main_process_ip="n1", main_process_port=29500)
    assert expected.items() <= env.items()
    assert resources.ENGINES == ("ddp", "deepspeed_zero3", "fsdp")
