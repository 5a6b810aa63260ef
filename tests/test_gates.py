"""The paper's gate-design conditions (§3 "Gate Design", SPEC.md), checked numerically for all five gates."""

from __future__ import annotations

import math

import pytest
import torch

from sspo_exp.objectives import GATES, log_gate
from sspo_exp.objectives.gates import clip_log_f, clip_weight, sapo_log_f, sapo_weight

from objective_reference import GATE_F, GATE_W

TAUS = [0.2, 0.3, 0.5, 0.6, 2.0]
# ρ from 1e-6 to 1e6, dense around 1, with ρ = 1 exactly on the grid
LOG_RHO = torch.cat([torch.linspace(-13.8, 13.8, 20000, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
LOG_RHO = LOG_RHO.sort().values
assert int((LOG_RHO == 0).sum()) == 1


def params(gate):
    return [None] if not GATES[gate].has_temperature else TAUS


def tau_of(gate, tau):
    return None if tau is None else torch.tensor(tau, dtype=torch.float64)


def autograd_weight(gate, log_rho, tau):
    x = log_rho.clone().requires_grad_()
    (w,) = torch.autograd.grad(GATES[gate].log_f(x, tau_of(gate, tau)).sum(), x)
    return w


@pytest.mark.parametrize("gate", list(GATES))
def test_f_at_one_is_one_and_derivative_one(gate):
    """(ii): f(1) = 1 and f'(1) = 1 (f' = f·w/ρ, so at ρ = 1 this is w(1) = d log f/d log ρ = 1)."""
    for tau in params(gate):
        zero = torch.zeros(1, dtype=torch.float64)
        assert GATES[gate].log_f(zero, tau_of(gate, tau)).item() == pytest.approx(0.0, abs=1e-12)
        assert autograd_weight(gate, zero, tau).item() == pytest.approx(1.0, abs=1e-12)
        # and in the ratio domain, by central finite differences on SPEC.md's f
        h = 1e-6
        fprime = (GATE_F[gate](1 + h, tau) - GATE_F[gate](1 - h, tau)) / (2 * h)
        assert GATE_F[gate](1.0, tau) == pytest.approx(1.0)
        assert fprime == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("gate", list(GATES))
def test_weight_is_d_log_f_d_log_rho_and_matches_spec_table(gate):
    """The closed-form w of each gate = autograd of log f = SPEC.md's ratio-domain column."""
    for tau in params(gate):
        lr = torch.linspace(-6, 6, 241, dtype=torch.float64)
        w = GATES[gate].weight(lr, tau_of(gate, tau))
        torch.testing.assert_close(w, autograd_weight(gate, lr, tau), rtol=1e-9, atol=1e-12)
        spec = torch.tensor([GATE_W[gate](math.exp(v), tau) for v in lr.tolist()], dtype=torch.float64)
        torch.testing.assert_close(w, spec, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gate", list(GATES))
def test_f_non_decreasing_and_c1(gate):
    """(iv) f non-decreasing: w >= 0 everywhere; (i) C¹: w has no jumps on a fine grid."""
    for tau in params(gate):
        lf = GATES[gate].log_f(LOG_RHO, tau_of(gate, tau))
        assert torch.all(torch.diff(lf) >= -1e-15)
        w = GATES[gate].weight(LOG_RHO, tau_of(gate, tau))
        assert torch.all(w >= 0)
        # w is Lipschitz-small between neighbours 1.4e-3 apart in log ρ (a jump would show as an O(1) step)
        assert torch.diff(w).abs().max() < 0.05


@pytest.mark.parametrize("gate", list(GATES))
def test_condition_iii(gate):
    """(iii.1): f'/f = w/ρ peaks at ρ = 1 and decays to 0; (iii.2): w peaks at 1, decays to 0, and w(0) = 0."""
    cond = GATES[gate].condition
    for tau in params(gate):
        w = GATES[gate].weight(LOG_RHO, tau_of(gate, tau))
        curve = w / torch.exp(LOG_RHO) if cond == "iii.1" else w
        one = int((LOG_RHO == 0).nonzero()[0])
        assert int(curve.argmax()) == one, f"{gate} τ={tau}: peak not at ρ=1"
        assert curve[one].item() == pytest.approx(1.0)
        # unimodal: non-decreasing up to ρ=1, non-increasing after
        assert torch.all(torch.diff(curve[: one + 1]) >= -1e-12)
        assert torch.all(torch.diff(curve[one:]) <= 1e-12)
        assert curve[-1].item() < 0.05, "must decay to 0 as ρ → ∞"
        if cond == "iii.2":
            tiny = GATES[gate].weight(torch.tensor([-700.0], dtype=torch.float64), tau_of(gate, tau))
            assert tiny.item() < 1e-2, "w(0) = 0"


def test_conditions_are_the_papers_grouping():
    """§3: expsig, expatan satisfy (iii.1); gumbel, atanlog, siglog satisfy (iii.2)."""
    assert {g for g, s in GATES.items() if s.condition == "iii.1"} == {"expsig", "expatan"}
    assert {g for g, s in GATES.items() if s.condition == "iii.2"} == {"gumbel", "atanlog", "siglog"}


def test_iii1_gates_do_not_satisfy_iii2():
    """The grouping is not vacuous: for expatan, w = ρ f'/f does not peak at ρ = 1."""
    w = GATES["expatan"].weight(LOG_RHO, torch.tensor(0.5, dtype=torch.float64))
    assert LOG_RHO[int(w.argmax())].item() > 0.05


def test_log_gate_public_api():
    lr = torch.tensor([-1.0, 0.0, 2.0])
    torch.testing.assert_close(log_gate("atanlog", lr, 0.2), 0.2 * torch.atan(lr / 0.2))
    torch.testing.assert_close(log_gate("gumbel", lr), 1 - torch.exp(1 - torch.exp(lr)))
    with pytest.raises(ValueError, match="no temperature"):
        log_gate("gumbel", lr, 0.2)
    with pytest.raises(ValueError, match="tau > 0"):
        log_gate("siglog", lr)
    with pytest.raises(ValueError, match="expsig, expatan, gumbel, atanlog, siglog"):
        log_gate("cauchy", lr, 1.0)


def test_clip_and_sapo_gates():
    lr = torch.log(torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64))
    pos = torch.tensor([True, True, True])
    torch.testing.assert_close(torch.exp(clip_log_f(lr, pos, 0.2, 0.28)), torch.tensor([0.5, 1.0, 1.28], dtype=torch.float64))
    torch.testing.assert_close(torch.exp(clip_log_f(lr, ~pos, 0.2, 0.28)), torch.tensor([0.8, 1.0, 1.5], dtype=torch.float64))
    torch.testing.assert_close(clip_weight(lr, pos, 0.2, 0.28), torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
    tau = torch.tensor(3.0, dtype=torch.float64)
    x = lr.clone().requires_grad_()
    (g,) = torch.autograd.grad(sapo_log_f(x, tau).sum(), x)
    torch.testing.assert_close(sapo_weight(lr, tau), g)
    # fSoft(ρ) = σ(τ(ρ−1))·4/τ
    rho = torch.exp(lr)
    torch.testing.assert_close(torch.exp(sapo_log_f(lr, tau)), torch.sigmoid(tau * (rho - 1)) * 4 / tau)
