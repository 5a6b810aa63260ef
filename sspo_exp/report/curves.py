"""Training curves as the paper's Figures 2-4: reward, token entropy and the importance-weight variance per step.

One panel per setting (model × training data), one colour per method; thin lines = each seed unsmoothed,
thick line = mean over seeds, exponentially smoothed (``ewm(alpha)``, bias-corrected; paper: α = 0.02).
Per (setting, method) the configuration shown is chosen by the same rule as the tables
(:func:`sspo_exp.report.tables.rank_configs` over FINISHED runs only; over runs of any state when none has
finished yet, e.g. while a grid is running); every seed of it is then drawn, a crashed one up to where it stopped.
Base (eval-only) runs have no curve.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

from sspo_exp.report.tables import (  # noqa: E402
    BASE, DEFAULT_SELECT_METRIC, TableSpec, annotate, natural_key, rank_configs, row_label, row_sort_key)

METRICS = {
    "train/reward": "reward",
    "train/entropy": "token entropy",
    "train/objective/seq_weight_var": "Var(seq. importance weight)",
}
ALPHA = 0.02


def smooth(values: pd.Series, alpha: float = ALPHA) -> pd.Series:
    """Exponential moving average, bias-corrected at the start (pandas ``ewm(adjust=True)``), NaNs skipped."""
    if not 0 < alpha <= 1:
        raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
    return values.ewm(alpha=alpha, adjust=True, ignore_na=True).mean()


def curve_data(runs: pd.DataFrame, history: pd.DataFrame, metric: str, spec: TableSpec,
               select_metric: str = DEFAULT_SELECT_METRIC, alpha: float = ALPHA) -> dict:
    """``{panel: {row: (per_seed: DataFrame step × run_id, mean_smoothed: Series, n_not_finished)}}``."""
    runs = annotate(runs, spec)
    runs = runs[runs["method"] != BASE]
    runs["panel"] = runs["block"] + (" · " + runs["dataset.name"].astype(str) if "dataset.name" in runs else "")
    if metric not in history.columns:
        return {}
    hist = history[["run_id", "step", metric]].dropna(subset=[metric])
    out: dict = {}
    for panel in sorted(runs["panel"].unique(), key=natural_key):
        prow = runs[runs["panel"] == panel]
        for row, rrows in prow.groupby("row"):
            finished = rrows[rrows["state"] == "finished"]
            best = rank_configs(finished if len(finished) else rrows, select_metric).iloc[0]["config"]
            chosen = rrows[(rrows["config"] == best) & rrows["run_id"].isin(hist["run_id"].unique())]
            if chosen.empty:
                continue
            ids, unfinished = chosen["run_id"], int((chosen["state"] != "finished").sum())
            wide = hist[hist["run_id"].isin(ids)].pivot(index="step", columns="run_id", values=metric)
            out.setdefault(panel, {})[row] = (wide, smooth(wide.mean(axis=1, skipna=True), alpha), unfinished)
    return out


def plot_metric(runs: pd.DataFrame, history: pd.DataFrame, metric: str, spec: TableSpec, out_dir: Path,
                select_metric: str = DEFAULT_SELECT_METRIC, alpha: float = ALPHA) -> list[Path]:
    """Write ``curves_<name>.png`` and ``.pdf``; returns the paths ([] when no run logged the metric)."""
    data = curve_data(runs, history, metric, spec, select_metric, alpha)
    if not data:
        return []
    all_rows = sorted({r for p in data.values() for r in p}, key=row_sort_key)
    colours = {r: plt.get_cmap("tab10")(i % 10) for i, r in enumerate(all_rows)}
    n = len(data)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.6 * nrows), squeeze=False)
    label = METRICS.get(metric, metric)
    for ax, (panel, rows) in zip(axes.flat, data.items()):
        positive = True
        for row in sorted(rows, key=row_sort_key):
            wide, mean, unfinished = rows[row]
            c = colours[row]
            for rid in wide.columns:
                s = wide[rid].dropna()
                ax.plot(s.index, s.values, color=c, lw=0.5, alpha=0.3)
                positive &= bool((s > 0).all())
            ax.plot(mean.index, mean.values, color=c, lw=2.0, zorder=3, label=f"{row_label(row)} (n={wide.shape[1]}"
                    + (f", {unfinished} not finished)" if unfinished else ")"))
        if metric.endswith("_var") and positive:
            ax.set_yscale("log")
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # optimizer steps
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(f"{label}\nthin: each seed (raw) · thick: mean over seeds, EMA α = {alpha:g}", fontsize=9)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"curves_{metric.rsplit('/', 1)[-1]}"
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def plot_all(runs: pd.DataFrame, history: pd.DataFrame, spec: TableSpec, out_dir: Path,
             select_metric: str = DEFAULT_SELECT_METRIC, alpha: float = ALPHA,
             metrics: tuple[str, ...] = tuple(METRICS)) -> list[Path]:
    paths: list[Path] = []
    for m in metrics:
        paths += plot_metric(runs, history, m, spec, out_dir, select_metric, alpha)
    return paths

