"""Issue 11, point 8: curves a reader can judge — bias-corrected EMA, one cadence per optimizer step, seed bands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sspo_exp.report.curves import curve_data, per_step, plot_all, smooth
from sspo_exp.report.tables import SPECS


def test_bias_corrected_ema_of_a_constant_is_the_constant_from_step_1():
    s = smooth(pd.Series([3.0] * 5), alpha=0.02)
    assert list(s) == pytest.approx([3.0] * 5)  # an uncorrected EMA starting at 0 would give 0.06 at step 1


def test_ema_is_w_and_b_debiased_ema_and_vectorised_over_columns():
    x = np.array([[0.0, 2.0], [1.0, 2.0], [4.0, 8.0]])
    got = smooth(pd.DataFrame(x), alpha=0.5).to_numpy()
    ema, want = np.zeros(2), []
    for t, row in enumerate(x, start=1):  # W&B: EMA from 0, divided by 1 − (1−α)^t
        ema = 0.5 * row + 0.5 * ema
        want.append(ema / (1 - 0.5**t))
    assert got == pytest.approx(np.array(want))
    assert got[1, 0] == pytest.approx(2 / 3)  # by hand: (1 + 0.5·0)/(1 + 0.5)


def test_rollout_metrics_hold_their_value_over_the_steps_of_their_rollout():
    """TRL logs rewards at steps 1, 1+μ, …: per step, each value stands for the μ steps trained on it."""
    wide = pd.DataFrame({"a": [1.0, 3.0, 5.0], "b": [2.0, 4.0, np.nan]}, index=[1, 3, 5])
    held = per_step(wide)
    assert list(held.index) == [1, 2, 3, 4, 5]
    assert list(held["a"]) == [1.0, 1.0, 3.0, 3.0, 5.0]
    assert held["b"].tolist()[:3] == [2.0, 2.0, 4.0] and held["b"].iloc[3:].isna().all()  # not past its last value


def _frames(values: dict[str, list[float]], steps: list[int], metric: str = "train/reward"):
    runs = pd.DataFrame({"run_id": list(values), "state": "finished", "group": "g", "objective.name": "grpo",
                         "model.name": "m", "train/heldout_accuracy": 0.5})
    history = pd.DataFrame([{"run_id": r, "step": s, metric: v} for r, vs in values.items()
                            for s, v in zip(steps, vs)])
    return runs, history


def test_band_is_min_max_over_seeds_and_the_thick_line_their_mean():
    runs, history = _frames({"s0": [1.0, 2.0, 3.0], "s1": [3.0, 4.0, 5.0], "s2": [2.0, 6.0, 1.0]}, [1, 2, 3])
    curve = curve_data(runs, history, "train/reward", SPECS["mini"], alpha=1.0)["m"]["grpo"]  # α = 1: no smoothing
    assert list(curve.mean) == pytest.approx([2.0, 4.0, 3.0])
    assert list(curve.lo) == [1.0, 2.0, 1.0] and list(curve.hi) == [3.0, 6.0, 5.0]


def test_smoothing_cadence_is_per_optimizer_step_whatever_mu():
    """The same per-step reward logged once per rollout at μ = 2 smooths like μ = 1's logged every step."""
    per_rollout = curve_data(*_frames({"s0": [1.0, 5.0, 2.0]}, [1, 3, 5]), "train/reward", SPECS["mini"], alpha=0.3)
    every_step = curve_data(*_frames({"s0": [1.0, 1.0, 5.0, 5.0, 2.0]}, [1, 2, 3, 4, 5]), "train/reward",
                            SPECS["mini"], alpha=0.3)
    a, b = per_rollout["m"]["grpo"].mean, every_step["m"]["grpo"].mean
    assert list(a.index) == [1, 2, 3, 4, 5] and list(a) == pytest.approx(list(b))


def test_variance_figure_uses_the_pooled_stale_value_on_a_log_scale(tmp_path, monkeypatch):
    metric = "train/objective/seq_weight_var_stale"
    runs, history = _frames({"s0": [1e-4, 2e-3], "s1": [3e-4, 1e-2]}, [2, 4], metric)
    history["train/objective/seq_weight_var"] = 0.0  # the fresh-step zeros must not be what is drawn
    seen = {}
    import matplotlib.axes

    real = matplotlib.axes.Axes.set_yscale
    monkeypatch.setattr(matplotlib.axes.Axes, "set_yscale", lambda ax, v, **k: (seen.setdefault("scale", v),
                                                                                 real(ax, v, **k)))
    paths = plot_all(runs, history, SPECS["mini"], tmp_path, figures=("seq_weight_var",))
    assert [p.name for p in paths] == ["curves_seq_weight_var.png", "curves_seq_weight_var.pdf"]
    assert seen["scale"] == "log"
