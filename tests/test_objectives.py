"""Objectives against hand-computed values, an independent scalar reference, and the paper's identities."""

from __future__ import annotations

import math

import pytest
import torch

from sspo_exp.objectives import GATES, METRICS, OBJECTIVES, SUMS, Objective, from_config, make_objective, pooled_metrics
from sspo_exp.objectives.kit import bind as _bind
from sspo_exp.objectives.gates import IDENTITY

from objective_reference import GATE_F, GATE_W, objective_J

# Two responses: ρ = [1.5, 0.5] with Â = +1; ρ = [1.5, 0.25] (+ one padding token) with Â = −1.
RATIOS = [[1.5, 0.5], [1.5, 0.25]]
ADV = [1.0, -1.0]

HP = {
    "grpo": dict(eps_low=0.2, eps_high=0.2),
    "gspo": dict(eps_low=0.2, eps_high=0.2),
    "gmpo": dict(eps_low=0.2, eps_high=0.2),
    "sapo": dict(tau_pos=1.0, tau_neg=1.05),
    **{f"sspo-{g}": dict(gate=g, tau_pos=0.2, tau_neg=0.3) for g in GATES if g != "gumbel"},
    "sspo-gumbel": dict(gate="gumbel"),
}


def build(key: str, **extra) -> Objective:
    return make_objective(key.split("-")[0], **HP[key], **extra)


def padded_batch(ratios=RATIOS, adv=ADV, pad_value=7.0):
    """log_probs/old_log_probs/mask for ragged ratio lists; padding holds a junk value on purpose."""
    T = max(map(len, ratios)) + 1
    lp = torch.full((len(ratios), T), pad_value)
    old = torch.full((len(ratios), T), -pad_value)
    mask = torch.zeros(len(ratios), T, dtype=torch.bool)
    for i, row in enumerate(ratios):
        old[i, : len(row)] = -1.0
        lp[i, : len(row)] = -1.0 + torch.log(torch.tensor(row, dtype=torch.float64)).float()
        mask[i, : len(row)] = True
    return lp.requires_grad_(), old, torch.tensor(adv), mask


# --- hand-computed values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, expected_loss",
    [
        # clip ρ at 1.2 (Â>0) / 0.8 (Â<0): J = ((1.2+0.5)/2 − (1.5+0.8)/2)/2 = −0.15
        ("grpo", 0.15),
        # s_0 = √0.75 = 0.8660254 (kept), s_1 = √0.375 = 0.612 -> max(., 0.8) = 0.8: J = (0.8660254 − 0.8)/2
        ("gspo", -(math.sqrt(0.75) - 0.8) / 2),
        # geometric means of the clipped ratios: √(1.2·0.5) and √(1.5·0.8): J = (√0.6 − √1.2)/2
        ("gmpo", -(math.sqrt(0.6) - math.sqrt(1.2)) / 2),
        # SAPO, τ_pos = 1: σ(0.5)·4 + σ(−0.5)·4 = 4, mean 2; τ_neg = 1.05: (σ(.525) + σ(−.7875))·4/1.05 / 2
        ("sapo", -(2.0 - (1 / (1 + math.exp(-0.525)) + 1 / (1 + math.exp(0.7875))) * 4 / 1.05 / 2) / 2),
        # atanlog: exp(mean τ·atan(log ρ/τ)), τ_pos = 0.2 for response 0, τ_neg = 0.3 for response 1
        (
            "sspo-atanlog",
            -(
                math.exp((0.2 * math.atan(math.log(1.5) / 0.2) + 0.2 * math.atan(math.log(0.5) / 0.2)) / 2)
                - math.exp((0.3 * math.atan(math.log(1.5) / 0.3) + 0.3 * math.atan(math.log(0.25) / 0.3)) / 2)
            )
            / 2,
        ),
    ],
)
def test_hand_computed_loss(key, expected_loss):
    out = build(key)(*padded_batch())
    assert out.loss.item() == pytest.approx(expected_loss, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("key", list(HP))
def test_matches_scalar_reference(key):
    """Every objective and gate against the ratio-domain reference, on a random ragged batch."""
    g = torch.Generator().manual_seed(1)
    ratios = [torch.exp(0.6 * torch.randn(n, generator=g)).tolist() for n in (3, 1, 5, 2)]
    adv = [0.7, -1.3, 0.4, -0.2]
    out = build(key)(*padded_batch(ratios, adv))
    name = key.split("-")[0]
    expected = -objective_J(name, list(zip(ratios, adv)), **HP[key])
    assert out.loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_token_mean_aggregation_weights_by_length():
    ratios, adv = [[1.1, 0.9, 1.0], [1.3]], [1.0, -1.0]
    lp, old, a, mask = padded_batch(ratios, adv)
    out = make_objective("grpo", loss_agg="token-mean")(lp, old, a, mask)
    # Σ_{i,t} fClip·Â / Σ|y| = (1.1 + 0.9 + 1.0 − 1.3)/4
    assert out.loss.item() == pytest.approx(-(1.1 + 0.9 + 1.0 - 1.3) / 4, rel=1e-5)
    out = make_objective("sspo", gate="atanlog", tau_pos=0.2, tau_neg=0.3, loss_agg="token-mean")(lp, old, a, mask)
    s0 = math.exp(sum(0.2 * math.atan(math.log(r) / 0.2) for r in ratios[0]) / 3)
    s1 = math.exp(0.3 * math.atan(math.log(1.3) / 0.3))
    assert out.loss.item() == pytest.approx(-(3 * s0 - s1) / 4, rel=1e-5)


# --- SSPO's gradient is the paper's Eq. 14 ---------------------------------------------------------------------


@pytest.mark.parametrize("gate", list(GATES))
def test_sspo_gradient_is_eq14(gate):
    """∂J/∂log π_t = 1/G · S_i · Â_i · 1/|y_i| · w(ρ_t), with w from SPEC.md's table (ratio domain)."""
    g = torch.Generator().manual_seed(2)
    ratios = [torch.exp(0.8 * torch.randn(n, generator=g)).tolist() for n in (4, 2, 6)]
    adv = [1.2, -0.7, 0.3]
    hp = HP[f"sspo-{gate}"]
    lp, old, a, mask = padded_batch(ratios, adv)
    loss = make_objective("sspo", **hp)(lp, old, a, mask).loss
    (grad,) = torch.autograd.grad(-loss, lp)
    G = len(ratios)
    for i, (row, ai) in enumerate(zip(ratios, adv)):
        tau = hp.get("tau_pos") if ai > 0 else hp.get("tau_neg")
        S = math.prod(GATE_F[gate](r, tau) for r in row) ** (1 / len(row))
        for t, r in enumerate(row):
            expected = S * ai * GATE_W[gate](r, tau) / (len(row) * G)
            assert grad[i, t].item() == pytest.approx(expected, rel=1e-4, abs=1e-7)
        assert torch.all(grad[i, len(row) :] == 0), "padding must get no gradient"


def test_eq14_through_a_model():
    """Eq. 14 with ∇log π of a real (linear-softmax) policy: autograd of SSPO = Σ_t coef_t ∇log π_t."""
    torch.manual_seed(3)
    B, T, V, H = 3, 5, 7, 4
    W = torch.randn(H, V, requires_grad=True)
    x = torch.randn(B, T, H)
    tokens = torch.randint(V, (B, T))
    mask = torch.rand(B, T) > 0.2
    logp = torch.log_softmax(x @ W, -1).gather(-1, tokens[..., None])[..., 0]
    old = (logp + 0.3 * torch.randn(B, T)).detach()
    adv = torch.tensor([0.9, -1.1, 0.4])
    obj = make_objective("sspo", gate="atanlog", tau_pos=0.2, tau_neg=0.3)
    (g_auto,) = torch.autograd.grad(obj(logp, old, adv, mask).loss, W, retain_graph=True)
    with torch.no_grad():
        lr = (logp - old).double()
        tau = torch.where(adv > 0, 0.2, 0.3).double()[:, None]
        n = mask.sum(-1).double()
        S = torch.exp((tau * torch.atan(lr / tau) * mask).sum(-1) / n)
        w = 1 / (1 + (lr / tau) ** 2)  # Eq. 16
        coef = (S * adv / n)[:, None] * w * mask / B
    (g_eq14,) = torch.autograd.grad(-(coef.float() * logp).sum(), W)
    torch.testing.assert_close(g_auto, g_eq14, rtol=1e-5, atol=1e-6)


# --- the paper's identities ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(HP))
@pytest.mark.parametrize("loss_agg", ["seq-mean-token-mean", "token-mean"])
def test_on_policy_gradient_is_policy_gradient(key, loss_agg):
    """At ρ ≡ 1 every objective's gradient is the on-policy policy gradient (SPEC.md)."""
    torch.manual_seed(4)
    lp = torch.randn(4, 6).requires_grad_()
    mask = torch.rand(4, 6) > 0.3
    mask[2] = False  # an empty response
    adv = torch.tensor([1.0, -0.5, 2.0, -1.5])
    out = build(key, loss_agg=loss_agg)(lp, lp.detach(), adv, mask)
    (grad,) = torch.autograd.grad(out.loss, lp)
    n = mask.sum(-1).float()
    if loss_agg == "seq-mean-token-mean":
        expected = -(adv / n.clamp(min=1))[:, None] * mask / 4
    else:
        expected = -adv[:, None] * mask / n.sum()
    torch.testing.assert_close(grad, expected.float(), rtol=1e-5, atol=1e-7)
    assert out.metrics["token_weight_mean"] == pytest.approx(1.0)
    assert out.metrics["seq_weight_mean"] == pytest.approx(1.0)
    assert out.metrics["seq_weight_var"] == pytest.approx(0.0, abs=1e-12)
    assert out.metrics["clip_frac"] == 0.0
    assert out.metrics["approx_kl"] == pytest.approx(0.0, abs=1e-7)


def test_gmpo_without_clipping_is_gspo_without_clipping_is_sspo_identity():
    """Geometric mean of token ratios = GSPO's s_i: GMPO(ε→∞) = GSPO(ε→∞) = SSPO with f(ρ) = ρ."""
    torch.manual_seed(5)
    lp = torch.randn(5, 7).requires_grad_()
    old = lp.detach() + 2 * torch.randn(5, 7)
    mask = torch.rand(5, 7) > 0.25
    adv = torch.randn(5)
    wide = dict(eps_low=1 - 1e-12, eps_high=1e12)
    results = [
        make_objective("gmpo", **wide)(lp, old, adv, mask),
        make_objective("gspo", **wide)(lp, old, adv, mask),
        Objective("sspo-identity", _bind(IDENTITY), geometric=True)(lp, old, adv, mask),
    ]
    grads = [torch.autograd.grad(r.loss, lp)[0] for r in results]
    for r, g in zip(results[1:], grads[1:]):
        torch.testing.assert_close(r.loss, results[0].loss)
        torch.testing.assert_close(g, grads[0])
    # and with the paper's ε the clip bites on this batch, so the identity is not vacuous
    clipped = make_objective("gmpo", eps_low=0.2, eps_high=0.2)(lp, old, adv, mask)
    assert abs(clipped.loss.item() - results[0].loss.item()) > 1e-3


# --- metrics ----------------------------------------------------------------------------------------------------


def test_metrics_hand_computed():
    out = build("grpo")(*padded_batch())
    m = out.metrics
    s = [math.sqrt(0.75), math.sqrt(0.375)]
    assert m["seq_weight_mean"] == pytest.approx(sum(s) / 2, rel=1e-5)
    assert m["seq_weight_var"] == pytest.approx(((s[0] - s[1]) / 2) ** 2, rel=1e-4)
    tok = [1.5, 0.5, 1.5, 0.25]
    assert m["token_ratio_mean"] == pytest.approx(sum(tok) / 4, rel=1e-5)
    # 1.5 with Â>0 and 0.25 with Â<0 are clipped: 2 of 4 tokens; kept weights are ρ = 0.5 and 1.5
    assert m["clip_frac"] == pytest.approx(0.5)
    assert m["token_weight_mean"] == pytest.approx((0.5 + 1.5) / 4, rel=1e-5)
    assert m["approx_kl"] == pytest.approx(sum(r - 1 - math.log(r) for r in tok) / 4, rel=1e-5)


def test_sspo_attenuation_metric_is_soft():
    out = build("sspo-atanlog")(*padded_batch())
    assert out.metrics["clip_frac"] == 0.0  # soft gates never zero a gradient
    # atanlog w = 1/(1+(log ρ/τ)²) < 1/2 iff |log ρ| > τ: all four tokens here
    assert out.metrics["attenuated_frac"] == pytest.approx(1.0)


# --- validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: make_objective("ppo"), ["objective", "grpo, gspo, gmpo, sapo, sspo"]),
        (lambda: make_objective("sspo", gate="tanh", tau_pos=1, tau_neg=1), ["gate", "atanlog", "siglog"]),
        (lambda: make_objective("sspo", gate="atanlog", tau_neg=0.3), ["tau_pos", "> 0"]),
        (lambda: make_objective("sspo", gate="atanlog", tau_pos=0.2, tau_neg=0.0), ["tau_neg", "> 0"]),
        (lambda: make_objective("sapo", tau_pos=-1.0, tau_neg=1.0), ["tau_pos", "> 0"]),
        (lambda: make_objective("sspo", gate="gumbel", tau_pos=0.2), ["gumbel", "no temperature", "atanlog"]),
        (lambda: make_objective("grpo", eps_low=1.0), ["eps_low", "(0, 1)"]),
        (lambda: make_objective("gmpo", eps_low=0.0), ["eps_low", "(0, 1)"]),
        (lambda: make_objective("grpo", eps_high=-0.1), ["eps_high"]),
        (lambda: make_objective("grpo", tau_pos=1.0), ["tau_pos", "eps_low"]),
        (lambda: make_objective("sspo", eps_low=0.2, tau_pos=0.2, tau_neg=0.3), ["eps_low", "tau_pos"]),
        (lambda: make_objective("grpo", loss_agg="sum"), ["loss_agg", "token-mean"]),
    ],
)
def test_bad_parameters_name_the_field_and_valid_values(call, words):
    with pytest.raises(ValueError) as e:
        call()
    for w in words:
        assert w in str(e.value)


def test_shape_errors_are_clear():
    obj = make_objective("grpo")
    with pytest.raises(ValueError, match="mask shape"):
        obj(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 4))
    with pytest.raises(ValueError, match="advantages"):
        obj(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3))


def test_from_config_reads_gate_only_for_sspo():
    sspo = from_config({"name": "sspo", "loss_agg": None}, {"name": "siglog", "tau_pos": 0.5, "tau_neg": 0.6})
    assert sspo.name == "sspo-siglog"
    grpo = from_config({"name": "grpo", "eps_low": 0.1, "eps_high": 0.1}, {"name": "siglog", "tau_pos": 0.5})
    assert grpo.name == "grpo"
    with pytest.raises(ValueError, match="gate"):
        from_config({"name": "sspo"}, None)


def test_every_objective_name_builds():
    for name in OBJECTIVES:
        kw = {"sapo": dict(tau_pos=1.0, tau_neg=1.05), "sspo": dict(tau_pos=0.2, tau_neg=0.3)}.get(name, {})
        assert make_objective(name, **kw).name.startswith(name)


def test_objectives_pickle():
    """Objectives cross process boundaries (accelerate, submitit): no lambdas inside."""
    import pickle

    for key in HP:
        obj = pickle.loads(pickle.dumps(build(key)))
        assert obj(*padded_batch()).loss.item() == pytest.approx(build(key)(*padded_batch()).loss.item())


# --- pooled diagnostics (issue 11, point 4) ---------------------------------------------------------------------


def _single_token_batch(ratios, adv):
    """One token per response, so each response's sequence weight s_i is its token ratio."""
    return padded_batch([[r] for r in ratios], adv)


def test_pooled_variance_over_micro_batches_is_the_variance_of_the_whole_step():
    """Sums of two micro-batches give the step's variance, not the mean of the micro-batches' variances."""
    obj = build("sspo-atanlog")
    a = obj(*_single_token_batch([1.0, 1.2], [1.0, -1.0]))
    b = obj(*_single_token_batch([0.6, 0.8], [1.0, -1.0]))
    pooled = pooled_metrics((a.sums.double() + b.sums.double()).tolist())
    # by hand: s = 1.0, 1.2, 0.6, 0.8 -> mean 0.9, population variance (0.01 + 0.09 + 0.09 + 0.01)/4 = 0.05
    assert pooled["seq_weight_mean"] == pytest.approx(0.9, rel=1e-6)
    assert pooled["seq_weight_var"] == pytest.approx(0.05, rel=1e-5)
    # the old per-micro-batch mean would give 0.01 (each micro-batch's own variance)
    assert (a.metrics["seq_weight_var"] + b.metrics["seq_weight_var"]) / 2 == pytest.approx(0.01, rel=1e-4)
    whole = obj(*_single_token_batch([1.0, 1.2, 0.6, 0.8], [1.0, -1.0, 1.0, -1.0]))
    assert pooled == pytest.approx(whole.metrics, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("key", list(HP))
def test_sums_of_ragged_micro_batches_equal_the_concatenated_batch(key):
    """Every pooled metric (token- and sequence-weighted) equals the metric of the concatenated batch."""
    g = torch.Generator().manual_seed(7)
    ratios = [torch.exp(0.5 * torch.randn(n, generator=g)).tolist() for n in (5, 1, 3, 2, 6, 4)]
    adv = [0.7, -1.3, 0.4, -0.2, 1.1, -0.6]
    obj = build(key)
    whole = obj(*padded_batch(ratios, adv)).metrics
    total = sum(obj(*padded_batch(ratios[k : k + 2], adv[k : k + 2])).sums.double() for k in (0, 2, 4))
    assert pooled_metrics(total.tolist()) == pytest.approx(whole, rel=1e-5, abs=1e-7)


def test_sums_are_a_detached_device_tensor_and_metrics_keep_their_names():
    out = build("sspo-atanlog")(*padded_batch())
    assert out.sums.shape == (len(SUMS),) and not out.sums.requires_grad
    assert set(out.metrics) == set(METRICS)


def test_variance_near_one_has_no_cancellation():
    """Weights 1 + 1e-4·k: Σs²/n − (Σs/n)² in float32 would lose every digit; the shifted sums keep them."""
    ratios = [1 + 1e-4 * k for k in range(8)]
    out = build("sspo-atanlog")(*_single_token_batch(ratios, [1.0] * 8))
    expected = torch.tensor(ratios, dtype=torch.float64).var(unbiased=False).item()  # 5.25e-8
    assert out.metrics["seq_weight_var"] == pytest.approx(expected, rel=1e-2)
