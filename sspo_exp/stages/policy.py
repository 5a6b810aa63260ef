"""The initial policy of a run: its cold start (a cached stage, built on first use) or ``model.path`` as is.

``cold_started_path`` is the one entry point for every model: the tiny cold start (:mod:`sspo_exp.stages.tiny`), the
tiny model's CodeAct cold start (:mod:`sspo_exp.stages.codeact`), the SFT cold start of an HF model
(:mod:`sspo_exp.stages.sft`), or none. ``load_policy`` loads what it names through the one model loader
(:mod:`sspo_exp.models`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sspo_exp.models import load_model, load_tokenizer
from sspo_exp.stages import codeact, sft, tiny
from sspo_exp.stages.cache import cache_root, run_stage
from sspo_exp.stages.spec import ColdStartSpec, cold_start_spec


def cold_started_path(model_cfg: Mapping[str, Any], cold_start_cfg: Mapping[str, Any] | None,
                      dataset_cfg: Mapping[str, Any], seed: int, cache: str | os.PathLike | None = None,
                      distributed: bool = False) -> str:
    """What the RL run loads as its initial policy (``from_pretrained`` path), computing the cold start if needed.

    Which cold start (if any) is :func:`sspo_exp.stages.spec.cold_start_spec`'s answer: the tiny model's
    (``model.path`` null), the SFT of ``model.path`` on ``dataset_cfg``'s training split (``model.cold_start.enabled:
    true``, ``sspo_exp.models.sft``, seeded by ``model.cold_start.seed`` or, when null, by ``seed``), or none
    (``model.path`` itself). Computed results are cached in ``cache`` (default ``$SSPO_EXP_CACHE`` or
    ``~/.cache/sspo-exp``) under the spec's ``stage_id``, once per key (``sspo_exp.models.stage``).

    In a multi-process launch (``WORLD_SIZE > 1``) the SFT stage is built by all processes together only with
    ``distributed=True`` (``sspo-exp cold-start`` under ``accelerate launch``); otherwise it must be cached already
    (``sspo_exp.models.stage.StageMissing``). The tiny stage is built by one process while the others wait.
    """
    spec = cold_start_spec(model_cfg, cold_start_cfg, dataset_cfg, seed)
    return spec_path(spec, model_cfg, cold_start_cfg, dataset_cfg, cache, distributed)


def spec_path(spec: ColdStartSpec | None, model_cfg: Mapping[str, Any], cold_start_cfg: Mapping[str, Any] | None,
              dataset_cfg: Mapping[str, Any], cache: str | os.PathLike | None = None, distributed: bool = False) -> str:
    """:func:`cold_started_path` for an already checked spec (the plan's, :mod:`sspo_exp.train.config`)."""
    if spec is None:
        return str(model_cfg["path"])
    root = cache if cache is not None else cache_root()
    if spec.kind == "tiny-codeact":
        return str(run_stage(root, spec.stage_id, lambda work: codeact.build(work, spec.stage_id, model_cfg, spec.key),
                             spec.key))
    if spec.kind == "tiny":
        return str(run_stage(root, spec.stage_id, lambda work: tiny.build(work, spec, model_cfg, cold_start_cfg,
                                                                            dataset_cfg), spec.key))
    return str(run_stage(root, spec.stage_id,
                         lambda work: sft.build(work, model_cfg, cold_start_cfg, dataset_cfg, spec.seed), spec.key,
                         launch="together" if distributed else "cached"))



def policy_path(model_cfg: Mapping[str, Any], dataset_cfg: Mapping[str, Any], seed: int) -> str:
    """Where the initial policy's weights are (:func:`cold_started_path` with the model's own cold-start block)."""
    return cold_started_path(model_cfg, model_cfg.get("cold_start"), dataset_cfg, seed)


def load_policy(model_cfg: Mapping[str, Any], dataset_cfg: Mapping[str, Any], seed: int, dtype: str = "float32",
                path: str | None = None):
    """``(model, tokenizer)`` a run starts from. The weights are loaded in ``dtype`` (training: float32 master weights
    whatever the checkpoint's dtype, ``sspo_exp.train.config.train_dtype``); ``path``: :func:`policy_path`'s answer
    when the caller already has it (the plan's)."""
    return load_weights(path or policy_path(model_cfg, dataset_cfg, seed), model_cfg, dtype)


def load_weights(path: str, model_cfg: Mapping[str, Any], dtype: str = "float32"):
    """``(model, tokenizer)`` at ``path`` (a run's initial policy, the plan's :func:`spec_path`), loaded with the
    model block's attention implementation and chat template."""
    model = load_model(path, dtype, model_cfg.get("attn_implementation") if model_cfg.get("path") else None)
    return model, load_tokenizer(path, model_cfg.get("chat_template") or "auto")
