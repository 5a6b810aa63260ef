"""The CPU study's regimes (reports/cpu_study/protocol.md): the primary one, where claims (a)-(d) are tested, and the
sensitivity regimes, where (a)-(c) are tested again under the same rule so a reader sees whether a verdict is about
SSPO or about the regime.

A regime is a learning rate and SSPO's (atanlog) temperature pair at μ = 4. Its runs: the four other methods at
their default configurations at that learning rate, and SSPO atanlog at the regime's pair (the SSPO "default" of
the regime); the primary regime also keeps the other gates (claim (d)). The temperature regimes share the primary
regime's runs of the four other methods: only SSPO's temperatures change. The pairs here are the ones of
``sweeps/cpu_study_claims.yaml``, ``cpu_study_tau.yaml`` and ``cpu_study_lr.yaml`` (a test checks they agree).

Each regime also says whether token entropy collapses at all (final / initial < :data:`COLLAPSE`), per method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sspo_exp.report.claims import CLAIM_COLUMNS, claim_verdicts, claims, effect_text, p_text
from sspo_exp.report.study_data import CLAIM_MU, METHODS
from sspo_exp.report.study_format import method_label

COLLAPSE = 0.5  #: entropy "collapses" in a run when its last-quarter entropy is below half its step-1 entropy
SEEDS = range(10)  #: the protocol's seeds (a pilot seed, e.g. 100, enters no regime)


@dataclass(frozen=True)
class Regime:
    key: str
    title: str
    learning_rate: float
    sspo_tau: tuple[float, float]  #: SSPO atanlog's (τ_neg, τ_pos) in this regime
    primary: bool = False  #: the primary regime: claims (a)-(d); a sensitivity regime tests (a)-(c)


PAPER_TAU = (0.3, 0.2)
REGIMES = (
    Regime("primary", "primary: learning rate 1e-4, SSPO τ = (0.3, 0.2)", 1e-4, PAPER_TAU, primary=True),
    Regime("lr_5e-5", "(i) learning rate 5e-5, every method", 5e-5, PAPER_TAU),
    Regime("swapped_tau", "(ii) SSPO τ swapped to (0.2, 0.3)", 1e-4, (0.2, 0.3)),
    Regime("rescaled_tau", "(iii) SSPO τ rescaled to this model's log-ratio scale, (0.8, 0.53)", 1e-4, (0.8, 0.53)),
)
REGIME_COLUMNS = ["regime", *CLAIM_COLUMNS]
COLLAPSE_COLUMNS = ["regime", "method", "n_runs", "entropy_ratio_mean", "entropy_ratio_min", "collapsed"]


def sspo_setting(tau: tuple[float, float]) -> str:
    """``study_data.setting`` of SSPO atanlog at ``tau``: a regime's SSPO configuration."""
    return f"sspo-atanlog τ{_g(tau[0])}/{_g(tau[1])}"


def regime_metrics(m: pd.DataFrame, regime: Regime) -> pd.DataFrame:
    """The regime's rows of ``study_data.run_metrics`` (computed once for all regimes): μ = 4, its learning rate,
    the protocol's seeds, ``default`` marking each method's configuration in this regime (SSPO's at the regime's
    pair; the other methods' defaults do not move). Atanlog runs at another regime's pair never enter: the primary
    regime keeps the other gates (and the grid's second pair) for claim (d), not the sensitivity regimes' SSPO runs."""
    if m.empty:
        return m
    m = m[(m["mu"] == CLAIM_MU) & m["lr"].apply(lambda lr: _close(lr, regime.learning_rate)) & m["seed"].isin(SEEDS)]
    twice = m[m.duplicated(["setting", "seed"], keep=False)]
    if len(twice):  # a rerun beside the stored run: pairing would silently pick one (or cross-pair)
        r = twice.iloc[0]
        raise ValueError(f"CPU study, regime {regime.key}: {len(twice)} runs share a setting and seed, e.g. "
                         f"{r['setting']} seed {r['seed']} ({', '.join(twice['run_id'].head(2))}): keep one")
    sspo = m["method"] == "sspo"
    m = m.assign(default=m["default"].where(~sspo, m["setting"] == sspo_setting(regime.sspo_tau)))
    others = {sspo_setting(r.sspo_tau) for r in REGIMES if r.sspo_tau != regime.sspo_tau}
    keep = m["default"] | (regime.primary & sspo & ~m["setting"].isin(others))
    return m[keep].reset_index(drop=True)


def has_runs(m: pd.DataFrame) -> bool:
    """The regime has a finished SSPO run at its own configuration (else it is not published)."""
    return bool(len(m)) and bool((m["default"] & (m["method"] == "sspo")).any())


def regime_claims(m: pd.DataFrame, regime: Regime) -> pd.DataFrame:
    """The claims table of one regime (``report.claims``), with the regime's key in front."""
    table = claims(m, gates=regime.primary)
    table.insert(0, "regime", regime.key)
    return table


def collapse(m: pd.DataFrame, regime: Regime) -> pd.DataFrame:
    """Per method (its configuration in the regime): runs, mean and smallest final/initial entropy ratio, and how
    many runs collapse (ratio < :data:`COLLAPSE`)."""
    rows = []
    d = m[m["default"]]
    for method in METHODS:
        r = d.loc[d["method"] == method, "entropy_ratio"].dropna()
        rows.append({"regime": regime.key, "method": method, "n_runs": len(r),
                     "entropy_ratio_mean": r.mean() if len(r) else math.nan,
                     "entropy_ratio_min": r.min() if len(r) else math.nan,
                     "collapsed": int((r < COLLAPSE).sum())})  # fmt: skip
    return pd.DataFrame(rows, columns=COLLAPSE_COLUMNS)


def all_regimes(m: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claims of every regime that has runs, and their entropy-collapse table (``m``: ``run_metrics``)."""
    tables, falls = [], []
    for regime in REGIMES:
        r = regime_metrics(m, regime)
        if not has_runs(r):
            continue
        tables.append(regime_claims(r, regime))
        falls.append(collapse(r, regime))
    if not tables:
        return pd.DataFrame(columns=REGIME_COLUMNS), pd.DataFrame(columns=COLLAPSE_COLUMNS)
    return pd.concat(tables, ignore_index=True), pd.concat(falls, ignore_index=True)


REGIMES_NOTE = (
    "Each regime is tested under the primary rule (protocol.md: paired two-sided t-test over seeds, Holm within each "
    "claim's family, α = 0.05). A sensitivity regime can say whether a primary verdict holds away from the primary "
    "regime; it never replaces it. Primary rows only; every row (secondary metrics, sign-flip p, bootstrap) is in "
    "regimes.csv. Entropy collapse: last-quarter entropy below half of step 1's.")


def regimes_markdown(table: pd.DataFrame, falls: pd.DataFrame, banner: str = "") -> str:
    lines = [banner, ""] if banner else []
    for regime in REGIMES:
        t = table[(table["regime"] == regime.key) & (table["role"] == "primary")]
        if t.empty:
            continue
        lines += [f"## {regime.title}", "", "| claim | comparison | estimate [95% t-CI] | seeds | p (Holm) | verdict |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['claim']} | {r['comparison']} | {effect_text(r)} | {r['n_seeds']} | {p_text(r['p_holm'])} | "
                  f"{r['verdict']} |" for _, r in t.iterrows()]  # fmt: skip
        lines += ["", "Per claim (reproduced only against every comparator): "
                  + "; ".join(f"{c}: **{v}**" for c, v in claim_verdicts(t).items()) + "."]
        f = falls[falls["regime"] == regime.key]
        cells = [f"{method_label(r['method'])} {r['entropy_ratio_mean']:.2f} (min {r['entropy_ratio_min']:.2f}; "
                 f"{r['collapsed']}/{r['n_runs']} collapse)" for _, r in f.iterrows() if r["n_runs"]]  # fmt: skip
        lines += ["", "Final / initial entropy, mean over runs: " + "; ".join(cells) + ".", ""]
    lines += [REGIMES_NOTE]
    return "\n".join(lines).rstrip("\n") + "\n"


def _close(a, b) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-6)
    except (TypeError, ValueError):
        return False


def _g(x: float) -> str:
    return f"{float(x):g}"
