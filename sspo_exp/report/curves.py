"""Training curves as the paper's Figures 2-4: reward, token entropy and the importance-weight variance per step.

One panel per setting (model × training data), one colour per method. Per (panel, method):

- thin lines: each seed as logged (raw);
- thick line: the mean over seeds of each seed's smoothed curve; shaded band: min–max over seeds of the same
  smoothed curves (with 3 seeds a standard deviation says little; the range shows every seed);
- smoothing: an exponential moving average with one cadence per optimizer step, bias-corrected as W&B's own
  smoothing is (``EMA_t / (1 − (1−α)^t)``, so a constant series is that constant from step 1 and short runs do not
  lag towards 0). Metrics TRL logs once per rollout (rewards: steps 1, 1+μ, …) hold their value over the μ steps
  trained on that rollout before smoothing, so α means the same per optimizer step for every metric and every μ.
- the variance figure plots ``objective/seq_weight_var_stale`` (pooled over the step, stale steps only; fresh steps
  hold the last stale value) on a log scale; runs logged before it existed fall back to ``seq_weight_var`` with
  its zeros (fresh steps) dropped.

Per (setting, method) the configuration shown is chosen by the same rule as the tables
(:func:`sspo_exp.report.tables.rank_configs` over FINISHED runs only; over runs of any state when none has
finished yet, e.g. while a grid is running); every seed of it is then drawn, a crashed one up to where it stopped.
Base (eval-only) runs have no curve. The choice is made once per report and only the drawn runs' history is
used. Each figure is drawn once: one line collection per method for its seeds, at most :data:`MAX_POINTS` points
per drawn line (thin lines and band rasterised in the PDF); the figures are drawn side by side, one process each
(as many as reading uses).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sspo_exp import keys  # noqa: E402
from sspo_exp.report.tables import (  # noqa: E402
    BASE, DEFAULT_SELECT_METRIC, TableSpec, annotate, natural_key, rank_configs, row_label, row_sort_key)
from sspo_exp.report.wandb_offline import default_workers  # noqa: E402

#: figure name -> (metrics to plot, first one present in the history wins; y label; log scale)
FIGURES = {
    "reward": (("train/reward",), "reward", False),
    "entropy": (("train/entropy",), "token entropy", False),
    "seq_weight_var": (("train/objective/seq_weight_var_stale", "train/objective/seq_weight_var"),
                       "Var(seq. importance weight), stale steps, pooled", True),
}
METRICS = {m: label for ms, label, _ in FIGURES.values() for m in ms}
ALPHA = 0.02


def smooth(values: pd.Series | pd.DataFrame, alpha: float = ALPHA) -> pd.Series | pd.DataFrame:
    """Bias-corrected exponential moving average per column (pandas ``ewm(adjust=True)``: the weighted mean
    ``Σ (1−α)^i x_{t−i} / Σ (1−α)^i``, equal to W&B's debiased EMA), vectorised over columns; NaNs skipped."""
    if not 0 < alpha <= 1:
        raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
    return values.ewm(alpha=alpha, adjust=True, ignore_na=True).mean()


def per_step(wide: pd.DataFrame) -> pd.DataFrame:
    """Reindex step × run to every optimizer step and hold each logged value until the run's next one (a value
    logged once per rollout stands for every step trained on that rollout); nothing past a run's last value."""
    if wide.empty:
        return wide
    steps = np.arange(int(wide.index.min()), int(wide.index.max()) + 1)
    held = wide.reindex(steps)
    present = held.notna().to_numpy()
    last = len(steps) - 1 - np.argmax(present[::-1], axis=0)  # row of each run's last value (vectorised)
    return held.ffill().where(np.arange(len(steps))[:, None] <= last[None, :])


MAX_POINTS = 600  # points drawn per line: about a panel's width in pixels at the saved resolution


def _thin(xy: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Every k-th row (the last kept) so that at most ~``max_points`` are drawn: a 2,000-step run in a 650-pixel
    panel looks the same, and drawing 450 runs stays fast. The computed curves themselves are not thinned."""
    if len(xy) <= max_points:
        return xy
    keep = np.arange(0, len(xy), -(-len(xy) // max_points))
    return xy[np.unique(np.append(keep, len(xy) - 1))]


@dataclass
class Curve:
    """One (panel, method): ``raw`` step × run as logged, ``mean``/``lo``/``hi`` over seeds of the smoothed
    per-step curves, ``unfinished`` = seeds drawn that did not finish."""

    raw: pd.DataFrame
    mean: pd.Series
    lo: pd.Series
    hi: pd.Series
    unfinished: int


def curve_data(runs: pd.DataFrame, history: pd.DataFrame, metric: str, spec: TableSpec,
               select_metric: str = DEFAULT_SELECT_METRIC, alpha: float = ALPHA,
               positive_only: bool = False) -> dict[str, dict[str, Curve]]:
    """``{panel: {row: Curve}}`` for ``metric`` (``{}`` when no run logged it)."""
    chosen = _choose(_panels(runs, spec), select_metric)
    return _curves(chosen, _chosen_history(history, chosen), metric, alpha, positive_only)


def _panels(runs: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    runs = annotate(runs, spec)
    runs = runs[runs["method"] != BASE]
    return runs.assign(panel=runs["block"] + (" · " + runs["dataset.name"].astype(str) if "dataset.name" in runs
                                              else ""))


def _choose(panels: pd.DataFrame, select_metric: str) -> dict[tuple[str, str], pd.DataFrame]:
    """``{(panel, row): the runs drawn}``, panels in natural order: the configuration the table shows
    (:func:`rank_configs` over finished runs, over all when none finished), every seed of it. Done once per
    report: the choice does not depend on the metric drawn."""
    out: dict = {}
    select_metric = keys.spelling_in(panels.columns, select_metric)  # a stored frame with old names (the CPU study's)
    for panel in sorted(panels["panel"].unique(), key=natural_key):
        prow = panels[panels["panel"] == panel]
        for row, rrows in prow.groupby("row"):
            finished = rrows[rrows["state"] == "finished"]
            best = rank_configs(finished if len(finished) else rrows, select_metric).iloc[0]["config"]
            out[(panel, row)] = rrows[rrows["config"] == best]
    return out


def _chosen_history(history: pd.DataFrame, chosen: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """The history rows of the drawn runs only (taken once per report; a sweep draws a few runs of many)."""
    ids = {i for c in chosen.values() for i in c["run_id"]}
    return history[history["run_id"].isin(ids)] if "run_id" in history else history


def _curves(chosen: dict[tuple[str, str], pd.DataFrame], history: pd.DataFrame, metric: str, alpha: float,
            positive_only: bool) -> dict[str, dict[str, Curve]]:
    if metric not in history.columns:
        return {}
    hist = history[["run_id", "step", metric]].dropna(subset=[metric])
    if positive_only:
        hist = hist[hist[metric] > 0]
    if hist.empty:
        return {}
    hist = hist.drop_duplicates(["run_id", "step"], keep="last")
    every = hist.pivot(index="step", columns="run_id", values=metric)  # step × run, once per figure
    out: dict = {}
    for (panel, row), runs in chosen.items():
        runs = runs[runs["run_id"].isin(every.columns)]
        if runs.empty:
            continue
        raw = every[list(runs["run_id"])].dropna(how="all")
        smoothed = smooth(per_step(raw), alpha)
        out.setdefault(panel, {})[row] = Curve(raw, smoothed.mean(axis=1), smoothed.min(axis=1),
                                               smoothed.max(axis=1), int((runs["state"] != "finished").sum()))
    return out


def plot_metric(runs: pd.DataFrame, history: pd.DataFrame, metric: str, spec: TableSpec, out_dir: Path,
                select_metric: str = DEFAULT_SELECT_METRIC, alpha: float = ALPHA) -> list[Path]:
    """Write the figure of ``metric`` (its figure name when it has one); returns the paths ([] if not logged)."""
    name = next((f for f, (ms, _, _) in FIGURES.items() if metric in ms), metric.rsplit("/", 1)[-1])
    ms, label, log = FIGURES.get(name, ((metric,), metric, metric.endswith("_var")))
    chosen = _choose(_panels(runs, spec), select_metric)
    return _figure(chosen, _chosen_history(history, chosen), _logged(history), name, (metric,), label, log,
                   out_dir, alpha)


def plot_all(runs: pd.DataFrame, history: pd.DataFrame, spec: TableSpec, out_dir: Path,
             select_metric: str = DEFAULT_SELECT_METRIC, alpha: float = ALPHA,
             figures: tuple[str, ...] = tuple(FIGURES), workers: int | None = None) -> list[Path]:
    """Every figure of :data:`FIGURES` (``curves_<name>.png`` and ``.pdf``). The runs are annotated, the
    configurations ranked and the drawn runs' history taken once for all figures; the figures are then drawn
    side by side in ``workers`` processes (None: one per CPU, see ``wandb_offline.default_workers``; 1: here)."""
    chosen = _choose(_panels(runs, spec), select_metric)
    hist, logged = _chosen_history(history, chosen), _logged(history)
    jobs = []
    for name in figures:
        metrics, label, log = FIGURES[name]
        got = _figure_data(chosen, hist, logged, metrics, label, log, alpha)
        if got is not None:
            jobs.append((name, *got, log, out_dir, alpha))
    n = min(len(jobs), default_workers() if workers is None else workers)
    if n > 1:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ProcessPoolExecutor(n, mp_context=ctx) as pool:
            drawn = list(pool.map(_draw, *zip(*jobs)))
    else:
        drawn = [_draw(*job) for job in jobs]
    return [p for paths in drawn for p in paths]


def _logged(history: pd.DataFrame) -> set[str]:
    """Metrics some run logged (any run, drawn or not: a figure's metric falls back to an older name only when
    no run logged the newer one)."""
    return {c for c in history.columns if history[c].notna().any()}


def _figure(chosen: dict[tuple[str, str], pd.DataFrame], history: pd.DataFrame, logged: set[str], name: str,
            metrics: tuple[str, ...], label: str, log: bool, out_dir: Path, alpha: float) -> list[Path]:
    got = _figure_data(chosen, history, logged, metrics, label, log, alpha)
    return [] if got is None else _draw(name, *got, log, out_dir, alpha)


def _figure_data(chosen: dict[tuple[str, str], pd.DataFrame], history: pd.DataFrame, logged: set[str],
                 metrics: tuple[str, ...], label: str, log: bool,
                 alpha: float) -> tuple[dict[str, dict[str, Curve]], str] | None:
    """A figure's curves and y label (None: nothing to draw): its first metric some run logged."""
    metric = next((m for m in metrics if m in logged), None)
    if metric is None:
        return None
    data = _curves(chosen, history, metric, alpha, positive_only=log)
    if not data:
        return None
    if metric != metrics[0]:
        label = f"{METRICS.get(metric, metric)} (older logs: {metric.rsplit('/', 1)[-1]}, zeros dropped)"
    return data, label


def _draw(name: str, data: dict[str, dict[str, Curve]], label: str, log: bool, out_dir: Path,
          alpha: float) -> list[Path]:
    """Draw one figure once and save it as PNG and PDF."""
    all_rows = sorted({r for p in data.values() for r in p}, key=row_sort_key)
    colours = {r: plt.get_cmap("tab10")(i % 10) for i, r in enumerate(all_rows)}
    n = len(data)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.6 * nrows), squeeze=False)
    for ax, (panel, rows) in zip(axes.flat, data.items()):
        for row in sorted(rows, key=row_sort_key):
            c, colour = rows[row], colours[row]
            segments = [_thin(np.column_stack([s.index.to_numpy(float), s.to_numpy(float)]))
                        for s in (c.raw[k].dropna() for k in c.raw.columns)]
            ax.add_collection(LineCollection(segments, colors=[colour], linewidths=0.5, alpha=0.3, rasterized=True,
                                             antialiaseds=False))
            band = _thin(np.column_stack([c.mean.index.to_numpy(float), c.lo.to_numpy(float), c.hi.to_numpy(float),
                                          c.mean.to_numpy(float)]))
            ax.fill_between(band[:, 0], band[:, 1], band[:, 2], color=colour, alpha=0.18, lw=0, rasterized=True)
            ax.plot(band[:, 0], band[:, 3], color=colour, lw=2.0, zorder=3,
                    label=f"{row_label(row)} (n={c.raw.shape[1]}"
                    + (f", {c.unfinished} not finished)" if c.unfinished else ")"))
        ax.autoscale_view()
        if log:
            ax.set_yscale("log")
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label, fontsize=8 if len(label) > 30 else 10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(f"{label}\nthin: each seed (raw) · thick: mean over seeds · band: min–max over seeds "
                 f"(EMA α = {alpha:g} per optimizer step, bias-corrected)", fontsize=9)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"curves_{name}"
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1], metadata={"CreationDate": None})  # no timestamp: a regenerated figure is byte-identical
    plt.close(fig)
    return paths
