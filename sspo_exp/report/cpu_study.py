"""The CPU study (reports/cpu_study/README.md): compact stored results -> tables, claims table, curves, provenance.

Two steps, so the published numbers are regenerated from small files, never from checkpoints or W&B directories:

    python -m sspo_exp.report.cpu_study collect runs/cpu_study reports/cpu_study/data   # W&B offline -> CSV frames
    python -m sspo_exp.report.cpu_study publish reports/cpu_study/data reports/cpu_study  # frames -> tables, figures

``collect`` keeps the report's two frames (``sspo_exp.report.frames``) with only the columns the study uses:
``runs.csv`` (one row per run: config, state, summary) and ``history.csv`` (one row per run and optimizer step).
``publish`` writes, from those two files only:

- ``table_grid.{md,tex,csv}``: the Appendix A grid at μ = 4, the report's own table (best configuration per method
  on held-out accuracy, mean ± std over seeds), with GSPO from the staleness ablation;
- ``table_staleness.{md,tex,csv}``: every objective at its default configuration for μ = 1, 2, 4, 8;
- ``claims.{md,tex,csv}``: the paper's claims (a)-(d) with effect sizes and 95% bootstrap intervals over seeds
  (``sspo_exp.report.stats``);
- ``curves_*.{png,pdf}``: reward, entropy and stale-step weight variance with seed bands (``report.curves``);
- ``provenance.json``: commits, code and library versions, run counts and the study's wall time.

Per-run quantities (one number per run; every comparison pairs runs of the same seed):

- ``acc``: held-out greedy accuracy after RL (``eval/arithmetic/pass@1``, percent of 200 problems);
- ``reward``: mean ``train/reward`` over the last quarter of the optimizer steps (rollouts logged there);
- ``entropy_ratio``: mean ``train/entropy`` over the last quarter / ``train/entropy`` at step 1 (the initial
  policy's entropy on its first rollout, identical across objectives for one seed);
- ``var_stale``: mean over the run's stale steps of ``train/objective/seq_weight_var_stale`` (Var of the
  sequence importance weight s_i, pooled over each optimizer step).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sspo_exp import keys
from sspo_exp.report import render, stats
from sspo_exp.report.tables import TableSpec, build_table

BENCHMARK = "arithmetic"
ACC, ACC_BEFORE = keys.eval_key(BENCHMARK), keys.eval_key(BENCHMARK, stage=keys.BEFORE)
REWARD, ENTROPY = "train/reward", "train/entropy"
VAR, VAR_STALE, ROLLOUT_STEP = ("train/objective/seq_weight_var", "train/objective/seq_weight_var_stale",
                                "train/objective/rollout_step")  # fmt: skip
HISTORY_COLUMNS = ["run_id", "step", REWARD, ENTROPY, VAR, VAR_STALE, ROLLOUT_STEP, "train/objective/clip_frac",
                   "train/objective/attenuated_frac", "train/objective/approx_kl", "train/objective/token_ratio_var",
                   keys.HELDOUT]  # fmt: skip
RUN_COLUMNS = ["run_id", "name", "state", "group", "job_type", "last_step", "read_error", "objective.name", "objective.eps_low",
               "objective.eps_high", "objective.tau_neg", "objective.tau_pos", "gate.name", "gate.tau_neg",
               "gate.tau_pos", "trainer.mu", "trainer.max_steps", "trainer.learning_rate", "model.name",
               "model.cold_start.steps", "dataset.name", "seed", "code.version", "code.commit", ACC, ACC_BEFORE,
               keys.HELDOUT, keys.HELDOUT_BEFORE, keys.HELDOUT_AFTER, "_runtime", "identity.setting_hash"]  # fmt: skip
#: The evaluation profile behind ACC and ACC_BEFORE (sspo_exp.evaluation.profile): kept so that the grid table is
#: checked for one profile per table as every report table is; runs logged before profiles existed have none.
PROFILE_COLUMNS = [keys.eval_key(BENCHMARK, keys.profile_stat(f), stage) for stage in (keys.BEFORE, keys.AFTER)
                   for f in (*keys.PROFILE_FIELDS, "id")]  # fmt: skip
RUN_COLUMNS += PROFILE_COLUMNS + [keys.eval_key(BENCHMARK, keys.CUT, stage) for stage in (keys.BEFORE, keys.AFTER)]
#: The staleness ablation's configuration of each method: the objectives' defaults (conf/objective/, conf/gate/).
DEFAULTS = {"grpo": {"objective.eps_low": 0.2}, "gspo": {"objective.eps_low": 3e-4},
            "gmpo": {"objective.eps_low": 0.2}, "sapo": {"objective.tau_neg": 1.0, "objective.tau_pos": 1.05},
            "sspo": {"gate.name": "atanlog", "gate.tau_neg": 0.3, "gate.tau_pos": 0.2}}  # fmt: skip
METHODS = ["grpo", "gspo", "gmpo", "sapo", "sspo"]
HARD_CLIP = ["grpo", "gspo", "gmpo"]
CLAIM_MU = 4
GRID_SPEC = TableSpec(f"CPU study grid (μ = {CLAIM_MU}, 48 steps)", ("arithmetic",), gate_rows=True, delta_avg=True)
LAST_QUARTER = 0.75


# ------------------------------------------------------------------------------------------ collect
def collect(roots: list[str | Path], data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the study's W&B offline runs under ``roots`` and store the compact frames in ``data_dir``."""
    from sspo_exp.report.sources import load

    runs, history = load(offline=[str(r) for r in roots])
    runs = runs.reindex(columns=RUN_COLUMNS).sort_values("run_id").reset_index(drop=True)
    history = history.reindex(columns=HISTORY_COLUMNS).sort_values(["run_id", "step"]).reset_index(drop=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(data_dir / "runs.csv", index=False, float_format="%.10g")
    history.to_csv(data_dir / "history.csv", index=False, float_format="%.8g")
    (data_dir / "environment.json").write_text(json.dumps(environment(), indent=1, sort_keys=True) + "\n")
    return read_data(data_dir)


def environment() -> dict:
    """Library versions and the machine the study ran on (written by ``collect``, in the study's environment)."""
    import importlib.metadata as md
    import os
    import platform

    versions = {}
    for dist in ("sspo-exp", "torch", "trl", "transformers", "accelerate", "wandb", "hydra-core",
                 "hydra-joblib-launcher", "numpy", "pandas", "scipy", "matplotlib"):  # fmt: skip
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "versions": versions}


def read_data(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored frames, as the report's functions expect them (``attrs['config_columns']`` set)."""
    runs = pd.read_csv(data_dir / "runs.csv", dtype={"code.commit": str, "group": str, "gate.name": str})
    history = pd.read_csv(data_dir / "history.csv")
    runs.attrs["config_columns"] = [c for c in RUN_COLUMNS if "." in c and not c.startswith(("code.", "eval"))]
    return runs, history


# ------------------------------------------------------------------------------------------ per-run quantities
def run_metrics(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: method, setting, seed, mu and the per-run quantities of the module docstring."""
    done = runs[runs["state"] == "finished"].copy()
    rows = []
    for _, r in done.iterrows():
        h = history[history["run_id"] == r["run_id"]].sort_values("step")
        last = h[h["step"] > LAST_QUARTER * float(r["trainer.max_steps"])]
        first = h[ENTROPY].dropna().iloc[:1]  # step 1: the initial policy on its first rollout
        stale = h[VAR_STALE].dropna()
        rows.append({
            "run_id": r["run_id"], "method": r["objective.name"], "setting": setting(r), "seed": int(r["seed"]),
            "mu": int(r["trainer.mu"]), "default": is_default(r), "acc": float(r[ACC]),
            "acc_before": float(r[ACC_BEFORE]), "reward": float(last[REWARD].dropna().mean()),
            "entropy_first": float(first.iloc[0]) if len(first) else math.nan,
            "entropy_last": float(last[ENTROPY].dropna().mean()),
            "var_stale": float(stale.mean()) if len(stale) else math.nan,
        })  # fmt: skip
    out = pd.DataFrame(rows)
    if len(out):
        out["entropy_ratio"] = out["entropy_last"] / out["entropy_first"]
    return out


def setting(r: pd.Series) -> str:
    """A readable name of a run's hyper-parameters: ``grpo ε0.2``, ``sapo τ1/1.05``, ``sspo-atanlog τ0.3/0.2``."""
    m = r["objective.name"]
    if m in ("grpo", "gmpo", "gspo"):
        return f"{m} ε{_g(r['objective.eps_low'])}"
    if m == "sapo":
        return f"sapo τ{_g(r['objective.tau_neg'])}/{_g(r['objective.tau_pos'])}"
    gate = r["gate.name"]
    return f"sspo-{gate}" if gate == "gumbel" else f"sspo-{gate} τ{_g(r['gate.tau_neg'])}/{_g(r['gate.tau_pos'])}"


def is_default(r: pd.Series) -> bool:
    want = DEFAULTS.get(r["objective.name"], {})
    return all(_same(r.get(k), v) for k, v in want.items())


def _same(a, b) -> bool:
    if isinstance(b, str):
        return a == b
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return False


def _g(x) -> str:
    return f"{float(x):g}"


def paired(m: pd.DataFrame, a: str, b: str, column: str, mu: int = CLAIM_MU) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed values of ``column`` for the default configurations of methods ``a`` and ``b`` at ``mu``, on the
    seeds both finished (in seed order)."""
    sel = m[(m["mu"] == mu) & m["default"]]
    x = sel[sel["method"] == a].set_index("seed")[column]
    y = sel[sel["method"] == b].set_index("seed")[column]
    seeds = sorted(set(x.dropna().index) & set(y.dropna().index))
    return x.loc[seeds].to_numpy(float), y.loc[seeds].to_numpy(float)


# ------------------------------------------------------------------------------------------ claims
CLAIM_COLUMNS = ["claim", "comparison", "quantity", "effect", "estimate", "ci_low", "ci_high", "n_seeds", "p_sign_flip",
                 "verdict"]  # fmt: skip


def claims(m: pd.DataFrame, mu: int = CLAIM_MU) -> pd.DataFrame:
    """The claims table (see reports/cpu_study/README.md for each claim's wording and direction)."""
    rows = []

    def add(claim, comparison, quantity, effect: stats.Effect | None, supports: bool | None):
        if effect is None or effect.n == 0:
            rows.append({"claim": claim, "comparison": comparison, "quantity": quantity, "effect": "",
                         "estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n_seeds": 0,
                         "p_sign_flip": math.nan, "verdict": "no data"})  # fmt: skip
            return
        if not effect.excludes_null:
            verdict = "inconclusive (CI includes no effect)"
        else:
            verdict = "supports the paper" if supports else "contradicts the paper"
        rows.append({"claim": claim, "comparison": comparison, "quantity": quantity, "effect": effect.scale,
                     "estimate": effect.estimate, "ci_low": effect.low, "ci_high": effect.high, "n_seeds": effect.n,
                     "p_sign_flip": effect.p, "verdict": verdict})  # fmt: skip

    def compare(claim, quantity, column, baselines, ratio: bool, paper_says_higher: bool):
        for b in baselines:
            x, y = paired(m, "sspo", b, column, mu)
            if ratio:
                ok = len(x) and np.all(x > 0) and np.all(y > 0)
                e = stats.paired_ratio(x, y) if ok else None
                above = e is not None and e.low > 1
            else:
                e = stats.paired_difference(x, y) if len(x) else None
                above = e is not None and e.low > 0
            add(claim, f"SSPO vs {b.upper()}", quantity, e, above == paper_says_higher)

    compare("(a) stale-step weight variance lower", f"Var(s_i) on stale steps, μ={mu}", "var_stale",
            ["gspo", "gmpo"], ratio=True, paper_says_higher=False)
    compare("(b) entropy falls less", f"final / initial token entropy, μ={mu}", "entropy_ratio", HARD_CLIP,
            ratio=True, paper_says_higher=True)
    compare("(c) higher reward", f"reward, last quarter of steps, μ={mu}", "reward", ["grpo", "gspo", "gmpo", "sapo"],
            ratio=False, paper_says_higher=True)
    compare("(c) higher held-out accuracy", f"held-out accuracy after RL (pts), μ={mu}", "acc",
            ["grpo", "gspo", "gmpo", "sapo"], ratio=False, paper_says_higher=True)
    rows += gate_claim(m, mu)
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


FIRST_PAIR = "τ0.3/0.2"  #: the grid's first SSPO temperature pair (the gates' defaults)


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
    """(d): which gate is best on held-out accuracy, at the first temperature pair and averaged over both: each
    gate's probability of being best over bootstrap resamples of seeds, and atanlog minus the best other gate
    (paired over seeds)."""
    rows = []
    for both, what in ((False, f"held-out accuracy (pts), {FIRST_PAIR} (gumbel: none), μ={mu}"),
                       (True, f"held-out accuracy (pts), mean over both τ pairs, μ={mu}")):  # fmt: skip
        scores = gate_scores(m, mu, both)
        rows.append(_gate_row(scores, what))
    return rows


def _gate_row(scores: pd.DataFrame, quantity: str) -> dict:
    claim = "(d) best gate (paper: atanlog)"
    if scores.shape[1] < 5 or "atanlog" not in scores or len(scores) == 0:
        have = ", ".join(scores.columns) if scores.shape[1] else "none"
        return {"claim": claim, "comparison": "the five gates", "quantity": quantity, "effect": "",
                "estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n_seeds": len(scores),
                "p_sign_flip": math.nan, "verdict": f"no data (gates with complete seeds: {have})"}  # fmt: skip
    pbest = dict(zip(scores.columns, stats.prob_best(scores.to_numpy())))
    means = scores.mean()
    best = means.idxmax()
    other = means.drop("atanlog").idxmax()
    e = stats.paired_difference(scores["atanlog"], scores[other])
    ranking = ", ".join(f"{g} {means[g]:.1f} (P best {pbest[g]:.2f})" for g in means.sort_values(ascending=False).index)
    # the comparator is the best other gate on these same seeds: the hardest comparison for "atanlog is best" (so
    # "supports" is conservative), but a post-hoc pick for "another gate is better" (picking the best of four by noise
    # and testing it on the same seeds says "better" far more often than 5%), so that side is never "contradicts"
    if not e.excludes_null:
        verdict = f"inconclusive: highest mean {best}; ranking {ranking}"
    elif e.estimate > 0:
        verdict = f"supports the paper: atanlog best; ranking {ranking}"
    else:
        verdict = (f"post hoc, not a test: {other} above atanlog on these seeds, but it was picked as the best of four "
                   f"gates on the same seeds; ranking {ranking}")
    return {"claim": claim, "comparison": f"atanlog vs {other} (best other gate)", "quantity": quantity,
            "effect": e.scale, "estimate": e.estimate, "ci_low": e.low, "ci_high": e.high, "n_seeds": e.n,
            "p_sign_flip": e.p, "verdict": verdict}  # fmt: skip


def claims_markdown(table: pd.DataFrame) -> str:
    lines = ["| claim | comparison | quantity | estimate [95% CI] | seeds | p (sign-flip) | verdict |",
             "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['claim']} | {r['comparison']} | {r['quantity']} | {_effect_text(r)} | {r['n_seeds']} | "
                     f"{_p(r['p_sign_flip'])} | {r['verdict']} |")
    lines += ["", CLAIMS_NOTE]
    return "\n".join(lines) + "\n"


CLAIMS_NOTE = (
    "Effects pair the two methods' runs of the same seed (same cold-started policy, same prompts). "
    "`ratio` = geometric mean over seeds of SSPO / baseline (1 = no effect); `difference` = mean over seeds of "
    "SSPO − baseline (0 = no effect). Intervals: 95% percentile bootstrap over seeds (9,999 resamples, generator "
    "seed 0); with 5 seeds such an interval is too narrow (real coverage nearer 80-85%). p: exact two-sided sign-flip "
    "test over seeds; its smallest possible value with 5 seeds is 0.0625. A verdict needs the whole interval on one "
    "side of no effect; otherwise it is inconclusive. (d) compares atanlog with the best other gate on the same "
    "seeds: conservative for \"atanlog best\", but a post-hoc pick for \"another gate is better\", which is therefore "
    "reported as post hoc, never as a contradiction.")


def claims_latex(table: pd.DataFrame) -> str:
    lines = [r"\begin{tabular}{lllllll}", r"\toprule",
             r"claim & comparison & quantity & estimate [95\% CI] & seeds & $p$ & verdict \\", r"\midrule"]
    for _, r in table.iterrows():
        cells = [r["claim"], r["comparison"], r["quantity"], _effect_text(r), str(r["n_seeds"]), _p(r["p_sign_flip"]),
                 r["verdict"]]
        lines.append(" & ".join(_tex(c) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _effect_text(r) -> str:
    if not r["effect"]:
        return "—"
    f = "{:.3g}" if r["effect"] == "ratio" else "{:+.3g}"
    return f"{f.format(r['estimate'])} [{r['ci_low']:.3g}, {r['ci_high']:.3g}] ({r['effect']})"


def _p(p) -> str:
    return "—" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3g}"


def _tex(s: str) -> str:
    s = str(s)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        s = s.replace(a, b)
    for a, b in (("μ", r"$\mu$"), ("τ", r"$\tau$"), ("ε", r"$\varepsilon$"), ("−", "$-$"), ("—", "---")):
        s = s.replace(a, b)
    return s


# ------------------------------------------------------------------------------------------ staleness table
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


def staleness_markdown(t: pd.DataFrame) -> str:
    lines = ["| method | μ | seeds | held-out acc. after (%) | reward, last quarter | final/initial entropy | "
             "Var(s_i) stale steps (geo. mean) |", "|---|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        lines.append(f"| {_label(r['method'])} | {r['mu']} | {r['n_seeds']} | {_pm(r['acc_mean'], r['acc_std'], 1)} | "
                     f"{_pm(r['reward_mean'], r['reward_std'], 3)} | "
                     f"{_pm(r['entropy_ratio_mean'], r['entropy_ratio_std'], 2)} | {_sci(r['var_stale_gmean'])} |")
    lines += ["", "Mean ± sample std over seeds; each objective at its default configuration (GRPO/GMPO ε = 0.2, "
              "GSPO ε = 3e-4/4e-4, SAPO τ = 1/1.05, SSPO atanlog τ = 0.3/0.2). μ = 1 has no stale step (—)."]
    return "\n".join(lines) + "\n"


def staleness_latex(t: pd.DataFrame) -> str:
    lines = [r"\begin{tabular}{lrrllll}", r"\toprule",
             r"method & $\mu$ & seeds & acc.\ after (\%) & reward & entropy ratio & Var$(s_i)$ stale \\", r"\midrule"]
    for _, r in t.iterrows():
        lines.append(f"{_label(r['method'])} & {r['mu']} & {r['n_seeds']} & {_pm(r['acc_mean'], r['acc_std'], 1, tex=True)} & "
                     f"{_pm(r['reward_mean'], r['reward_std'], 3, tex=True)} & "
                     f"{_pm(r['entropy_ratio_mean'], r['entropy_ratio_std'], 2, tex=True)} & "
                     f"{_tex(_sci(r['var_stale_gmean']))} \\\\")  # fmt: skip
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _label(method: str) -> str:
    return "SSPO (atanlog)" if method == "sspo" else method.upper()


def _pm(mean, std, d: int, tex: bool = False) -> str:
    if mean is None or math.isnan(mean):
        return "—" if not tex else "---"
    pm = r" $\pm$ " if tex else " ± "
    return f"{mean:.{d}f}" + ("" if std is None or math.isnan(std) else f"{pm}{std:.{d}f}")


def _sci(x) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:.2e}"


# ------------------------------------------------------------------------------------------ publish
def publish(data_dir: Path, out_dir: Path, figures: bool = True) -> list[Path]:
    """Every published file of the study, from the stored frames in ``data_dir``; returns the paths written."""
    runs, history = read_data(data_dir)
    m = run_metrics(runs, history)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, text: str) -> None:
        (out_dir / name).write_text(text)
        written.append(out_dir / name)

    grid_runs = runs[runs["trainer.mu"] == CLAIM_MU].copy()
    grid_runs.attrs = runs.attrs
    # one evaluation profile per table, as in every report table; stored runs that predate recorded profiles (all
    # scored by the same in-training evaluator of one experiment config) are built anyway, the table notes say so
    recorded = any(c in grid_runs and grid_runs[c].notna().any() for c in PROFILE_COLUMNS)
    table = build_table(grid_runs, GRID_SPEC, paper_dir=None, allow_mixed_profiles=not recorded)
    write("table_grid.md", render.markdown(table))
    write("table_grid.tex", render.latex(table))
    render.csv_frame(table).to_csv(out_dir / "table_grid.csv", index=False)
    written.append(out_dir / "table_grid.csv")

    st = staleness_table(m)
    write("table_staleness.md", staleness_markdown(st))
    write("table_staleness.tex", staleness_latex(st))
    st.to_csv(out_dir / "table_staleness.csv", index=False, float_format="%.6g")
    written.append(out_dir / "table_staleness.csv")

    cl = claims(m)
    write("claims.md", claims_markdown(cl))
    write("claims.tex", claims_latex(cl))
    cl.to_csv(out_dir / "claims.csv", index=False, float_format="%.6g")
    written.append(out_dir / "claims.csv")
    m.sort_values("run_id").to_csv(out_dir / "per_run.csv", index=False, float_format="%.6g")
    written.append(out_dir / "per_run.csv")
    write("provenance.json", json.dumps(provenance(runs, data_dir), indent=1, sort_keys=True) + "\n")
    if figures:
        written += draw(runs, history, out_dir)
    return written


WALL_COLUMNS = ["sweep", "filter", "seeds", "start", "end", "wall_s", "cpu_s"]


def provenance(runs: pd.DataFrame, data_dir: Path) -> dict:
    """Where the published numbers come from: code versions and commits of the runs, library versions, run counts,
    and the study's wall and CPU time per phase (``data/wall.tsv``, written by run.sh)."""
    env = json.loads((data_dir / "environment.json").read_text()) if (data_dir / "environment.json").exists() else {}
    wall = (pd.read_csv(data_dir / "wall.tsv", sep="\t", names=WALL_COLUMNS, dtype={"filter": str, "seeds": str})
            if (data_dir / "wall.tsv").exists() else pd.DataFrame(columns=WALL_COLUMNS))  # fmt: skip
    finished = int((runs["state"] == "finished").sum())
    phases = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
              for r in wall.to_dict("records")]  # fmt: skip
    cpu = float(wall["cpu_s"].sum()) if len(wall) else math.nan
    return {
        "runs": {state: int(n) for state, n in runs["state"].value_counts().sort_index().items()},
        "code": sorted({f"{v} @ {str(c)[:12]}" for v, c in zip(runs["code.version"], runs["code.commit"])}),
        "environment": env,
        "phases": phases,
        "wall_s_total": float(wall["end"].max() - wall["start"].min()) if len(wall) else None,
        "cpu_s_total": None if math.isnan(cpu) else cpu,
        "cpu_s_per_finished_run": None if math.isnan(cpu) or not finished else round(cpu / finished, 1),
    }


ALPHA = 0.1  #: EMA of the study's curves per optimizer step (48-step runs; the paper's 0.02 is for thousands)
HEADLINE = ((REWARD, "reward (answer + format)", False), (ENTROPY, "token entropy (nats)", False),
            (VAR_STALE, "Var(s_i), stale steps", True))  # fmt: skip


def draw(runs: pd.DataFrame, history: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Curves with seed bands: the headline (every method at its default configuration, μ = 4), the grid at
    μ = 4 (best configuration per method) and the staleness ablation (default configurations, one panel per μ)."""
    from sspo_exp.report.curves import plot_all

    abl = runs[[is_default(r) for _, r in runs.iterrows()]].copy()
    abl.attrs = runs.attrs
    abl["model.name"] = [f"μ={int(mu)}" for mu in abl["trainer.mu"]]
    paths = headline(abl, history, out_dir)
    grid = runs[runs["trainer.mu"] == CLAIM_MU].copy()
    grid.attrs = runs.attrs
    grid["model.name"] = f"grid, μ={CLAIM_MU}"
    paths += plot_all(grid, history, GRID_SPEC, out_dir / "grid", alpha=ALPHA)
    paths += plot_all(abl, history, GRID_SPEC, out_dir / "staleness", alpha=ALPHA)
    return paths


def headline(abl: pd.DataFrame, history: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``headline.{png,pdf}``: reward, entropy and stale-step Var(s_i) at μ = 4, one line per method (mean over
    seeds of the smoothed curves) with its min-max band over seeds."""
    import matplotlib.pyplot as plt

    from sspo_exp.report.curves import curve_data
    from sspo_exp.report.tables import row_label, row_sort_key

    mine = abl[abl["trainer.mu"] == CLAIM_MU]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, (metric, label, log) in zip(axes, HEADLINE):
        data = curve_data(mine, history, metric, GRID_SPEC, alpha=ALPHA, positive_only=log)
        for panel in data.values():
            for i, row in enumerate(sorted(panel, key=row_sort_key)):
                c = panel[row]
                colour = plt.get_cmap("tab10")(["grpo", "gspo", "gmpo", "sapo"].index(row) if row in
                                               ("grpo", "gspo", "gmpo", "sapo") else 4)  # fmt: skip
                ax.fill_between(c.mean.index, c.lo, c.hi, color=colour, alpha=0.15, lw=0)
                ax.plot(c.mean.index, c.mean, color=colour, lw=2, label=f"{row_label(row)} (n={c.raw.shape[1]})")
        ax.set_yscale("log" if log else "linear")
        ax.set_xlabel("optimizer step")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"CPU study, μ = {CLAIM_MU}, each method at its default configuration: mean over seeds (EMA α = "
                 f"{ALPHA:g}), band = min–max over seeds", fontsize=9)
    fig.tight_layout()
    paths = [out_dir / "headline.png", out_dir / "headline.pdf"]
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1], metadata={"CreationDate": None})  # no timestamp: a regenerated figure is byte-identical
    plt.close(fig)
    return paths


# ------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sspo_exp.report.cpu_study", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="W&B offline runs -> compact CSV frames")
    c.add_argument("runs", nargs="+", type=Path, help="directories holding the study's runs")
    c.add_argument("data", type=Path, help="where runs.csv and history.csv go")
    q = sub.add_parser("publish", help="compact frames -> tables, claims, curves")
    q.add_argument("data", type=Path)
    q.add_argument("out", type=Path)
    q.add_argument("--no-figures", action="store_true")
    args = p.parse_args(argv)
    if args.cmd == "collect":
        *roots, data = [*args.runs, args.data]
        runs, _ = collect(roots, data)
        print(f"{len(runs)} runs ({int((runs['state'] == 'finished').sum())} finished) -> {data}")
        return 0
    for path in publish(args.data, args.out, figures=not args.no_figures):
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
