"""CodeAct settings checked without torch: which datasets are CodeAct episodes, their ``env`` block, and the
training-config checks :func:`sspo_exp.train.config.make_plan` runs (the one validation pass)."""

from __future__ import annotations

from typing import Any

from sspo_exp.codeact.episode import EnvConfig
from sspo_exp.errors import ConfigError

#: ``dataset.name`` values whose rows are CodeAct tasks (multi-turn episodes in the sandbox, solved reward).
CODEACT_DATASETS = ("codeact", "codeact_arith")
ENV_KEYS = ("max_turns", "max_observation_chars", "observation_template", "sandbox")


def _plain(block: Any) -> dict:
    if block is None:
        return {}
    if hasattr(block, "items") and not isinstance(block, dict):
        from omegaconf import OmegaConf

        block = OmegaConf.to_container(block, resolve=True)
    return dict(block)


def env_config(dataset_cfg: Any, max_completion_length: int, chat_template_kwargs: Any = None) -> EnvConfig:
    """The :class:`EnvConfig` of a dataset block's ``env`` (budget: the trainer's completion length / the
    evaluation's ``max_new_tokens``; ``chat_template_kwargs``: the model's, for observation turns). Raises
    ``ValueError`` / ``SandboxConfigError`` naming a bad field."""
    from sspo_exp.sandbox import SandboxConfig

    env = _plain((dataset_cfg or {}).get("env"))
    sandbox = SandboxConfig.from_mapping(env.pop("sandbox", None) or {})
    unknown = sorted(set(env) - set(ENV_KEYS))
    if unknown:
        raise ValueError(f"dataset.env has unknown key(s) {unknown}; valid: {sorted(ENV_KEYS)}")
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

    from sspo_exp import CONF_DIR

    return OmegaConf.load(Path(CONF_DIR) / "dataset" / "codeact.yaml")


def check_env(block: Any, budget: int, where: str) -> EnvConfig:
    """``env_config`` of ``block``, a bad field raised as ``ConfigError`` (``where`` names the block unless it is
    ``dataset``, whose messages already say ``dataset.env``)."""
    from sspo_exp.sandbox import SandboxConfigError

    try:
        return env_config(block, budget)
    except (ValueError, TypeError, SandboxConfigError) as e:
        raise ConfigError(str(e) if where == "dataset" else f"{where}: {e}") from e


def check_cold_start(cold_start: Any) -> None:
    """The ``model.cold_start`` block of the tiny model's CodeAct cold start (``sspo_exp/codeact/cold_start.py``)."""
    block = _plain(cold_start)
    rate, split = block.get("execute_rate"), block.get("execute_split")
    ok = isinstance(rate, dict) and set(rate) == {"below", "above"} and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in rate.values())
    if not ok:
        raise ConfigError(f"model.cold_start.execute_rate={rate!r}: must be {{below: p, above: p}} with each p in [0, 1] "
                          "(the share of executing cold-start targets below / above execute_split)")  # fmt: skip
    if not isinstance(split, int) or isinstance(split, bool):
        raise ConfigError(f"model.cold_start.execute_split={split!r}: must be an integer (a first operand)")


#: the CodeAct cold start's block (conf/experiment/cpu_codeact.yaml)
COLD_START_FIELDS = ("steps", "batch_size", "learning_rate", "warmup_steps", "weight_decay", "execute_rate",
                     "execute_split")


def cold_start_key(arch: Any, cold_start: Any, dataset: Any, seed: int) -> dict:
    """Everything the CodeAct-cold-started tiny model's weights depend on, after checking the block (torch-free:
    ``sspo_exp.models.cold_start_spec`` names the stage with it before anything loads)."""
    from sspo_exp.models.cold_start_spec import TINY_ARCH_FIELDS

    if _plain(arch).get("name") != "tiny":
        raise ConfigError(f"model.path is required for model.name={_plain(arch).get('name')!r}; only 'tiny' is built "
                          "locally")
    block = _plain(cold_start)
    missing = [f for f in COLD_START_FIELDS if f not in block]
    if missing:
        raise ConfigError(f"model.cold_start is missing {missing}; the codeact_arith cold start needs "
                          f"{list(COLD_START_FIELDS)}")
    check_cold_start(block)
    arch = _plain(arch)
    from sspo_exp.identity import floats_as_floats

    return {"arch": {f: arch.get(f) for f in TINY_ARCH_FIELDS},
            "cold_start": floats_as_floats({f: block[f] for f in COLD_START_FIELDS}, "model.cold_start"),
            "dataset": floats_as_floats(_plain(dataset), "dataset"), "seed": int(seed), "format": "codeact-3"}


def check_config(cfg: Any) -> None:
    """Reject a bad CodeAct training config before any compute (called by ``make_plan``)."""
    if cfg.dataset.get("name") not in CODEACT_DATASETS:
        return
    model = cfg.get("model") or {}
    if cfg.dataset.get("name") == "codeact_arith" and model.get("name") == "tiny" and not model.get("path"):
        check_cold_start(model.get("cold_start"))
    if cfg.trainer.rollout != "hf":
        raise ConfigError(f"trainer.rollout={cfg.trainer.rollout!r}: CodeAct episodes are sampled with the HF model; "
                          "use trainer.rollout=hf (vLLM is not wired for multi-turn episodes)")
    check_env(cfg.dataset, cfg.trainer.max_completion_length, "dataset")
