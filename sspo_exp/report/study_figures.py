"""The CPU study's figures: the headline (every method at its default configuration, μ = 4) and the curves of the
grid and of the staleness ablation, with seed bands (``sspo_exp.report.curves``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from sspo_exp.report.curves import curve_data, plot_all
from sspo_exp.report.study_data import APPLIED_VAR_STALE, CLAIM_MU, ENTROPY, REWARD, VAR_STALE, is_default
from sspo_exp.report.tables import TableSpec, row_label, row_sort_key


ALPHA = 0.1  #: EMA of the study's curves per optimizer step (48-step runs; the paper's 0.02 is for thousands)
HEADLINE = ((REWARD, "reward (answer + format)", False), (ENTROPY, "token entropy (nats)", False),
            (VAR_STALE, "Var(s_i) ungated (drift), stale steps", True))  # fmt: skip
#: claim (a)'s quantity, drawn in the headline's third panel instead of the drift when the runs logged it
APPLIED = (APPLIED_VAR_STALE, "Var of the applied weight W_i, stale steps", True)


def draw(runs: pd.DataFrame, history: pd.DataFrame, out_dir: Path, spec: TableSpec,
         status: str = "") -> list[Path]:  # fmt: skip
    """Curves with seed bands: the headline (every method at its default configuration, μ = 4), the grid at
    μ = 4 (best configuration per method) and the staleness ablation (default configurations, one panel per μ)."""
    abl = runs[[is_default(r) for _, r in runs.iterrows()]].copy()
    abl.attrs = runs.attrs
    abl["model.name"] = [f"μ={int(mu)}" for mu in abl["trainer.mu"]]
    paths = headline(abl, history, out_dir, spec, status)
    grid = runs[runs["trainer.mu"] == CLAIM_MU].copy()
    grid.attrs = runs.attrs
    grid["model.name"] = f"grid, μ={CLAIM_MU}"
    paths += plot_all(grid, history, spec, out_dir / "grid", alpha=ALPHA)
    paths += plot_all(abl, history, spec, out_dir / "staleness", alpha=ALPHA)
    return paths


def headline(abl: pd.DataFrame, history: pd.DataFrame, out_dir: Path, spec: TableSpec,
         status: str = "") -> list[Path]:  # fmt: skip
    """``headline.{png,pdf}``: reward, entropy and a stale-step variance at μ = 4 — of the weight each objective
    applies (claim a) when the runs logged it, else of the ungated s_i (drift) — one line per method (mean over
    seeds of the smoothed curves) with its min-max band over seeds."""
    mine = abl[abl["trainer.mu"] == CLAIM_MU]
    logged = APPLIED_VAR_STALE in history and bool(
        history.loc[history["run_id"].isin(mine["run_id"]), APPLIED_VAR_STALE].notna().any())
    panels = (*HEADLINE[:2], APPLIED if logged else HEADLINE[2])
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, (metric, label, log) in zip(axes, panels):
        data = curve_data(mine, history, metric, spec, alpha=ALPHA, positive_only=log)
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
                 f"{ALPHA:g}), band = min–max over seeds{status}", fontsize=9)
    fig.tight_layout()
    paths = [out_dir / "headline.png", out_dir / "headline.pdf"]
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1], metadata={"CreationDate": None})  # no timestamp: a regenerated figure is byte-identical
    plt.close(fig)
    return paths


# ------------------------------------------------------------------------------------------ CLI
