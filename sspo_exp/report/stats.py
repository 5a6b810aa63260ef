"""Effect sizes with 95% intervals over seeds, for the claims tables (reports/cpu_study/).

Every interval is a percentile bootstrap over seeds (``scipy.stats.bootstrap``, a fixed generator seed, so a table
regenerates bit-identically); every paired comparison resamples *seeds*, keeping each seed's two runs together
(both arms start from the same cold-started policy and see the same prompts, so the seed is the unit). Each
effect also carries the exact two-sided sign-flip (paired permutation) test over seeds, whose smallest possible
p-value is 2 / 2^n: with 5 seeds it is 0.0625, so no 5-seed comparison can be "significant at 5%" by that test,
and a percentile bootstrap over 5 values is known to be too narrow (about 80-85% real coverage for a nominal
95%). Both facts are printed beside every claims table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95  #: confidence level of every interval
N_RESAMPLES = 9999  #: bootstrap resamples
SEED = 0  #: bootstrap generator seed (fixed: tables regenerate identically)


@dataclass(frozen=True)
class Effect:
    """A mean over seeds with its bootstrap interval; ``p`` is the exact sign-flip test of "mean = 0" (paired
    effects only); ``ratio`` effects are reported back on the ratio scale (geometric mean over seeds)."""

    estimate: float
    low: float
    high: float
    n: int
    p: float | None = None
    scale: str = "difference"  #: "difference" (a − b) | "ratio" (a / b, geometric mean) | "mean"

    @property
    def excludes_null(self) -> bool:
        """The interval lies wholly on one side of the null (0 for differences, 1 for ratios)."""
        null = 1.0 if self.scale == "ratio" else 0.0
        return self.low > null or self.high < null


def bootstrap_ci(values, statistic=np.mean, level: float = LEVEL, n_resamples: int = N_RESAMPLES,
                 seed: int = SEED) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap interval of ``statistic`` (vectorised over ``axis``) of 1-D ``values``.
    One value, or all values equal, gives the degenerate interval (v, v)."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D array of finite values, got {values!r}")
    if len(x) == 1 or np.all(x == x[0]):
        v = float(statistic(x))
        return v, v
    res = stats.bootstrap((x,), statistic, n_resamples=n_resamples, confidence_level=level, method="percentile",
                          vectorized=True, rng=np.random.default_rng(seed))  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def sign_flip_p(differences) -> float:
    """Exact two-sided paired permutation test of mean(d) = 0: every one of the 2^n sign patterns (n ≤ 20)."""
    d = np.asarray(differences, dtype=float)
    if not 1 <= len(d) <= 20:
        raise ValueError(f"sign_flip_p takes 1..20 paired differences, got {len(d)}")
    signs = np.array(np.meshgrid(*[[1.0, -1.0]] * len(d))).reshape(len(d), -1)  # [n, 2^n]
    means = np.abs((d[:, None] * signs).mean(axis=0))
    return float(np.mean(means >= abs(d.mean()) - 1e-12 * max(1.0, abs(d.mean()))))


def mean_effect(values) -> Effect:
    """The mean over seeds with its bootstrap interval."""
    x = np.asarray(values, dtype=float)
    low, high = bootstrap_ci(x)
    return Effect(float(x.mean()), low, high, len(x), None, "mean")


def paired_difference(a, b) -> Effect:
    """mean over seeds of a_s − b_s (same seeds, same order), interval and sign-flip p."""
    d = _paired(a, b)
    low, high = bootstrap_ci(d)
    return Effect(float(d.mean()), low, high, len(d), sign_flip_p(d), "difference")


def paired_ratio(a, b) -> Effect:
    """Geometric mean over seeds of a_s / b_s (positive values): the mean log ratio and its interval, exponentiated."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("paired_ratio needs positive values (e.g. variances); got a zero or negative one")
    d = _paired(np.log(a), np.log(b))
    low, high = bootstrap_ci(d)
    return Effect(math.exp(d.mean()), math.exp(low), math.exp(high), len(d), sign_flip_p(d), "ratio")


def prob_best(scores, higher_is_better: bool = True, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``scores`` [seeds, arms]: for each arm, the share of bootstrap resamples of the seeds (rows, kept whole)
    in which that arm has the best mean (ties split evenly). A measure of how settled a ranking is."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 2 or not np.all(np.isfinite(s)):
        raise ValueError(f"prob_best needs a finite [seeds, arms] array with >= 2 arms, got shape {s.shape}")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, s.shape[0], size=(n_resamples, s.shape[0]))
    means = s[rows].mean(axis=1)  # [resamples, arms]
    if not higher_is_better:
        means = -means
    best = means == means.max(axis=1, keepdims=True)
    return (best / best.sum(axis=1, keepdims=True)).mean(axis=0)


def _paired(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired values need two 1-D arrays of the same length (one value per seed), got {a.shape} and {b.shape}")
    return a - b
