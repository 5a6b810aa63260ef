"""The CPU study's claims table: the paper's claims (a)-(d) tested as reports/cpu_study/protocol.md pre-registers.

One comparator rule for every claim: **the paper's method against each alternative it claims to beat** — SSPO
(atanlog, τ = 0.3/0.2) against each of GRPO, GSPO, GMPO and SAPO for (a)-(c), atanlog against each of the four
other gates for (d) — each at its default configuration, paired by seed. No comparator is picked after seeing the
data (the first version's "best other gate" was such a pick). A *family* is one claim and one metric; its
comparisons are Holm-adjusted together; each claim has one primary family, the rest are secondary (reported with
the same rule, not counted as the claim's test). Statistics: ``sspo_exp.report.stats`` (paired t-interval, paired
t-test, Holm, exact sign-flip p, bootstrap as a secondary interval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sspo_exp.report import stats
from sspo_exp.report.study_data import CLAIM_MU, paired
from sspo_exp.report.study_format import tex

COMPARATORS = ["grpo", "gspo", "gmpo", "sapo"]  #: (a)-(c): SSPO against each
OTHER_GATES = ["expsig", "expatan", "siglog", "gumbel"]  #: (d): atanlog against each
FIRST_PAIR = "τ0.3/0.2"  #: the grid's first SSPO temperature pair (the gates' defaults)


@dataclass(frozen=True)
class Family:
    """One claim measured by one per-run quantity: its comparisons are Holm-adjusted together."""

    claim: str
    quantity: str
    column: str  #: a column of ``study_data.run_metrics`` (absent: the runs did not log it -> "no data")
    ratio: bool  #: compare as a geometric-mean ratio (positive quantities spanning a range) or a difference
    paper_higher: bool  #: the paper says SSPO's value is higher (else lower)
    primary: bool


FAMILIES = [
    Family("(a) applied importance-weight variance lower", "Var of the weight each objective applies, stale steps",
           "applied_var_stale", ratio=True, paper_higher=False, primary=True),
    Family("(a) applied importance-weight variance lower", "Var of the UNGATED ratio s_i, stale steps (policy drift, "
           "not the applied weight)", "var_stale", ratio=True, paper_higher=False, primary=False),
    Family("(b) entropy falls less", "final / initial token entropy", "entropy_ratio", ratio=True,
           paper_higher=True, primary=True),
    Family("(c) higher accuracy and reward", "held-out accuracy after RL (pts)", "acc", ratio=False,
           paper_higher=True, primary=True),
    Family("(c) higher accuracy and reward", "reward, last quarter of steps", "reward", ratio=False,
           paper_higher=True, primary=False),
]  # fmt: skip
D_CLAIM = "(d) atanlog is the best gate"
CLAIM_COLUMNS = ["claim", "role", "comparison", "quantity", "effect", "estimate", "ci_low", "ci_high", "n_seeds", "p_t",
                 "p_holm", "p_sign_flip", "boot_low", "boot_high", "verdict", "note"]  # fmt: skip


def family_rows(family: Family, pairs: list[tuple[str, np.ndarray, np.ndarray]], quantity: str,
                note: str = "") -> list[dict]:  # fmt: skip
    """One row per comparison ``(label, ours per seed, theirs per seed)``, verdicts by ``stats.decide`` over the
    family (Holm); a comparison with no common seed says "no data" and takes no part in the correction."""
    effects = [(label, _effect(x, y, family.ratio)) for label, x, y in pairs]
    tested = [(label, e) for label, e in effects if e is not None]
    adjusted, verdicts = stats.decide([e.estimate for _, e in tested], [e.null for _, e in tested],
                                      [math.nan if e.p is None else e.p for _, e in tested], family.paper_higher)
    decided = {label: (q, v) for (label, _), q, v in zip(tested, adjusted, verdicts)}
    role = "primary" if family.primary else "secondary"
    rows = []
    for label, e in effects:
        base = {"claim": family.claim, "role": role, "comparison": label, "quantity": quantity, "note": note}
        if e is None:
            rows.append({**base, "effect": "", "n_seeds": 0, "verdict": "no data"})
            continue
        q, v = decided[label]
        rows.append({**base, "effect": e.scale, "estimate": e.estimate, "ci_low": e.low, "ci_high": e.high,
                     "n_seeds": e.n, "p_t": e.p, "p_holm": q, "p_sign_flip": e.p_sign_flip, "boot_low": e.boot_low,
                     "boot_high": e.boot_high, "verdict": v})  # fmt: skip
    return rows


def _effect(x: np.ndarray, y: np.ndarray, ratio: bool) -> stats.Effect | None:
    if not len(x):
        return None
    if ratio:
        return stats.paired_ratio(x, y) if np.all(x > 0) and np.all(y > 0) else None
    return stats.paired_difference(x, y)


def claims(m: pd.DataFrame, mu: int = CLAIM_MU, gates: bool = True) -> pd.DataFrame:
    """The claims table: (a)-(c) as :data:`FAMILIES`, then (d) (:func:`gate_claim`) unless ``gates`` is False (a
    sensitivity regime tests (a)-(c) only, ``report.regimes``)."""
    rows = []
    for f in FAMILIES:
        if f.column not in m or m[f.column].isna().all():
            note = "not logged by these runs (they predate the applied-weight metrics)"
            rows += [{"claim": f.claim, "role": "primary" if f.primary else "secondary", "comparison":
                      f"SSPO vs {b.upper()}", "quantity": f"{f.quantity}, μ={mu}", "effect": "", "n_seeds": 0,
                      "verdict": "no data", "note": note} for b in COMPARATORS]  # fmt: skip
            continue
        pairs = [(f"SSPO vs {b.upper()}", *paired(m, "sspo", b, f.column, mu)) for b in COMPARATORS]
        rows += family_rows(f, pairs, f"{f.quantity}, μ={mu}")
    if gates:
        rows += gate_claim(m, mu)
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def gate_scores(m: pd.DataFrame, mu: int = CLAIM_MU, both_pairs: bool = False) -> pd.DataFrame:
    """[seed, gate]: held-out accuracy of each SSPO gate at ``mu`` at the grid's first temperature pair
    (τ_neg, τ_pos) = (0.3, 0.2) (gumbel has none), or with ``both_pairs`` averaged over both grid pairs; only seeds
    on which every gate has all of these runs finished."""
    g = m[(m["method"] == "sspo") & (m["mu"] == mu)].copy()
    g["gate"] = g["setting"].str.split(" ").str[0].str.removeprefix("sspo-")
    if not both_pairs:
        g = g[(g["gate"] == "gumbel") | g["setting"].str.endswith(FIRST_PAIR)]
    if g.empty:
        return pd.DataFrame()
    counts = g.groupby("gate")["setting"].nunique()
    full = g.groupby(["seed", "gate"])["setting"].nunique().unstack()
    complete = full.index[(full == counts).all(axis=1)]
    return g[g["seed"].isin(complete)].groupby(["seed", "gate"])["acc"].mean().unstack()


def gate_claim(m: pd.DataFrame, mu: int = CLAIM_MU) -> list[dict]:
    """(d): atanlog against each other gate on held-out accuracy, at the first temperature pair (primary) and
    averaged over both pairs (secondary); each family's note ranks the gates with their probability of being best
    over bootstrap resamples of seeds (descriptive, not a test)."""
    rows = []
    for both, what in ((False, f"held-out accuracy (pts), {FIRST_PAIR} (gumbel: none), μ={mu}"),
                       (True, f"held-out accuracy (pts), mean over both τ pairs, μ={mu}")):  # fmt: skip
        if both and not second_pair(m, mu):
            continue  # every gate ran at one temperature pair only: the average is the first family again
        scores = gate_scores(m, mu, both)
        family = Family(D_CLAIM, what, "acc", ratio=False, paper_higher=True, primary=not both)
        if "atanlog" not in scores or len(scores) == 0:
            have = ", ".join(scores.columns) if scores.shape[1] else "none"
            pairs = [(f"atanlog vs {g}", np.array([]), np.array([])) for g in OTHER_GATES]
            rows += family_rows(family, pairs, what, note=f"gates with complete seeds: {have}")
            continue
        pairs = [(f"atanlog vs {g}", *((scores["atanlog"].to_numpy(), scores[g].to_numpy()) if g in scores
                                       else (np.array([]), np.array([])))) for g in OTHER_GATES]  # fmt: skip
        rows += family_rows(family, pairs, what, note=ranking(scores))
    return rows


def second_pair(m: pd.DataFrame, mu: int = CLAIM_MU) -> bool:
    """Some SSPO gate with a temperature ran at ``mu`` at a pair other than the first (the grid's second pair)."""
    g = m[(m["method"] == "sspo") & (m["mu"] == mu) & (m["setting"] != "sspo-gumbel")]
    return bool(len(g)) and not g["setting"].str.endswith(FIRST_PAIR).all()


def ranking(scores: pd.DataFrame) -> str:
    """The gates by mean over seeds, each with its probability of being best (bootstrap over seeds)."""
    if scores.shape[1] < 2:
        return ""
    pbest = dict(zip(scores.columns, stats.prob_best(scores.to_numpy())))
    means = scores.mean()
    return "ranking " + ", ".join(f"{g} {means[g]:.1f} (P best {pbest[g]:.2f})"
                                  for g in means.sort_values(ascending=False).index)  # fmt: skip


CLAIMS_NOTE = (
    "Rule (pre-registered in protocol.md): each family (one claim, one metric) compares the paper's method with each "
    "alternative, paired by seed (same cold-started policy, same prompts). `ratio` = geometric mean over seeds of "
    "SSPO / other (1 = no effect); `difference` = mean over seeds of SSPO − other (0 = no effect). Estimate with its "
    "95% Student t-interval (df = n − 1; unadjusted). Verdict: two-sided paired t-test, p Holm-adjusted within the "
    "family, α = 0.05: \"reproduced\" (significant, the paper's direction), \"opposite (significant)\", or \"not "
    "distinguishable\". Primary rows are each claim's test; secondary rows use the same rule and are reported, not "
    "counted. p sign-flip: the exact paired permutation test (distribution-free check; its smallest possible value "
    "is 2/2^n: 0.0625 with 5 seeds, so it cannot reach 0.05 there, 0.002 with 10). Bootstrap: 95% percentile "
    "interval over seeds (secondary; too narrow at few seeds).")


def claims_markdown(table: pd.DataFrame, banner: str = "") -> str:
    lines = [banner, ""] if banner else []
    lines += ["| claim | role | comparison | quantity | estimate [95% t-CI] | seeds | p (t) | p (Holm) | p (sign-flip) "
              "| bootstrap 95% | verdict |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['claim']} | {r['role']} | {r['comparison']} | {r['quantity']} | {effect_text(r)} | "
                     f"{r['n_seeds']} | {p_text(r['p_t'])} | {p_text(r['p_holm'])} | {p_text(r['p_sign_flip'])} | "
                     f"{boot_text(r)} | {r['verdict']} |")
    notes = dict.fromkeys(f"{r['claim']}, {r['quantity']}: {r['note']}" for _, r in table.iterrows() if r["note"])
    lines += ["", "Per claim (protocol.md: reproduced only if its primary family is \"reproduced\" against every "
              "comparator): " + "; ".join(f"{c}: **{v}**" for c, v in claim_verdicts(table).items()) + "."]
    lines += ["", CLAIMS_NOTE, "", *[f"- {n}" for n in notes]]
    return "\n".join(lines).rstrip("\n") + "\n"


def claim_verdicts(table: pd.DataFrame) -> dict[str, str]:
    """The protocol's verdict per claim: "reproduced" when every primary comparison is, "no data" when none was
    tested, else "not reproduced"."""
    out = {}
    for claim, rows in table[table["role"] == "primary"].groupby("claim", sort=False):
        verdicts = set(rows["verdict"])
        out[claim] = ("reproduced" if verdicts == {"reproduced"} else "no data" if verdicts == {"no data"}
                      else "not reproduced")  # fmt: skip
    return out


def claims_latex(table: pd.DataFrame) -> str:
    lines = [r"\begin{tabular}{lllllllll}", r"\toprule",
             r"claim & role & comparison & quantity & estimate [95\% t-CI] & seeds & $p$ (t) & $p$ (Holm) & verdict \\",
             r"\midrule"]  # fmt: skip
    for _, r in table.iterrows():
        cells = [r["claim"], r["role"], r["comparison"], r["quantity"], effect_text(r), str(r["n_seeds"]),
                 p_text(r["p_t"]), p_text(r["p_holm"]), r["verdict"]]
        lines.append(" & ".join(tex(c) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def effect_text(r) -> str:
    if not r["effect"]:
        return "—"
    f = "{:.3g}" if r["effect"] == "ratio" else "{:+.3g}"
    return f"{f.format(r['estimate'])} [{r['ci_low']:.3g}, {r['ci_high']:.3g}] ({r['effect']})"


def boot_text(r) -> str:
    return "—" if not r["effect"] else f"[{r['boot_low']:.3g}, {r['boot_high']:.3g}]"


def p_text(p) -> str:
    return "—" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3g}"
