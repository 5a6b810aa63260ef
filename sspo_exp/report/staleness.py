"""The CPU study's staleness table: every objective at its default configuration for μ = 1, 2, 4, 8."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sspo_exp.report.study_data import METHODS
from sspo_exp.report.study_format import method_label, pm, sci, tex

STALENESS_COLUMNS = ["method", "mu", "n_seeds", "acc_mean", "acc_std", "reward_mean", "reward_std",
                     "entropy_ratio_mean", "entropy_ratio_std", "var_stale_gmean"]  # fmt: skip


def staleness_table(m: pd.DataFrame) -> pd.DataFrame:
    """Per method (default configuration) and μ: mean and sample std over seeds of the per-run quantities; the
    stale-step variance as a geometric mean (it spans orders of magnitude)."""
    rows = []
    d = m[m["default"]]
    for (method, mu), g in sorted(d.groupby(["method", "mu"]), key=lambda kv: (METHODS.index(kv[0][0]), kv[0][1])):
        v = g["var_stale"].dropna()
        rows.append({"method": method, "mu": int(mu), "n_seeds": len(g), "acc_mean": g["acc"].mean(),
                     "acc_std": g["acc"].std(), "reward_mean": g["reward"].mean(), "reward_std": g["reward"].std(),
                     "entropy_ratio_mean": g["entropy_ratio"].mean(), "entropy_ratio_std": g["entropy_ratio"].std(),
                     "var_stale_gmean": float(np.exp(np.log(v[v > 0]).mean())) if (v > 0).any() else math.nan})  # fmt: skip
    return pd.DataFrame(rows, columns=STALENESS_COLUMNS)


def staleness_markdown(t: pd.DataFrame, banner: str = "") -> str:
    lines = [banner, ""] if banner else []
    lines += ["| method | μ | seeds | held-out acc. after (%) | reward, last quarter | final/initial entropy | "
              "Var(s_i) stale steps (geo. mean) |", "|---|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        lines.append(f"| {method_label(r['method'])} | {r['mu']} | {r['n_seeds']} | {pm(r['acc_mean'], r['acc_std'], 1)} | "
                     f"{pm(r['reward_mean'], r['reward_std'], 3)} | "
                     f"{pm(r['entropy_ratio_mean'], r['entropy_ratio_std'], 2)} | {sci(r['var_stale_gmean'])} |")
    lines += ["", "Mean ± sample std over seeds; each objective at its default configuration (GRPO/GMPO ε = 0.2, "
              "GSPO ε = 3e-4/4e-4, SAPO τ = 1/1.05, SSPO atanlog τ = 0.3/0.2). μ = 1 has no stale step (—). "
              "Var(s_i): the ungated sequence ratio (policy drift), not the weight an objective applies."]
    return "\n".join(lines) + "\n"


def staleness_latex(t: pd.DataFrame) -> str:
    lines = [r"\begin{tabular}{lrrllll}", r"\toprule",
             r"method & $\mu$ & seeds & acc.\ after (\%) & reward & entropy ratio & Var$(s_i)$ stale \\", r"\midrule"]
    for _, r in t.iterrows():
        lines.append(f"{method_label(r['method'])} & {r['mu']} & {r['n_seeds']} & {pm(r['acc_mean'], r['acc_std'], 1, tex=True)} & "
                     f"{pm(r['reward_mean'], r['reward_std'], 3, tex=True)} & "
                     f"{pm(r['entropy_ratio_mean'], r['entropy_ratio_std'], 2, tex=True)} & "
                     f"{tex(sci(r['var_stale_gmean']))} \\\\")  # fmt: skip
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"

