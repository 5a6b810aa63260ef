"""The weights each objective applies (issue 21 item 1; docs/metrics.md "Applied weights"):

- ``W_i`` (``applied_seq_weight``) = T_i / T_i|_{ρ≡1}, the weight J puts on Â_i relative to on-policy;
- ``E_i`` (``grad_seq_weight``) = 1/|y_i| Σ_t c_{i,t}, the mean coefficient of Â_i/|y_i| ∇log π_t in ∇J.

Hand-computed values, the on-policy identity, autograd as the oracle for E and single-response losses for W, and
the pooled per-step mean and variance (stale/fresh) as the trainer logs them.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sspo_exp import keys
from sspo_exp.objectives import GATES, METRICS, SUMS, log_gate, pooled_metrics
from sspo_exp.train.diagnostics import COLUMNS, step_metrics

from test_objectives import HP, build, padded_batch

# response 0: ρ = [1.5, 0.9], Â = +1; response 1: ρ = [0.5] (+ padding), Â = −1
RATIOS, ADV = [[1.5, 0.9], [0.5]], [1.0, -1.0]


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def atanlog(rho: float, tau: float) -> tuple[float, float]:
    """log f and w of Eqs. 15-16."""
    return tau * math.atan(math.log(rho) / tau), 1 / (1 + (math.log(rho) / tau) ** 2)


def _sspo() -> tuple[list[float], list[float]]:
    (f0, w0), (f1, w1) = atanlog(1.5, 0.2), atanlog(0.9, 0.2)
    s0 = math.exp((f0 + f1) / 2)
    f2, w2 = atanlog(0.5, 0.3)
    return [s0, math.exp(f2)], [s0 * (w0 + w1) / 2, math.exp(f2) * w2]


def _sapo() -> tuple[list[float], list[float]]:
    def w(r, t):  # SAPO's token weight 4σ(1−σ)ρ, σ at τ(ρ−1)
        return 4 * sig(t * (r - 1)) * (1 - sig(t * (r - 1))) * r

    applied = [(sig(1.0 * 0.5) + sig(1.0 * -0.1)) / 2 / 0.5, sig(1.05 * -0.5) / 0.5]  # f(ρ)/f(1), f(1) = σ(0)·4/τ
    return applied, [(w(1.5, 1.0) + w(0.9, 1.0)) / 2, w(0.5, 1.05)]


EXPECTED = {
    # ε = 0.2. Response 0: ρ = 1.5 is clipped at 1.2 (value) and carries no gradient (its weight is 0 in ∇J);
    # response 1 (Â < 0): ρ = 0.5 is clipped at 0.8, no gradient.
    "grpo": ([(1.2 + 0.9) / 2, 0.8], [(0.0 + 0.9) / 2, 0.0]),
    # s_0 = √1.35 = 1.162 lies inside [0.8, 1.2]: W = E = s_0; s_1 = 0.5 is clipped to 0.8, no gradient
    "gspo": ([math.sqrt(1.35), 0.8], [math.sqrt(1.35), 0.0]),
    # clipped geometric mean √(1.2·0.9); only the second token carries gradient: E = W · 1/2
    "gmpo": ([math.sqrt(1.2 * 0.9), 0.8], [math.sqrt(1.2 * 0.9) / 2, 0.0]),
    "sapo": _sapo(),  # HP: τ_pos = 1.0, τ_neg = 1.05
    "sspo-atanlog": _sspo(),  # HP: τ_pos = 0.2, τ_neg = 0.3
}


@pytest.mark.parametrize("key", list(EXPECTED))
def test_hand_computed_applied_and_gradient_weights(key):
    out = build(key)(*padded_batch(RATIOS, ADV))
    applied, grad = EXPECTED[key]
    assert out.applied_seq_weight.tolist() == pytest.approx(applied, rel=1e-5)
    assert out.grad_seq_weight.tolist() == pytest.approx(grad, rel=1e-5, abs=1e-7)
    m = out.metrics
    assert m["applied_seq_weight_mean"] == pytest.approx(sum(applied) / 2, rel=1e-5)
    assert m["applied_seq_weight_var"] == pytest.approx(((applied[0] - applied[1]) / 2) ** 2, rel=1e-4)
    assert m["grad_seq_weight_var"] == pytest.approx(((grad[0] - grad[1]) / 2) ** 2, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("key", list(HP))
def test_on_policy_every_applied_weight_is_the_gate_at_log_ratio_zero(key):
    """ρ ≡ 1: W_i = E_i = 1 for every objective and gate (f(1) = 1 and w(1) = 1, SPEC.md property (ii))."""
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(5, 7, generator=g)
    mask = torch.rand(5, 7, generator=g) > 0.3
    mask[:, 0] = True
    out = build(key)(lp, lp.clone(), torch.randn(5, generator=g), mask)
    assert out.applied_seq_weight.tolist() == pytest.approx([1.0] * 5, abs=1e-6)
    assert out.grad_seq_weight.tolist() == pytest.approx([1.0] * 5, abs=1e-6)
    assert out.metrics["applied_seq_weight_var"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("gate", [g for g in GATES if g != "gumbel"])
def test_sspos_on_policy_weight_is_exp_of_its_gate_at_zero(gate):
    one = torch.exp(log_gate(gate, torch.zeros(1), 0.2)).item()
    out = build(f"sspo-{gate}")(torch.zeros(1, 3), torch.zeros(1, 3), torch.ones(1), torch.ones(1, 3))
    assert one == 1.0 and out.applied_seq_weight.item() == pytest.approx(one, abs=1e-7)


def test_an_empty_response_has_weight_zero_and_is_not_counted():
    lp, old, adv, mask = padded_batch([[1.5, 0.9], [0.7]], ADV)
    mask[1] = False
    out = build("sspo-atanlog")(lp, old, adv, mask)
    assert out.applied_seq_weight[1].item() == 0.0 and out.grad_seq_weight[1].item() == 0.0
    assert out.metrics["applied_seq_weight_mean"] == pytest.approx(out.applied_seq_weight[0].item(), rel=1e-6)
    assert out.metrics["applied_seq_weight_var"] == pytest.approx(0.0, abs=1e-8)


# --- property tests: autograd and single-response losses as oracles ---------------------------------------------


@st.composite
def ragged(draw):
    B = draw(st.integers(1, 4))
    rows = [draw(st.lists(st.floats(-1.5, 1.5, allow_nan=False, width=32), min_size=1, max_size=5)) for _ in range(B)]
    adv = [draw(st.sampled_from([-1.0, 1.0])) * draw(st.floats(0.125, 3.0, width=32)) for _ in range(B)]
    return [[math.exp(x) for x in r] for r in rows], adv


@pytest.mark.parametrize("key", list(HP))
@settings(max_examples=25, deadline=None)
@given(batch=ragged())
def test_grad_weight_is_the_gradients_coefficient_and_applied_weight_the_objectives_term(key, batch):
    """E_i = −B/Â_i · Σ_t ∂loss/∂log π_{i,t} (autograd); W_i = T_i/T_i|_{ρ≡1} from one response's loss −T_i·Â_i."""
    ratios, adv = batch
    obj = build(key)
    lp, old, a, mask = padded_batch(ratios, adv)
    out = obj(lp, old, a, mask)
    (grad,) = torch.autograd.grad(out.loss, lp)
    oracle_e = -len(ratios) * (grad * mask).sum(-1) / a
    assert out.grad_seq_weight.tolist() == pytest.approx(oracle_e.tolist(), rel=1e-4, abs=1e-5)
    for i, (r, adv_i) in enumerate(zip(ratios, adv)):
        term = -obj(*padded_batch([r], [adv_i])).loss.item() / adv_i
        on = -obj(*padded_batch([[1.0] * len(r)], [adv_i])).loss.item() / adv_i
        assert out.applied_seq_weight[i].item() == pytest.approx(term / on, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("key", list(HP))
def test_weights_are_finite_for_extreme_finite_log_ratios(key, dtype):
    lp = torch.tensor([[60.0, -60.0, 1e4], [-1e4, 30.0, 0.0]], dtype=dtype)
    out = build(key)(lp, torch.zeros_like(lp), torch.tensor([1.0, -1.0], dtype=dtype), torch.ones(2, 3))
    assert torch.isfinite(out.applied_seq_weight).all() and torch.isfinite(out.grad_seq_weight).all()
    assert all(math.isfinite(v) for v in out.metrics.values())


@pytest.mark.parametrize("key", list(HP))
def test_pooled_mean_and_variance_of_micro_batches_are_those_of_the_whole_step(key):
    g = torch.Generator().manual_seed(5)
    ratios = [torch.exp(0.4 * torch.randn(n, generator=g)).tolist() for n in (3, 1, 4, 2, 5, 2)]
    adv = [0.5, -1.0, 1.2, -0.3, 0.8, -2.0]
    obj = build(key)
    parts = [obj(*padded_batch(ratios[k : k + 2], adv[k : k + 2])) for k in (0, 2, 4)]
    pooled = pooled_metrics(sum(p.sums.double() for p in parts).tolist())
    for name in ("applied_seq_weight", "grad_seq_weight"):
        values = torch.cat([getattr(p, name) for p in parts]).double()
        assert pooled[f"{name}_mean"] == pytest.approx(values.mean().item(), rel=1e-5)
        assert pooled[f"{name}_var"] == pytest.approx(values.var(unbiased=False).item(), rel=1e-4, abs=1e-9)


# --- logged per step: beside the drift metric, split by stale and fresh steps ---------------------------------------


def _record(key: str) -> list[float]:
    out = build(key)(*padded_batch(RATIOS, ADV))
    return [*out.sums.double().tolist(), 1.5]  # COLUMNS: the objective's sums, then Σ entropy


def test_stale_steps_log_the_applied_weights_apart_from_fresh_ones():
    record = _record("sspo-atanlog")
    assert len(record) == len(COLUMNS) == len(SUMS) + 1
    stale, fresh, evaluation = step_metrics(record, 2), step_metrics(record, 0), step_metrics(record, None)
    for metric in keys.PHASE_METRICS:
        whole = keys.objective_key(metric)
        assert stale[keys.objective_key(metric, "stale")] == stale[whole]
        assert keys.objective_key(metric, "fresh") not in stale
        assert fresh[keys.objective_key(metric, "fresh")] == fresh[whole]
        assert keys.objective_key(metric, "stale") not in fresh
        assert not any(k.endswith(("_stale", "_fresh")) for k in evaluation)
    assert stale["objective/applied_seq_weight_var_stale"] == pytest.approx(((_sspo()[0][0] - _sspo()[0][1]) / 2) ** 2,
                                                                            rel=1e-4)  # fmt: skip
    assert stale[keys.DRIFT_VAR_STALE] == stale["objective/seq_weight_var"]  # the drift metric, as before
    assert set(METRICS) >= set(keys.PHASE_METRICS)


def test_objective_keys_name_only_known_phases_and_metrics():
    assert keys.objective_key("applied_seq_weight_var", keys.STALE) == "objective/applied_seq_weight_var_stale"
    with pytest.raises(ValueError, match="phase"):
        keys.objective_key("applied_seq_weight_var", "old")
    with pytest.raises(ValueError, match="metric"):
        keys.objective_key("clip_frac", keys.STALE)
