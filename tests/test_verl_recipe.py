"""The verl recipe for Table 1 (recipes/verl/): μ through verl's batch fields, the settings against our own GPU
config, verl's own config composed and validated with the rendered overrides, the GPU-hours formula, the reward."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sspo_exp.errors import ConfigError
from sspo_exp.integrations.verl_recipe import gpu_hours, load_recipe, main, overrides, trained_tokens, verl_batch
from sspo_exp.report.engines import optimizer_steps_per_rollout
from verl_helpers import needs_verl

ROOT = Path(__file__).parents[1]
RECIPE = ROOT / "recipes" / "verl" / "table1.yaml"


@pytest.mark.parametrize("P, G, mu", [(32, 8, 2), (32, 8, 4), (7, 2, 1), (16, 16, 3)])
def test_mu_round_trips_through_verls_batch_fields(P, G, mu):
    b = verl_batch(P, G, mu)
    assert (b.ppo_mini_batch_size, b.rollout_n, b.ppo_epochs) == (P, G, 1)
    # each response is used once (epochs 1), in mu optimizer steps of P prompts x G responses
    assert b.train_batch_size * G == mu * P * G
    assert optimizer_steps_per_rollout(b.train_batch_size, b.ppo_mini_batch_size, b.ppo_epochs) == mu


def test_mu_of_a_verl_config_counts_epochs_and_refuses_partial_mini_batches():
    assert optimizer_steps_per_rollout(1024, 256, 1) == 4
    assert optimizer_steps_per_rollout(512, 512, 2) == 2  # data reuse: same mu, each response used twice
    with pytest.raises(ConfigError, match="multiple of actor.ppo_mini_batch_size=48"):
        optimizer_steps_per_rollout(64, 48)
    with pytest.raises(ConfigError, match="trainer.num_generations=1"):
        verl_batch(32, 1, 2)


def test_recipe_trains_at_the_papers_and_our_gpu_settings():
    """G = 8, μ = 2, 512 tokens (SPEC.md), and every other trainer field as conf/trainer/gpu.yaml sets it."""
    recipe = load_recipe(RECIPE)
    t = recipe["trainer"]
    assert (t["num_generations"], t["mu"], t["max_completion_length"]) == (8, 2, 512)
    gpu = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "trainer" / "gpu.yaml"))
    table1 = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "experiment" / "table1.yaml"))
    assert t["mu"] == table1["trainer"]["mu"]
    for key in ("num_generations", "prompts_per_step", "per_device_batch_size", "max_prompt_length",
                "max_completion_length", "max_steps", "learning_rate", "temperature", "top_p", "max_grad_norm"):
        assert t[key] == gpu[key], key
    assert recipe["model"] == "Qwen/Qwen2.5-7B-Instruct"
    rendered = dict(line.split("=", 1) for line in overrides(recipe))
    assert rendered["data.train_batch_size"] == "64" and rendered["actor_rollout_ref.actor.ppo_mini_batch_size"] == "32"
    assert rendered["trainer.total_training_steps"] == "250"  # 500 optimizer steps / mu
    assert rendered["actor_rollout_ref.actor.policy_loss.loss_mode"] == "sspo_atanlog"
    assert rendered["actor_rollout_ref.actor.tau_neg"] == "0.3"


def test_gpu_hours_formula():
    # 1e9 tokens x 6 x 7e9 params / (1e15 FLOP/s x 0.5) = 84,000 s = 23.33 h
    assert gpu_hours(1e9, 7e9, 1e15, 0.5) == pytest.approx(84_000 / 3600)
    t = load_recipe(RECIPE)["trainer"]
    assert trained_tokens(t) == 500 * 32 * 8 * 1024


def test_cli_renders_and_refuses_in_one_line(capsys):
    assert main([str(RECIPE), "objective.gate=gumbel"]) == 0
    out = capsys.readouterr()
    assert "actor_rollout_ref.actor.policy_loss.loss_mode=sspo_gumbel" in out.out and "tau_pos" not in out.out
    assert "GPU-hours" in out.err
    assert main([str(RECIPE), "objective.name=ppo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "objective.name='ppo'" in err[0] and "sspo, gspo" in err[0]


def test_reward_scores_math_verify_answers_off_the_main_thread():
    """verl's reward loop may call compute_score from a thread, where math-verify cannot run under its budget:
    the answer only math-verify recognises (1+x for x+1) must still score 1 there."""
    from sspo_exp.integrations.verl_reward import compute_score

    text = "<think>add</think> <answer>1+x</answer>"
    main_thread = compute_score("gsm8k", text, "x+1")
    out = []
    worker = threading.Thread(target=lambda: out.append(compute_score("gsm8k", text, "x+1")))
    worker.start()
    worker.join(timeout=300)
    assert main_thread == out[0] == {"score": 2.0, "acc": 1.0, "format": 1.0}


@pytest.mark.verl
@needs_verl
@pytest.mark.parametrize("objective", ["objective.gate=atanlog", "objective.gate=gumbel", "objective.name=gmpo "
                                       "objective.eps_low=0.2 ~objective.gate ~objective.tau_pos ~objective.tau_neg"])
def test_verls_own_config_composes_and_validates(objective):
    """verl's ppo_trainer.yaml composed by Hydra with the rendered overrides, then verl's validate_config (which
    builds its ActorConfig dataclass) and its registry's lookup of the loss; μ read back from the composed config."""
    import verl
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.utils.config import validate_config

    dotlist = [d for d in objective.split() if not d.startswith("~")]
    recipe = load_recipe(RECIPE, dotlist)
    for d in objective.split():
        if d.startswith("~"):
            recipe["objective"].pop(d[len("~objective."):])
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose("ppo_trainer", overrides=overrides(recipe))
    validate_config(cfg, use_reference_policy=False, use_critic=False)
    actor = cfg.actor_rollout_ref.actor
    assert get_policy_loss_fn(actor.policy_loss.loss_mode) is not None
    assert optimizer_steps_per_rollout(cfg.data.train_batch_size, actor.ppo_mini_batch_size, actor.ppo_epochs) == 2
    assert cfg.actor_rollout_ref.rollout.n == 8 and cfg.data.max_response_length == 512


@pytest.mark.verl
@needs_verl
def test_report_mapping_reads_back_the_recipe_from_verls_composed_config():
    """recipe -> verl's full resolved config (what verl logs to W&B) -> sspo_exp/report/engines.py -> the recipe's
    own settings; every verl path the mapping reads exists in verl's config."""
    import verl
    from hydra import compose, initialize_config_dir

    from sspo_exp.report import engines
    from sspo_exp.report.frames import flatten

    recipe = load_recipe(RECIPE, ["objective.gate=siglog", "objective.tau_pos=0.5", "objective.tau_neg=0.6", "seed=3"])
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        cfg = compose("ppo_trainer", overrides=overrides(recipe))
    flat = flatten(OmegaConf.to_container(cfg, resolve=False))
    ours = engines.verl_config(flat)
    assert ours["objective"] == {"name": "sspo"} and ours["gate"] == {"name": "siglog", "tau_pos": 0.5, "tau_neg": 0.6}
    assert (ours["trainer"]["mu"], ours["trainer"]["num_generations"], ours["seed"]) == (2, 8, 3)
    assert ours["model"]["name"] == "Qwen/Qwen2.5-7B-Instruct"
    read = ["data.train_batch_size", "data.seed", "data.max_response_length", "data.val_files",
            "actor_rollout_ref.model.path", "actor_rollout_ref.rollout.n", "actor_rollout_ref.rollout.name",
            "actor_rollout_ref.rollout.dtype", "actor_rollout_ref.rollout.val_kwargs.do_sample",
            "reward.custom_reward_function.path", "reward.custom_reward_function.name"]
    read += [f"actor_rollout_ref.actor.{k}" for k in ("ppo_mini_batch_size", "ppo_epochs", "policy_loss.loss_mode",
                                                      "tau_pos", "tau_neg", "clip_ratio_low", "clip_ratio_high")]
    assert [k for k in read if k not in flat] == []


def test_data_files_in_verls_layout_with_our_prompt_and_gold(tmp_path):
    """The converter on the generated arithmetic dataset (no download): verl's columns, our zero-shot prompt, the
    held-out rows as data_source ``heldout`` and each benchmark under its name, gold answers the reward accepts."""
    import pandas as pd

    from sspo_exp.data import load_dataset_rows
    from sspo_exp.data.prompts import build_messages
    from sspo_exp.integrations.verl_data import write_table1
    from sspo_exp.integrations.verl_reward import compute_score

    dataset = {"name": "arithmetic", "seed": 0, "digits": 2, "operations": ["+"], "steps": 1, "word_problems": 0.0,
               "train_size": 30, "test_size": 10, "prompt_style": "instruct"}
    train_path, val_path = write_table1(tmp_path, dataset, benchmarks=("arithmetic",))
    train, val = pd.read_parquet(train_path), pd.read_parquet(val_path)
    assert {"data_source", "prompt", "ability", "reward_model", "extra_info"} <= set(train.columns)
    assert len(train) == 30 and set(val["data_source"]) == {"heldout", "arithmetic"}
    first = load_dataset_rows(dataset, "train")[0]
    assert list(train["prompt"][0]) == build_messages(first["question"])
    gold = train["reward_model"][0]["ground_truth"]
    assert gold == first["answer"]
    assert compute_score("arithmetic", f"<think>t</think> <answer>{gold}</answer>", gold)["acc"] == 1.0
