"""Runs logged by another engine read as ours: the ONE mapping from verl's W&B names and config to the report's.

verl (``trainer.logger=[wandb]``) logs its resolved Hydra config (``actor_rollout_ref.actor...``, ``data...``) and
one history row per verl step (one rollout, μ optimizer steps; step 0 is ``val_before_train``). A run is a verl run
when its config has ``actor_rollout_ref``; :func:`to_ours` then adds our names beside verl's (nothing is removed):

=================================  =====================================================  ============================
ours                               verl                                                   how
=================================  =====================================================  ============================
history ``step``                   W&B ``_step`` (= verl's ``training/global_step``)      × μ: optimizer steps done
``train/reward``                   ``critic/rewards/mean``                                copied (no KL in reward)
``train/entropy``                  ``actor/entropy``                                      copied
``train/objective/<m>``            ``actor/objective/<m>`` (sspo_exp.integrations.verl)    copied
``eval/heldout/accuracy``          ``val-core/heldout/acc/mean@1``                        copied (history, summary)
``eval/<b>/pass@1``                ``val-core/<b>/acc/mean@1``, last value                × 100 (percent)
``eval_before/<b>/pass@1``         the same at step 0 (``trainer.val_before_train``)      × 100
``objective.name``, ``gate.name``  ``actor.policy_loss.loss_mode``                        LOSS_MODES
``objective.eps_low/eps_high``     ``actor.clip_ratio_low/high``                          GMPO: ``1 − e^{−c}``, ``e^c − 1``
``gate.tau_pos/tau_neg``           ``actor.tau_pos/tau_neg`` (SAPO: ``objective.tau_*``)   copied
``model.name``                     ``actor_rollout_ref.model.path``                       copied
``trainer.mu``                     ``ppo_epochs · data.train_batch_size / ppo_mini_batch_size``
``trainer.num_generations``        ``actor_rollout_ref.rollout.n``                        copied
``seed``                           ``data.seed``                                          copied
run ``group``                      (none)                                                 ``verl·`` + hash of the above but the seed
=================================  =====================================================  ============================

``<b>`` is verl's ``data_source`` (the recipe's validation file names them gsm8k, math500, aime25, heldout).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import replace

import pandas as pd

from sspo_exp import keys
from sspo_exp.errors import ConfigError
from sspo_exp.objectives import DEFAULT_GATE
from sspo_exp.report.frames import RunData, flatten

#: verl's loss_mode -> our objective name (sspo_<gate> -> sspo with that gate).
LOSS_MODES = {"vanilla": "grpo", "gspo": "gspo", "geo_mean": "gmpo", "sapo": "sapo", "sspo": "sspo"}
HISTORY = {"train/reward": "critic/rewards/mean", "train/entropy": "actor/entropy"}
HELDOUT_SOURCE = "heldout"  #: the data_source of the held-out rows in the validation file
_VAL_CORE = re.compile(r"^val-core/(?P<source>.+)/acc/mean@1$")
_ACTOR = "actor_rollout_ref.actor."


def optimizer_steps_per_rollout(train_batch_size: int, ppo_mini_batch_size: int, ppo_epochs: int = 1) -> int:
    """μ of a verl config: optimizer steps made on one rollout (verl requires whole mini-batches). The recipe
    (sspo_exp.integrations.verl_recipe) derives its batch fields from μ and checks them with this function."""
    if train_batch_size % ppo_mini_batch_size:
        raise ConfigError(f"data.train_batch_size={train_batch_size}: must be a multiple of "
                          f"actor.ppo_mini_batch_size={ppo_mini_batch_size}")  # fmt: skip
    return ppo_epochs * train_batch_size // ppo_mini_batch_size


def is_verl(run: RunData) -> bool:
    return isinstance(run.config.get("actor_rollout_ref"), dict)


def to_ours(run: RunData) -> RunData:
    """``run`` with our names added if it is a verl run (module docstring), else ``run`` unchanged."""
    if not is_verl(run):
        return run
    flat = flatten(run.config)
    config = verl_config(flat)
    mu = config["trainer"]["mu"]
    history = _history(run.history, mu)
    summary = {**run.summary, **_summary(run.summary, history, _profile(flat))}
    setting = {k: v for k, v in flatten(config).items() if k != "seed"}
    digest = hashlib.sha1(json.dumps(setting, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return replace(run, config={**run.config, **config}, summary=summary, history=history,
                   group=run.group or f"verl·{digest}")  # fmt: skip


def verl_config(flat: dict) -> dict:
    """Our config blocks from verl's flattened config (module docstring)."""
    mode = str(flat.get(_ACTOR + "policy_loss.loss_mode", "vanilla"))
    name = "sspo" if mode.startswith("sspo") else LOSS_MODES.get(mode, mode)
    objective, gate = {"name": name}, {"name": "clip"}
    taus = {"tau_pos": flat.get(_ACTOR + "tau_pos"), "tau_neg": flat.get(_ACTOR + "tau_neg")}
    if name == "sspo":
        gate = {"name": mode.removeprefix("sspo_") if mode != "sspo" else DEFAULT_GATE, **taus}
    elif name == "sapo":
        objective.update(taus)
    elif name in ("grpo", "gspo", "gmpo"):
        lo, hi = (float(flat.get(_ACTOR + f"clip_ratio_{s}", flat.get(_ACTOR + "clip_ratio", 0.2))) for s in ("low", "high"))
        if name == "gmpo":  # verl clips log ρ to [−c_low, c_high]; ours clips ρ to [1 − ε_low, 1 + ε_high]
            lo, hi = -math.expm1(-lo), math.expm1(hi)
        objective.update(eps_low=lo, eps_high=hi)
    mu = optimizer_steps_per_rollout(int(flat["data.train_batch_size"]), int(flat[_ACTOR + "ppo_mini_batch_size"]),
                                     int(flat.get(_ACTOR + "ppo_epochs", 1)))  # fmt: skip
    model = str(flat.get("actor_rollout_ref.model.path", "?"))
    return {"objective": objective, "gate": gate, "model": {"name": model},
            "trainer": {"mu": mu, "num_generations": flat.get("actor_rollout_ref.rollout.n")},
            "seed": flat.get("data.seed"), "engine": "verl"}  # fmt: skip


def _history(history: pd.DataFrame, mu: int) -> pd.DataFrame:
    if history.empty:
        return history
    h = history.assign(step=history["step"] * mu)
    h[keys.GLOBAL_STEP] = h["step"]
    for ours, theirs in HISTORY.items():
        if theirs in h:
            h[ours] = h[theirs]
    for col in [c for c in h.columns if isinstance(c, str) and c.startswith(keys.VERL_OBJECTIVE_PREFIX)]:
        h["train/objective/" + col.removeprefix(keys.VERL_OBJECTIVE_PREFIX)] = h[col]
    heldout = f"val-core/{HELDOUT_SOURCE}/acc/mean@1"
    if heldout in h:
        h[keys.HELDOUT] = h[heldout]
    return h


def _profile(flat: dict) -> dict:
    """The evaluation profile of verl's validation (``keys.PROFILE_FIELDS``), so a table never mixes it silently
    with rows scored another way."""
    rollout = "actor_rollout_ref.rollout."
    sampled = bool(flat.get(rollout + "val_kwargs.do_sample", False))
    checker = f"{flat.get('reward.custom_reward_function.path')}:{flat.get('reward.custom_reward_function.name')}"
    return {"backend": f"verl-{flat.get(rollout + 'name', '?')}", "dtype": str(flat.get(rollout + "dtype", "?")),
            "max_new_tokens": flat.get("data.max_response_length"), "prompt": str(flat.get("data.val_files", "?")),
            "chat_template": "model", "chat_template_kwargs": json.dumps(flat.get("data.apply_chat_template_kwargs") or {}),
            "stop": f"sampled-t{flat.get(rollout + 'val_kwargs.temperature')}" if sampled else "greedy-eos-or-budget",
            "checker": checker}  # fmt: skip


def _summary(summary: dict, history: pd.DataFrame, profile: dict) -> dict:
    out = {}
    first = history[history["step"] == 0] if len(history) else history
    for key, value in summary.items():
        m = _VAL_CORE.match(key) if isinstance(key, str) else None
        if not m or not isinstance(value, (int, float)):
            continue
        if m["source"] == HELDOUT_SOURCE:
            out[keys.HELDOUT] = value
            continue
        bench = m["source"].rsplit("/", 1)[-1].lower()
        out[keys.eval_key(bench)] = 100.0 * value
        out.update({keys.eval_key(bench, keys.profile_stat(f)): v for f, v in profile.items()})
        before = first[key].dropna() if key in first else ()
        if len(before):
            out[keys.eval_key(bench, stage=keys.BEFORE)] = 100.0 * float(before.iloc[-1])
            out.update({keys.eval_key(bench, keys.profile_stat(f), keys.BEFORE): v for f, v in profile.items()})
    return out
