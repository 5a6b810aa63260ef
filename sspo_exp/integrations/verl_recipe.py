"""A verl launch from our settings: the batch arithmetic of μ, the Hydra overrides, the GPU-hours estimate.

Torch- and verl-free. μ is read back from verl's fields by ``sspo_exp.report.engines.optimizer_steps_per_rollout``. The recipe is
``recipes/verl/table1.yaml``; ``python -m sspo_exp.integrations.verl_recipe RECIPE [key=value ...]`` prints the
overrides of ``python -m verl.trainer.main_ppo`` one per line (``recipes/verl/run_table1.sh``).

μ in verl (docs/verl.md). verl generates ``data.train_batch_size`` prompts × ``rollout.n`` responses per training
step ("global step"), then the actor makes ``ppo_epochs · train_batch_size / ppo_mini_batch_size`` optimizer steps
on them (``ppo_mini_batch_size`` counts prompts; verl multiplies it by ``rollout.n``). Our TRL path consumes one
rollout of μ·P prompts × G responses once, over μ optimizer steps of P prompts each, so in verl:

    data.train_batch_size = μ·P      actor.ppo_mini_batch_size = P      actor.ppo_epochs = 1      rollout.n = G

and a run of S optimizer steps is ``trainer.total_training_steps = S / μ`` verl steps.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from sspo_exp.errors import ConfigError
from sspo_exp.report.engines import optimizer_steps_per_rollout  # the one reading of μ in verl's fields
from sspo_exp.sweeps.resources import flops_hours as gpu_hours  # the one GPU-hour formula (the TRL path's too)

#: verl's loss names for our objectives (sspo_exp.integrations.verl registers the sspo ones; the rest are verl's).
LOSS_MODES = {"sspo": "sspo", "gspo": "gspo", "gmpo": "geo_mean", "sapo": "sapo", "grpo": "vanilla"}


@dataclass(frozen=True)
class VerlBatch:
    train_batch_size: int  # prompts per verl step (one rollout)
    ppo_mini_batch_size: int  # prompts per optimizer step
    ppo_epochs: int
    rollout_n: int  # G


def verl_batch(prompts_per_step: int, num_generations: int, mu: int) -> VerlBatch:
    """Our (P, G, μ) as verl's batch fields (module docstring)."""
    for name, value, low in (("prompts_per_step", prompts_per_step, 1), ("num_generations", num_generations, 2),
                             ("mu", mu, 1)):  # fmt: skip
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"trainer.{name}={value!r}: must be an integer >= {low}")
    return VerlBatch(mu * prompts_per_step, prompts_per_step, 1, num_generations)


def trained_tokens(t: Mapping[str, Any]) -> int:
    """Tokens through the backward pass, an upper bound: every response at its full length (prompt + completion)."""
    return t["max_steps"] * t["prompts_per_step"] * t["num_generations"] * (t["max_prompt_length"] + t["max_completion_length"])


def overrides(recipe: Mapping[str, Any]) -> list[str]:
    """verl's Hydra overrides for ``recipe`` (the layout of recipes/verl/table1.yaml)."""
    t, o, hw = recipe["trainer"], recipe["objective"], recipe["hardware"]
    if o["name"] not in LOSS_MODES:
        raise ConfigError(f"objective.name={o['name']!r} is not known; valid values: {', '.join(LOSS_MODES)}")
    b = verl_batch(t["prompts_per_step"], t["num_generations"], t["mu"])
    mu = optimizer_steps_per_rollout(b.train_batch_size, b.ppo_mini_batch_size, b.ppo_epochs)
    if t["max_steps"] % mu:
        raise ConfigError(f"trainer.max_steps={t['max_steps']}: must be a multiple of trainer.mu={mu} (verl counts rollouts)")
    actor = "actor_rollout_ref.actor."
    loss = f"sspo_{o['gate']}" if o["name"] == "sspo" and o.get("gate") else LOSS_MODES[o["name"]]
    out = {
        "algorithm.adv_estimator": "grpo", "algorithm.use_kl_in_reward": False,
        "data.train_files": recipe["data"]["train"], "data.val_files": recipe["data"]["val"],
        "data.train_batch_size": b.train_batch_size, "data.max_prompt_length": t["max_prompt_length"],
        "data.max_response_length": t["max_completion_length"], "data.filter_overlong_prompts": True,
        "data.seed": recipe["seed"],
        "actor_rollout_ref.model.path": recipe["model"], "actor_rollout_ref.rollout.n": b.rollout_n,
        "actor_rollout_ref.rollout.name": "vllm", "actor_rollout_ref.rollout.temperature": t["temperature"],
        "actor_rollout_ref.rollout.top_p": t["top_p"],
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": t["per_device_batch_size"],
        "actor_rollout_ref.rollout.val_kwargs.do_sample": False, "actor_rollout_ref.rollout.val_kwargs.n": 1,  # greedy Pass@1
        actor + "ppo_mini_batch_size": b.ppo_mini_batch_size, actor + "ppo_epochs": b.ppo_epochs,
        actor + "ppo_micro_batch_size_per_gpu": t["per_device_batch_size"], actor + "optim.lr": t["learning_rate"],
        actor + "grad_clip": t["max_grad_norm"], actor + "use_kl_loss": False, actor + "entropy_coeff": 0,
        actor + "loss_agg_mode": t["loss_agg_mode"], actor + "policy_loss.loss_mode": loss,
        "reward.custom_reward_function.path": "pkg://sspo_exp.integrations.verl_reward",
        "reward.custom_reward_function.name": "compute_score",
        "trainer.total_training_steps": t["max_steps"] // mu, "trainer.nnodes": hw["nnodes"],
        "trainer.n_gpus_per_node": hw["gpus_per_node"], "trainer.logger": "[console,wandb]",
        "trainer.project_name": recipe["project"], "trainer.val_before_train": True, "trainer.test_freq": t["test_freq"],
        "trainer.experiment_name": f"{recipe['name']}-{loss}-seed{recipe['seed']}",
    }  # fmt: skip
    out.update(_objective_fields(o, actor))
    return [f"{k}={_value(v)}" for k, v in out.items()]


def _objective_fields(o: Mapping[str, Any], actor: str) -> dict[str, Any]:
    """ε as verl's clip ratios (GMPO's in log space: verl clips log ρ), τ as its tau_pos / tau_neg."""
    import math

    if o["name"] in ("grpo", "gspo", "gmpo"):
        lo, hi = o["eps_low"], o.get("eps_high") or o["eps_low"]
        if o["name"] == "gmpo":
            lo, hi = -math.log(1 - lo), math.log(1 + hi)
        extra = {actor + "clip_ratio_c": 1e9} if o["name"] == "grpo" else {}  # no dual clip: the paper's GRPO
        return {actor + "clip_ratio_low": lo, actor + "clip_ratio_high": hi, **extra}
    if o["name"] == "sspo" and o.get("gate") == "gumbel":
        return {}
    return {actor + "tau_pos": o["tau_pos"], actor + "tau_neg": o["tau_neg"]}


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def load_recipe(path: str | Path, dotlist: list[str] = ()) -> dict:
    """The recipe file with ``key=value`` overrides (OmegaConf dotlist: ``objective.gate=siglog seed=1``)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(list(dotlist)))
    return OmegaConf.to_container(cfg, resolve=True)


def estimate(recipe: Mapping[str, Any]) -> str:
    """One line: the training tokens and GPU-hours of ``recipe`` (formula in :func:`gpu_hours`)."""
    t, hw = recipe["trainer"], recipe["hardware"]
    tokens = trained_tokens(t)
    hours = gpu_hours(tokens, hw["params"], hw["peak_flops"], hw["mfu"])
    return (f"# {tokens:.3g} tokens x 6 x {hw['params']:.3g} params / ({hw['peak_flops']:.3g} FLOP/s x MFU {hw['mfu']}) "
            f"= {hours:.1f} GPU-hours per run (training passes only; generation not counted)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m sspo_exp.integrations.verl_recipe RECIPE.yaml [key=value ...]", file=sys.stderr)
        return 2
    try:
        recipe = load_recipe(argv[0], argv[1:])
        lines = overrides(recipe)
    except (ConfigError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(estimate(recipe), file=sys.stderr)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
