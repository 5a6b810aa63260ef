"""Effect sizes and intervals of the claims tables (sspo_exp/report/stats.py), against known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sspo_exp.report import stats


def test_bootstrap_interval_of_a_mean_matches_the_normal_theory_interval_for_a_large_sample():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=400)
    low, high = stats.bootstrap_ci(x)
    half = 1.959964 * x.std(ddof=0) / math.sqrt(len(x))  # the bootstrap's SE is the plug-in (ddof=0) one
    assert low == pytest.approx(x.mean() - half, abs=0.04 * half * 2)
    assert high == pytest.approx(x.mean() + half, abs=0.04 * half * 2)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    """300 samples of n = 40 from a known normal: the 95% interval must contain μ in 95% ± 4% (binomial 3σ ≈ 3.8%)
    of them. A 90% or a 99% interval, or a standard-deviation band instead of a standard-error one, fails."""
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(300):
        low, high = stats.bootstrap_ci(rng.normal(10.0, 3.0, size=40), n_resamples=2000)
        hits += low <= 10.0 <= high
    assert 0.91 <= hits / 300 <= 0.99


def test_bootstrap_is_reproducible_and_degenerate_inputs_are_exact():
    x = [0.1, 0.4, 0.2, 0.9, 0.3]
    assert stats.bootstrap_ci(x) == stats.bootstrap_ci(x)
    assert stats.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert stats.bootstrap_ci([5.0]) == (5.0, 5.0)
    with pytest.raises(ValueError, match="finite"):
        stats.bootstrap_ci([1.0, float("nan")])


def test_sign_flip_p_is_the_exact_permutation_p_value():
    assert stats.sign_flip_p([1, 2, 3, 4, 5]) == pytest.approx(2 / 32)  # the smallest 5-seed p: 2 of 32 patterns
    assert stats.sign_flip_p([1, -1]) == 1.0
    # d = (3, 1, -1), Σ = 3: the 8 signed sums ±3±1±1 are 5, 3, 3, 1, -1, -3, -3, -5; six have |Σ| >= 3
    assert stats.sign_flip_p([3.0, 1.0, -1.0]) == pytest.approx(6 / 8)


def test_paired_effects_resample_seeds_and_report_on_their_scale():
    a, b = np.array([2.0, 4.0, 8.0, 4.0, 2.0]), np.array([1.0, 1.0, 2.0, 2.0, 1.0])
    ratio = stats.paired_ratio(a, b)
    assert ratio.estimate == pytest.approx(math.exp(np.mean(np.log(a / b))))
    assert ratio.low <= ratio.estimate <= ratio.high and ratio.excludes_null and ratio.scale == "ratio"
    assert ratio.p == pytest.approx(2 / 32)
    diff = stats.paired_difference(b, a)
    assert diff.estimate == pytest.approx(np.mean(b - a)) and diff.high < 0 and diff.excludes_null
    same = stats.paired_difference(a, a)
    assert (same.estimate, same.low, same.high, same.p) == (0.0, 0.0, 0.0, 1.0) and not same.excludes_null
    with pytest.raises(ValueError, match="same length"):
        stats.paired_difference([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="positive"):
        stats.paired_ratio([1.0, 0.0], [1.0, 1.0])


def test_prob_best_is_one_for_a_dominant_arm_and_splits_ties():
    scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.2, 0.5], [0.95, 0.3, 0.4]])
    assert stats.prob_best(scores).tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert stats.prob_best(scores, higher_is_better=False)[1] == pytest.approx(1.0)
    assert stats.prob_best(np.ones((4, 2))).tolist() == pytest.approx([0.5, 0.5])
    p = stats.prob_best(np.random.default_rng(0).normal(size=(5, 4)))
    assert p.sum() == pytest.approx(1.0)
