"""CodeAct settings checked without torch: which datasets are CodeAct episodes, their ``env`` block, and the
training-config checks :func:`sspo_exp.train.config.make_plan` runs (the one validation pass)."""

from __future__ import annotations

from typing import Any

from sspo_exp.codeact.episode import EnvConfig
from sspo_exp.errors import ConfigError
from sspo_exp import CONF_DIR
from sspo_exp.sandbox import SandboxConfig, SandboxConfigError

#: ``dataset.name`` values whose rows are CodeAct tasks (multi-turn episodes in the sandbox, solved reward).
CODEACT_DATASETS = ("codeact", "codeact_arith")
#: ``trainer.rollout`` values CodeAct training runs with (the turn sampler of ``codeact/rollout.py``)
ROLLOUTS = ("hf", "vllm_colocate")
ENV_KEYS = ("max_turns", "budget", "max_episode_tokens", "max_observation_chars", "retry",
            "answer_check", "action_format", "observation_template", "observation_prefix", "sandbox")


def _plain(block: Any) -> dict:
    if block is None:
        return {}
    if hasattr(block, "items") and not isinstance(block, dict):
        from omegaconf import OmegaConf

        block = OmegaConf.to_container(block, resolve=True)
    return dict(block)


def env_config(dataset_cfg: Any, max_completion_length: int, chat_template_kwargs: Any = None) -> EnvConfig:
    """The :class:`EnvConfig` of a dataset block's ``env`` (budget, per turn or per episode: the trainer's completion
    length / the evaluation's ``max_new_tokens``; ``chat_template_kwargs``: the model's, for observation turns). Raises
    ``ValueError`` / ``SandboxConfigError`` naming a bad field."""
    env = _plain((dataset_cfg or {}).get("env"))
    sandbox = SandboxConfig.from_mapping(env.pop("sandbox", None) or {})
    unknown = sorted(set(env) - set(ENV_KEYS))
    if unknown:
        raise ValueError(f"dataset.env has unknown key(s) {unknown}; valid: {sorted(ENV_KEYS)}")
    # the budget (per turn or per episode, env.budget) is the trainer's completion length / the evaluation's
    # max_new_tokens, so the evaluation profile's max_new_tokens records it
    return EnvConfig(max_completion_tokens=int(max_completion_length), sandbox=sandbox,
                     chat_template_kwargs=_plain(chat_template_kwargs) or None, **env)


def eval_env(cfg: Any) -> dict | None:
    """The environment training's evaluation runs CodeAct episodes in: the run's own ``dataset.env`` when it trains
    on CodeAct (the environment it learned in), else conf/dataset/codeact.yaml's when ``final_eval`` scores the
    ``codeact`` benchmark, else None. Checked here (``ConfigError``), before any compute."""
    name = cfg.dataset.get("name")
    benchmarks = list((cfg.get("final_eval") or {}).get("benchmarks") or [])
    if name in CODEACT_DATASETS:
        block = cfg.dataset
    elif "codeact" in benchmarks:
        block = default_block()
    else:
        return None
    check_env(block, cfg.trainer.max_completion_length, "dataset" if name in CODEACT_DATASETS else "codeact default")
    return _plain(block.get("env"))


def default_block() -> Any:
    """conf/dataset/codeact.yaml (the ``codeact`` benchmark's prompt style and environment for a non-CodeAct run)."""
    from pathlib import Path

    from omegaconf import OmegaConf


    return OmegaConf.load(Path(CONF_DIR) / "dataset" / "codeact.yaml")


def check_env(block: Any, budget: int, where: str) -> EnvConfig:
    """``env_config`` of ``block``, a bad field raised as ``ConfigError`` (``where`` names the block unless it is
    ``dataset``, whose messages already say ``dataset.env``)."""
    try:
        return env_config(block, budget)
    except (ValueError, TypeError, SandboxConfigError) as e:
        raise ConfigError(str(e) if where == "dataset" else f"{where}: {e}") from e


def check_config(cfg: Any) -> EnvConfig | None:
    """Reject a bad CodeAct training config before any compute (called by ``make_plan``); return the environment
    its episodes run in (None: the dataset is not CodeAct), which the plan carries to training."""
    if cfg.dataset.get("name") not in CODEACT_DATASETS:
        return None
    if cfg.trainer.rollout not in ROLLOUTS:
        raise ConfigError(f"trainer.rollout={cfg.trainer.rollout!r}: CodeAct episodes are sampled by the training "
                          f"process; choose one of {', '.join(ROLLOUTS)} (vllm_server is not wired for multi-turn "
                          "episodes)")
    check_env(cfg.dataset, cfg.trainer.max_completion_length, "dataset")
    return env_config(cfg.dataset, cfg.trainer.max_completion_length, (cfg.get("model") or {}).get("chat_template_kwargs"))
