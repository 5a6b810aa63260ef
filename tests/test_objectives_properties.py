"""Property tests: finiteness for any finite input (fp32 and bf16), masks, empty responses."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sspo_exp.objectives import make_objective

from test_objectives import HP, build

KEYS = list(HP)
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def batches(draw):
    B = draw(st.integers(1, 4))
    T = draw(st.integers(1, 6))
    n = B * T
    lp = draw(st.lists(finite, min_size=n, max_size=n))
    old = draw(st.lists(finite, min_size=n, max_size=n))
    adv = draw(st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=B, max_size=B))
    mask = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return (
        torch.tensor(lp).reshape(B, T),
        torch.tensor(old).reshape(B, T),
        torch.tensor(adv),
        torch.tensor(mask).reshape(B, T),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("key", KEYS)
@settings(max_examples=40, deadline=None)
@given(batch=batches())
def test_loss_and_gradient_finite(key, dtype, batch):
    lp, old, adv, mask = batch
    lp = lp.to(dtype).requires_grad_()
    out = build(key)(lp, old.to(dtype), adv.to(dtype), mask)
    (grad,) = torch.autograd.grad(out.loss, lp)
    assert torch.isfinite(out.loss)
    assert torch.isfinite(grad.float()).all()
    assert all(map(lambda v: v == v and abs(v) != float("inf"), out.metrics.values())), out.metrics
    assert torch.isfinite(out.applied_seq_weight).all() and torch.isfinite(out.grad_seq_weight).all()
    assert (out.applied_seq_weight >= 0).all() and (out.grad_seq_weight >= 0).all()  # weights, never negative


@pytest.mark.parametrize("key", KEYS)
@settings(max_examples=25, deadline=None)
@given(batch=batches(), junk=finite)
def test_padding_changes_nothing(key, batch, junk):
    lp, old, adv, mask = batch
    lp2, old2 = lp.clone(), old.clone()
    lp2[~mask] = junk
    old2[~mask] = -junk
    a, b = lp.clone().requires_grad_(), lp2.clone().requires_grad_()
    obj = build(key)
    out_a, out_b = obj(a, old, adv, mask), obj(b, old2, adv, mask)
    ga, gb = torch.autograd.grad(out_a.loss, a)[0], torch.autograd.grad(out_b.loss, b)[0]
    torch.testing.assert_close(out_a.loss, out_b.loss)
    torch.testing.assert_close(ga, gb)
    assert torch.all(ga[~mask] == 0)
    assert out_a.metrics == pytest.approx(out_b.metrics)
    torch.testing.assert_close(out_a.applied_seq_weight, out_b.applied_seq_weight)
    torch.testing.assert_close(out_a.grad_seq_weight, out_b.grad_seq_weight)


@pytest.mark.parametrize("key", KEYS)
def test_float_and_bool_masks_agree(key):
    torch.manual_seed(0)
    lp, old, adv = torch.randn(3, 5), torch.randn(3, 5), torch.randn(3)
    mask = torch.rand(3, 5) > 0.4
    obj = build(key)
    torch.testing.assert_close(obj(lp, old, adv, mask).loss, obj(lp, old, adv, mask.float()).loss)


@pytest.mark.parametrize("key", KEYS)
def test_empty_response_contributes_nothing(key):
    """A response with no tokens adds 0 to Σ_i but still counts in 1/G (the paper's normalisation)."""
    torch.manual_seed(1)
    lp, old, adv = torch.randn(3, 4), torch.randn(3, 4), torch.tensor([0.5, -2.0, 1.5])
    mask = torch.rand(3, 4) > 0.3
    mask[:2, 0] = True
    mask[2] = False
    obj = build(key)
    full = obj(lp, old, adv, mask).loss
    without = obj(lp[:2], old[:2], adv[:2], mask[:2]).loss
    torch.testing.assert_close(full, without * 2 / 3)
    everything_empty = obj(lp.requires_grad_(), old, adv, torch.zeros(3, 4, dtype=torch.bool))
    assert everything_empty.loss.item() == 0.0
    assert torch.autograd.grad(everything_empty.loss, lp)[0].abs().sum() == 0


def test_extreme_log_ratios_keep_sspo_bounded():
    """|log ρ| = 1e3: SSPO's sequence weight stays within the gate's bounds, GRPO's guard keeps it finite."""
    lp = torch.tensor([[1e3, -1e3, 0.0], [1e3, 1e3, 1e3]], requires_grad=True)
    old = torch.zeros(2, 3)
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 3, dtype=torch.bool)
    for obj in (make_objective("sspo", gate="atanlog", tau_pos=0.2, tau_neg=0.3), make_objective("grpo")):
        out = obj(lp, old, adv, mask)
        (g,) = torch.autograd.grad(out.loss, lp)
        assert torch.isfinite(out.loss) and torch.isfinite(g).all()
    out = make_objective("sspo", gate="atanlog", tau_pos=0.2, tau_neg=0.3)(lp, old, adv, mask)
    # response 1: every token at log ρ = 1e3 -> S = exp(0.3·atan(1e3/0.3)) ≈ exp(0.3·π/2)
    assert out.loss.item() == pytest.approx(-(1.0 - torch.exp(torch.tensor(0.3 * torch.pi / 2)).item()) / 2 * 1, rel=1e-3)
