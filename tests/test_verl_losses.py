"""SSPO as verl policy losses, through verl's own registry and config (CPU; verl lives in .venv-verl).

The expectation of each test is built from verl's pieces (``agg_loss``, its built-in losses) and our public
``make_objective`` called on ONE response at a time (so no aggregation of ours is involved), never from
``sspo_exp.integrations.verl``'s own arithmetic.
"""

from __future__ import annotations

import math

import pytest

from objective_reference import sequence_term
from verl_helpers import actor_config, needs_verl, random_batch

pytestmark = [pytest.mark.verl, needs_verl]

torch = pytest.importorskip("torch")
GATE_NAMES = ("expsig", "expatan", "gumbel", "atanlog", "siglog")
MODES = ("seq-mean-token-mean", "token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-sum-norm")
TAUS = {"tau_pos": 0.2, "tau_neg": 0.3}


def _fn(name):
    import sspo_exp.integrations.verl  # noqa: F401  (what verl's plugin loading does in every process)
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    return get_policy_loss_fn(name)


def _row_terms(gate, old, new, adv, mask):
    """``x_i = seq_value_i · Â_i`` of each response, from our objective on that response alone (``−loss``)."""
    from sspo_exp.objectives import make_objective

    taus = {} if gate == "gumbel" else TAUS
    obj = make_objective("sspo", gate=gate, **taus)
    seq_adv = adv.sum(-1) / mask.sum(-1).clamp(min=1)
    return torch.stack([-obj(new[i:i + 1], old[i:i + 1], seq_adv[i:i + 1], mask[i:i + 1]).loss for i in range(len(old))])


def _expected(gate, mode, old, new, adv, mask, info):
    """verl's ``agg_loss`` of the loss matrix whose every valid token of row ``i`` holds ``−x_i``."""
    from verl.trainer.ppo.core_algos import agg_loss

    terms = _row_terms(gate, old, new, adv, mask).to(torch.float64)
    mat = -terms.unsqueeze(1).expand_as(mask) * mask
    return agg_loss(loss_mat=mat, loss_mask=mask.to(torch.float64), loss_agg_mode=mode, **info)


@pytest.mark.parametrize("gate", GATE_NAMES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("info", [{}, {"dp_size": 4, "batch_num_tokens": 97, "global_batch_size": 24,
                                       "loss_scale_factor": 512}], ids=["local", "global"])  # fmt: skip
def test_sspo_loss_and_gradient_match_verls_aggregation(gate, mode, info):
    old, new, adv, mask = random_batch(seed=len(gate) * 7 + len(mode), empty_row=True)
    taus = {} if gate == "gumbel" else TAUS
    cfg = actor_config(f"sspo_{gate}", mode, **taus)
    cfg.global_batch_info.update(info)
    loss, metrics = _fn(f"sspo_{gate}")(old, new, adv, mask, mode, cfg, None)
    (grad,) = torch.autograd.grad(loss, new)
    new2 = new.detach().clone().requires_grad_()
    expected = _expected(gate, mode, old, new2, adv, mask, info)
    (grad2,) = torch.autograd.grad(expected, new2)
    torch.testing.assert_close(loss.double(), expected.double(), rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(grad.double(), grad2.double(), rtol=2e-5, atol=1e-7)
    assert grad.abs().sum() > 0 and math.isfinite(loss.item())
    assert {"actor/pg_clipfrac", "actor/ppo_kl", "actor/objective/seq_weight_var"} <= set(metrics)


def test_sspo_default_is_the_papers_gate_and_matches_the_scalar_reference():
    """``sspo`` = ``sspo_atanlog`` (Eq. 15), and its value is J of tests/objective_reference.py (SPEC.md's table
    verbatim, in the ratio domain with ``math`` only)."""
    old, new, adv, mask = random_batch(seed=3)
    cfg = actor_config("sspo", **TAUS)
    loss, _ = _fn("sspo")(old, new, adv, mask, "seq-mean-token-mean", cfg, None)
    same, _ = _fn("sspo_atanlog")(old, new, adv, mask, "seq-mean-token-mean", actor_config("sspo_atanlog", **TAUS), None)
    ratios = (new - old).detach().exp()
    a = adv.sum(-1) / mask.sum(-1)
    batch = [(ratios[i][mask[i]].tolist(), float(a[i])) for i in range(len(a))]
    J = sum(sequence_term("sspo", r, ai, gate="atanlog", **TAUS) for r, ai in batch) / len(batch)
    assert loss.item() == pytest.approx(-J, rel=1e-5) and loss.item() == same.item()


def test_taus_are_read_from_verls_actor_config():
    old, new, adv, mask = random_batch(seed=5, scale=1.0)
    narrow, _ = _fn("sspo")(old, new, adv, mask, "seq-mean-token-mean", actor_config("sspo", **TAUS), None)
    wide, _ = _fn("sspo")(old, new, adv, mask, "seq-mean-token-mean", actor_config("sspo", tau_pos=5.0, tau_neg=5.0), None)
    assert narrow.item() != pytest.approx(wide.item(), rel=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_finite_in_low_precision_with_extreme_ratios(dtype):
    old, new, adv, mask = random_batch(seed=11, scale=30.0)
    new = new.detach().to(dtype).requires_grad_()
    loss, _ = _fn("sspo_expsig")(old.to(dtype), new, adv.to(dtype), mask, "token-mean", actor_config("sspo", **TAUS), None)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(new.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_one_advantage_per_response_is_accepted_at_full_length(dtype):
    """512-token responses with bf16 advantages (verl's broadcast of one value) are not mistaken for token-level
    advantages."""
    old, new, adv, mask = random_batch(seed=23, rows=4, T=512)
    loss, _ = _fn("sspo")(old.to(dtype), new.detach().to(dtype), (adv * 37.3).to(dtype), mask, "token-mean",
                          actor_config("sspo", **TAUS), None)  # fmt: skip
    assert torch.isfinite(loss)


def test_refusals_name_what_is_wrong():
    old, new, adv, mask = random_batch(seed=2)
    fn = _fn("sspo")
    with pytest.raises(ValueError, match="rollout_correction"):
        fn(old, new, adv, mask, "token-mean", actor_config("sspo", **TAUS), torch.ones_like(old))
    gae = adv + 0.1 * torch.arange(adv.shape[1]) * mask
    with pytest.raises(ValueError, match="one advantage per response"):
        fn(old, new, gae, mask, "token-mean", actor_config("sspo", **TAUS), None)


# --- verl's built-in losses against ours, under the documented mappings (docs/verl.md) ---------------------------


def _ours(name, old, new, adv, mask, **hp):
    from sspo_exp.objectives import make_objective

    return make_objective(name, **hp)(new, old, adv.sum(-1) / mask.sum(-1), mask).loss


@pytest.mark.parametrize("verl_name, ours, verl_fields, hp", [
    ("gspo", "gspo", dict(clip_ratio_low=3e-4, clip_ratio_high=4e-4), dict(eps_low=3e-4, eps_high=4e-4)),
    ("sapo", "sapo", dict(tau_pos=1.0, tau_neg=1.05), dict(tau_pos=1.0, tau_neg=1.05)),
    # GMPO: verl clips log ρ to [−c_low, c_high]; ours clips ρ to [1 − ε_low, 1 + ε_high]
    ("geo_mean", "gmpo", dict(clip_ratio_low=-math.log(1 - 0.2), clip_ratio_high=math.log(1 + 0.3)),
     dict(eps_low=0.2, eps_high=0.3)),
    # GRPO: verl's vanilla adds dual-clip (clip_ratio_c) for Â < 0: out of reach with c = 1e9
    ("vanilla", "grpo", dict(clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=1e9), dict(eps_low=0.2, eps_high=0.28)),
])  # fmt: skip
def test_verls_builtin_losses_agree_with_ours(verl_name, ours, verl_fields, hp):
    """On rows with at least one token (verl's seq-mean counts non-empty rows; ours, all G rows) and with
    ``loss_agg_mode=seq-mean-token-mean``; GMPO to verl's 1e-8 in its length division."""
    old, new, adv, mask = random_batch(seed=17, scale=0.3)
    cfg = actor_config(verl_name, **verl_fields)
    loss, _ = _fn(verl_name)(old, new, adv, mask, "seq-mean-token-mean", cfg, None)
    (grad,) = torch.autograd.grad(loss, new)
    new2 = new.detach().clone().requires_grad_()
    mine = _ours(ours, old, new2, adv, mask, **hp)
    (grad2,) = torch.autograd.grad(mine, new2)
    torch.testing.assert_close(loss.double(), mine.double(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad.double(), grad2.double(), rtol=1e-4, atol=1e-7)
