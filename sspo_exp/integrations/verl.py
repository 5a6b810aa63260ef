"""SSPO as verl policy losses: importing this module registers ``sspo`` and ``sspo_<gate>`` in verl's registry.

verl (``verl.trainer.ppo.core_algos``) selects a policy loss by ``actor_rollout_ref.actor.policy_loss.loss_mode``
from ``POLICY_LOSS_REGISTRY``, filled by ``@register_policy_loss(name)``. This module registers

- ``sspo``: SSPO with the paper's default gate (``atanlog``, Eq. 15);
- ``sspo_expsig``, ``sspo_expatan``, ``sspo_gumbel``, ``sspo_atanlog``, ``sspo_siglog``: one name per gate.

Each is verl's loss signature ``(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config,
rollout_is_weights) -> (pg_loss, metrics)`` and computes the loss with ``sspo_exp.objectives.make_objective``: no
second copy of the maths. verl's names stay on verl's side: τ_pos/τ_neg are the actor config's ``tau_pos`` /
``tau_neg`` (the fields verl's own ``sapo`` reads), the aggregation is the actor's ``loss_agg_mode``.

Aggregation. Every objective of ours is ``−Σ_i |y_i|^k · x_i`` over responses, normalised one of two ways (our
``loss_agg``); each of verl's five ``agg_loss`` modes applied to a loss matrix whose row ``i`` sums to ``|y_i| x_i``
is one of ours times a factor that does not depend on the policy (see :func:`verl_scale`). That factor is computed
by verl's own ``agg_loss`` on the response mask, with the actor's ``global_batch_info`` (data-parallel size, global
token and sequence counts), so the loss is the one verl would compute over the global mini-batch, for every mode.

How verl's processes find this module: the ``verl.plugins`` entry point of our package (pyproject.toml), which
``verl/__init__.py`` loads in every process that imports verl (driver and Ray workers); see docs/verl.md.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from verl.trainer.ppo.core_algos import agg_loss, register_policy_loss

from sspo_exp.keys import VERL_OBJECTIVE_PREFIX as METRIC_PREFIX
from sspo_exp.objectives import DEFAULT_GATE, GATES, make_objective

#: verl's ``loss_agg_mode`` -> our ``loss_agg`` whose value :func:`verl_scale` rescales to verl's.
VERL_AGG = {
    "seq-mean-token-mean": "seq-mean-token-mean",
    "token-mean": "token-mean",
    "token-sum": "token-mean",
    "seq-mean-token-sum": "token-mean",
    "seq-mean-token-sum-norm": "token-mean",
}
#: verl's loss names -> our gate (``sspo`` is the paper's default gate).
LOSS_MODES = {"sspo": DEFAULT_GATE, **{f"sspo_{g}": g for g in GATES}}


@lru_cache(maxsize=64)
def _objective(gate: str, tau_pos: float | None, tau_neg: float | None, loss_agg: str):
    return make_objective("sspo", gate=gate, tau_pos=tau_pos, tau_neg=tau_neg, loss_agg=loss_agg)


def objective_for(loss_mode: str, loss_agg_mode: str, config: Any):
    """Our objective for verl's ``loss_mode`` and ``loss_agg_mode``, τ from the actor ``config`` (a gate without
    a temperature, ``gumbel``, reads none)."""
    if loss_mode not in LOSS_MODES:
        raise ValueError(f"policy_loss.loss_mode={loss_mode!r} is not an SSPO loss; valid values: {', '.join(LOSS_MODES)}")
    if loss_agg_mode not in VERL_AGG:
        raise ValueError(f"loss_agg_mode={loss_agg_mode!r} is not known; valid values: {', '.join(VERL_AGG)}")
    gate = LOSS_MODES[loss_mode]
    taus = (float(config.tau_pos), float(config.tau_neg)) if GATES[gate].has_temperature else (None, None)
    return _objective(gate, *taus, VERL_AGG[loss_agg_mode])


def sequence_advantages(advantages: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """One advantage per response [B] from verl's token-level advantages [B, T] (its outcome estimators, e.g.
    ``grpo``, broadcast one value over a response's tokens). Token-varying advantages (``gae``) are refused: SSPO
    weighs a whole response by one advantage (SPEC.md Eq. 11)."""
    adv = advantages.float()  # a bf16 sum of 512 equal values is not that value times 512
    mask = response_mask.to(adv.dtype)
    seq = (adv * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    spread = ((adv - seq.unsqueeze(-1)).abs() * mask).amax() if mask.numel() else adv.new_zeros(())
    if spread > 1e-5 * (1.0 + seq.abs().max()):
        raise ValueError("SSPO needs one advantage per response (algorithm.adv_estimator=grpo, rloo, ...); "
                         f"the advantages vary within a response by up to {float(spread):.3g}")
    return seq


def verl_scale(response_mask: torch.Tensor, loss_agg_mode: str, global_batch_info: dict | None) -> torch.Tensor:
    """The factor turning our loss (with ``VERL_AGG[loss_agg_mode]``) into verl's ``agg_loss`` of the same terms.

    Ours: ``L_seq = Σ_i x_i / B`` (seq-mean-token-mean) and ``L_tok = Σ_i |y_i| x_i / N`` (token-mean), ``B`` rows and
    ``N`` tokens of this micro-batch. verl aggregates a matrix ``M`` with row sums ``|y_i| x_i`` linearly, so its
    value is ``Σ_i |y_i| x_i · agg(1)/N`` for the token-mean, token-sum and seq-mean-token-sum(-norm) modes (each token
    of a row weighs the same) and ``Σ_i x_i · agg(1)/B'`` for seq-mean-token-mean (``B'`` non-empty rows), where
    ``agg(1)`` is verl's ``agg_loss`` of the mask itself. Hence the factor is ``agg(1)`` or ``agg(1) · B / B'``.
    """
    mask = response_mask.to(torch.float32)
    ones = agg_loss(loss_mat=mask, loss_mask=mask, loss_agg_mode=loss_agg_mode, **(global_batch_info or {}))
    if VERL_AGG[loss_agg_mode] == "seq-mean-token-mean":
        nonempty = (mask.sum(-1) > 0).sum().clamp(min=1)
        return ones * mask.shape[0] / nonempty
    return ones


def _sspo_loss(loss_mode: str, old_log_prob: torch.Tensor, log_prob: torch.Tensor, advantages: torch.Tensor,
               response_mask: torch.Tensor, loss_agg_mode: str, config: Any,
               rollout_is_weights: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, Any]]:  # fmt: skip
    if config is None:
        raise ValueError(f"policy loss {loss_mode!r} needs verl's actor config (tau_pos, tau_neg, global_batch_info)")
    if rollout_is_weights is not None:
        raise ValueError(f"policy loss {loss_mode!r} takes no rollout_is_weights: turn off "
                         "algorithm.rollout_correction (SSPO's gate already bounds each response's weight)")
    objective = objective_for(loss_mode, loss_agg_mode, config)
    out = objective(log_prob, old_log_prob, sequence_advantages(advantages, response_mask), response_mask)
    scale = verl_scale(response_mask, loss_agg_mode, getattr(config, "global_batch_info", None))
    metrics = out.metrics
    pg_metrics = {"actor/pg_clipfrac": metrics["clip_frac"], "actor/ppo_kl": metrics["approx_kl"],
                  "actor/pg_clipfrac_lower": 0.0}  # fmt: skip
    pg_metrics.update({METRIC_PREFIX + k: v for k, v in metrics.items()})
    return out.loss * scale.to(out.loss.dtype), pg_metrics


def _register(loss_mode: str) -> None:
    def policy_loss(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="seq-mean-token-mean",
                    config=None, rollout_is_weights=None):  # fmt: skip
        return _sspo_loss(loss_mode, old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config,
                          rollout_is_weights)  # fmt: skip

    gate = LOSS_MODES[loss_mode]
    policy_loss.__name__ = policy_loss.__qualname__ = f"compute_policy_loss_{loss_mode}"
    policy_loss.__doc__ = (f"SSPO (SPEC.md Eqs. 11, 17) with the {gate!r} gate, tau_pos/tau_neg from the actor "
                           "config; see sspo_exp.integrations.verl.")  # fmt: skip
    register_policy_loss(loss_mode)(policy_loss)


for _mode in LOSS_MODES:
    _register(_mode)
