"""The one statistics module of the reports: effects over seeds, their intervals, tests and verdicts.

Used by the CPU study's claims table (``report.claims``, rules pre-registered in reports/cpu_study/protocol.md) and by
``sspo-exp report``'s paper-vs-ours cells (``report.paper``). The seed is the unit: a paired comparison pairs the
two methods' runs of one seed (same cold-started policy, same prompts).

- **Primary interval**: the Student t-interval of the mean over seeds, df = n − 1 (:func:`t_interval`). With n = 5
  its multiplier is t(0.975, 4) = 2.776, not 1.96: few seeds give wide intervals, as they should.
- **Primary test**: the two-sided paired t-test of "mean difference = 0", df = n − 1 (:func:`t_test_p`); within a
  claim the p-values of its comparisons are Holm-adjusted (:func:`holm`) and each comparison gets one of three
  :data:`VERDICTS` (:func:`decide`) at :data:`ALPHA`. ``tests/test_stats.py`` simulates this rule under the null at
  n = 5 and n = 10 (false-verdict rate <= 5 %) and against a large effect (it does decide).
- **Distribution-free check**: the exact two-sided sign-flip (paired permutation) test over all 2^n sign patterns
  (:func:`sign_flip_p`). Its smallest possible p is 2 / 2^n: 0.0625 at n = 5 (it can never reach 5 % there),
  0.002 at n = 10. Reported beside every verdict; not the decision rule.
- **Secondary**: the percentile bootstrap over seeds (``scipy.stats.bootstrap``, fixed generator seed so tables
  regenerate bit-identically). It under-covers at small n (about 80-85 % real coverage for a nominal 95 % at
  n = 5), so it never decides a verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95  #: confidence level of every interval
ALPHA = 0.05  #: family-wise error rate of the verdicts within one claim (Holm)
N_RESAMPLES = 9999  #: bootstrap resamples
SEED = 0  #: bootstrap generator seed (fixed: tables regenerate identically)
REPRODUCED, OPPOSITE, UNDECIDED = "reproduced", "opposite (significant)", "not distinguishable"
VERDICTS = (REPRODUCED, OPPOSITE, UNDECIDED)


@dataclass(frozen=True)
class Effect:
    """A mean over seeds with its t-interval (``low``, ``high``), paired t-test p (``p``), exact sign-flip p and
    percentile-bootstrap interval; ``ratio`` effects are on the ratio scale (geometric mean over seeds)."""

    estimate: float
    low: float
    high: float
    n: int
    p: float | None = None  #: two-sided paired t-test of "no effect" (df = n − 1); None for a plain mean
    p_sign_flip: float | None = None
    boot_low: float = math.nan
    boot_high: float = math.nan
    scale: str = "difference"  #: "difference" (a − b) | "ratio" (a / b, geometric mean) | "mean"

    @property
    def null(self) -> float:
        return 1.0 if self.scale == "ratio" else 0.0


def _finite_1d(values, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"{what} needs a non-empty 1-D array of finite values, got {values!r}")
    return x


def t_half_width(sd: float, n: int, level: float = LEVEL) -> float:
    """Half-width of the t-interval of a mean from a sample's sd (ddof = 1) and size: t(1 − (1 − level)/2, n − 1)·sd/√n.
    Needs n >= 2."""
    if n < 2:
        raise ValueError(f"a t-interval needs n >= 2 values, got n = {n}")
    return float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)) if sd > 0 else 0.0


def t_interval(values, level: float = LEVEL) -> tuple[float, float]:
    """Student t-interval of the mean of ``values`` (df = n − 1); raises for n < 2 (no interval exists)."""
    x = _finite_1d(values, "t_interval")
    half = t_half_width(float(x.std(ddof=1)) if len(x) > 1 else 0.0, len(x), level)
    return float(x.mean() - half), float(x.mean() + half)


def inside_t_interval(value: float, mean: float, sd: float, n: int, level: float = LEVEL) -> str:
    """``"inside"`` / ``"outside"``: does ``value`` lie in the t-interval of a mean over ``n`` seeds with sample sd
    ``sd``; ``"n < 2"`` when there is no interval (one seed, or none)."""
    if n < 2 or not math.isfinite(sd) or not math.isfinite(mean):
        return "n < 2"
    half = t_half_width(sd, n, level)
    return "inside" if mean - half - 1e-12 <= value <= mean + half + 1e-12 else "outside"


def t_test_p(differences) -> float:
    """Two-sided one-sample t-test of mean(d) = 0, df = n − 1 (the paired t-test on per-seed differences).
    n < 2: NaN (no test). All differences equal (no spread, t undefined): 1.0 if they are 0, else the exact sign-flip
    p of n equal non-zero differences, 2 / 2^n (only the two all-same-sign patterns reach the observed mean): a t-test
    would say 0, but n equal signs carry no more evidence than the sign test gives them (0.0625 at n = 5)."""
    return float(t_test_pvalues(_finite_1d(differences, "t_test_p")[None, :])[0])


def t_test_pvalues(differences) -> np.ndarray:
    """:func:`t_test_p` of each row of a finite [k, n] array (one family of paired differences per row)."""
    d = np.asarray(differences, dtype=float)
    k, n = d.shape
    if n < 2:
        return np.full(k, np.nan)
    mean, sd = d.mean(axis=1), d.std(axis=1, ddof=1)
    # no spread up to rounding (log ratios of proportional values differ by ~1e-16): t would be a rounding artefact;
    # a mean within rounding of 0 is no effect (mixed-sign noise around 0 must not read as n equal signs)
    scale = np.maximum(1.0, np.abs(d).max(axis=1))
    flat, zero = sd <= 1e-12 * scale, np.abs(mean) <= 1e-12 * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / math.sqrt(n))
    p = 2 * stats.t.sf(np.abs(t), n - 1)
    return np.where(flat, np.where(zero, 1.0, 2.0 / 2.0**n), p)


def sign_flip_p(differences) -> float:
    """Exact two-sided paired permutation test of mean(d) = 0: every one of the 2^n sign patterns (n ≤ 20)."""
    d = np.asarray(differences, dtype=float)
    if not 1 <= len(d) <= 20:
        raise ValueError(f"sign_flip_p takes 1..20 paired differences, got {len(d)}")
    signs = np.array(np.meshgrid(*[[1.0, -1.0]] * len(d))).reshape(len(d), -1)  # [n, 2^n]
    means = np.abs((d[:, None] * signs).mean(axis=0))
    return float(np.mean(means >= abs(d.mean()) - 1e-12 * max(1.0, abs(d.mean()))))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence): with the m finite p-values
    sorted p_(1) ≤ … ≤ p_(m), adj_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)); NaN stays NaN and does not count in
    m. A comparison is significant at α when its adjusted p ≤ α. (Written out: five lines, tested by hand, rather
    than a statsmodels dependency for one function.)"""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled) if m else scaled
    return out


def decide(estimates, nulls, pvalues, paper_higher: bool, alpha: float = ALPHA) -> tuple[np.ndarray, list[str]]:
    """The verdict rule of one claim's family of comparisons: Holm-adjust the t-test p-values; a comparison whose
    adjusted p ≤ ``alpha`` is ``reproduced`` when its estimate lies on the paper's side of its null (above it when
    ``paper_higher``), else ``opposite (significant)``; every other (and every untestable, p NaN) comparison is
    ``not distinguishable``. Returns (adjusted p-values, verdicts)."""
    adjusted = holm(pvalues)
    verdicts = []
    for est, null, q in zip(estimates, nulls, adjusted):
        if not (np.isfinite(q) and q <= alpha) or est == null:
            verdicts.append(UNDECIDED)
        else:
            verdicts.append(REPRODUCED if (est > null) == paper_higher else OPPOSITE)
    return adjusted, verdicts


def bootstrap_ci(values, statistic=np.mean, level: float = LEVEL, n_resamples: int = N_RESAMPLES,
                 seed: int = SEED) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap interval of ``statistic`` (vectorised over ``axis``) of 1-D ``values``.
    One value, or all values equal, gives the degenerate interval (v, v)."""
    x = _finite_1d(values, "bootstrap_ci")
    if len(x) == 1 or np.all(x == x[0]):
        v = float(statistic(x))
        return v, v
    res = stats.bootstrap((x,), statistic, n_resamples=n_resamples, confidence_level=level, method="percentile",
                          vectorized=True, rng=np.random.default_rng(seed))  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_effect(values) -> Effect:
    """The mean over seeds with its t-interval (NaN for one seed) and bootstrap interval."""
    x = _finite_1d(values, "mean_effect")
    low, high = t_interval(x) if len(x) > 1 else (math.nan, math.nan)
    b_low, b_high = bootstrap_ci(x)
    return Effect(float(x.mean()), low, high, len(x), None, None, b_low, b_high, "mean")


def paired_difference(a, b) -> Effect:
    """mean over seeds of a_s − b_s (same seeds, same order): t-interval, paired t-test, sign-flip p, bootstrap."""
    return _effect(_paired(a, b), "difference", lambda v: v)


def paired_ratio(a, b) -> Effect:
    """Geometric mean over seeds of a_s / b_s (positive values): every statistic on the log ratios, the estimate
    and intervals exponentiated back to the ratio scale."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("paired_ratio needs positive values (e.g. variances); got a zero or negative one")
    return _effect(_paired(np.log(a), np.log(b)), "ratio", math.exp)


def _effect(d: np.ndarray, scale: str, back) -> Effect:
    low, high = t_interval(d) if len(d) > 1 else (math.nan, math.nan)
    b_low, b_high = bootstrap_ci(d)
    return Effect(back(float(d.mean())), back(low), back(high), len(d), t_test_p(d), sign_flip_p(d),
                  back(b_low), back(b_high), scale)  # fmt: skip


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
