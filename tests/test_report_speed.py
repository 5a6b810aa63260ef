"""The report's fast paths (issue 13, sweep scale) give exactly what the paths before them gave.

References below are the implementations the speed work replaced, verbatim: the history matrix built with a
``json`` parse and a Python dict of column codes, summary records applied one by one, and the curves ranking the
configurations anew for every figure over every run's history. Compared on the shipped fixtures of older wandb
releases (tests/fixtures/wandb_runs), on runs the installed wandb writes now (``wandb_root``) and on a run with
the values a fast path could get wrong (NaN, infinities, huge integers, booleans, text, a removed summary key).
The speed itself is measured by ``benchmarks/report.py``, not here.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from sspo_exp.report import curves, render, wandb_offline
from sspo_exp.report.sources import load
from sspo_exp.report.tables import BASE, SPECS, build_table, natural_key, rank_configs
from sspo_exp.report.wandb_offline import END, find_run_dirs, read_segment
from waiting import CEILING

FIXTURES = Path(__file__).parent / "fixtures" / "wandb_runs"


# ---- the implementations before (references) ----

def _history_frame_before(names: list[str], values: list[str]):
    if not names:
        return pd.DataFrame()
    try:
        numbers = np.array(wandb_offline._loads_values(values), dtype=np.float64)
    except (TypeError, ValueError):
        return pd.DataFrame.from_records(wandb_offline._history_rows(names, values))
    index = {END: 0}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in names), dtype=np.int64, count=len(names))
    is_end = codes == 0
    rows = np.cumsum(is_end) - is_end
    keep = ~is_end
    columns = list(index)[1:]
    wide = np.full((int(is_end.sum()), len(columns)), np.nan)
    wide[rows[keep], codes[keep] - 1] = numbers[keep]
    return pd.DataFrame(wide, columns=columns)


def _apply_summaries_before(blobs: list[bytes], summary_raw: dict[str, str]) -> list[bytes]:
    w = wandb_offline
    last: dict[bytes, int] = {}
    seen: dict[bytes, int] = {}
    for i, blob in enumerate(blobs):
        body = blob[w._num_len(blob):]
        last[body] = i
        seen[body] = seen.get(body, 0) + 1
    order = sorted(last.items(), key=lambda kv: kv[1])
    bulk = w._bulk([blobs[i] for body, i in order if seen[body] == 1], "summary")
    if bulk is None:
        return [blobs[i] for _, i in order]
    names, values = bulk
    cur, rec = 0, w.pb.Record()
    for body, i in order:
        if seen[body] == 1:
            end = names.index(END, cur)
            summary_raw.update(zip(names[cur:end], values[cur:end]))
            cur = end + 1
        else:
            rec.ParseFromString(blobs[i])
            w._apply_summary(summary_raw, [(w._name(it), it.value_json) for it in rec.summary.update],
                             [w._name(it) for it in rec.summary.remove])
    return []


def _curve_data_before(runs, history, metric, spec, select_metric=curves.DEFAULT_SELECT_METRIC,
                       alpha=curves.ALPHA, positive_only=False):
    panels = curves._panels(runs, spec)
    if metric not in history.columns:
        return {}
    hist = history[["run_id", "step", metric]].dropna(subset=[metric])
    if positive_only:
        hist = hist[hist[metric] > 0]
    if hist.empty:
        return {}
    hist = hist.drop_duplicates(["run_id", "step"], keep="last")
    every = hist.pivot(index="step", columns="run_id", values=metric)
    out: dict = {}
    for panel in sorted(panels["panel"].unique(), key=natural_key):
        prow = panels[panels["panel"] == panel]
        for row, rrows in prow.groupby("row"):
            finished = rrows[rrows["state"] == "finished"]
            best = rank_configs(finished if len(finished) else rrows, select_metric).iloc[0]["config"]
            chosen = rrows[(rrows["config"] == best) & rrows["run_id"].isin(every.columns)]
            if chosen.empty:
                continue
            raw = every[list(chosen["run_id"])].dropna(how="all")
            smoothed = curves.smooth(curves.per_step(raw), alpha)
            out.setdefault(panel, {})[row] = curves.Curve(raw, smoothed.mean(axis=1), smoothed.min(axis=1),
                                                          smoothed.max(axis=1),
                                                          int((chosen["state"] != "finished").sum()))
    return out


# ---- a run with the values a fast path could get wrong ----

ODD_RUN = r"""
import sys, wandb
root, text = sys.argv[1], sys.argv[2] == "text"
run = wandb.init(mode="offline", dir=root, project="odd", id="odd-text" if text else "odd-numbers",
                 config={"objective": {"name": "grpo"}, "model": {"name": "m"}, "seed": 0})
run.summary["gone"] = 1.0
for s in range(40):
    row = {"train/global_step": s, "train/reward": 0.1 * s, "train/flag": s % 2 == 0}
    if s == 3: row["train/reward"] = float("nan")
    if s == 4: row["train/entropy"] = float("inf")
    if s == 5: row["train/entropy"] = float("-inf")
    if s == 6: row["train/big"] = 2 ** 70  # beyond 64 bits: an integer JSON parsers may reject
    if s == 7: row["train/big"] = 2 ** 63 + 1
    if s == 8: row["train/tiny"] = 5e-324
    if text and s == 9: row["train/note"] = "a text value"
    run.log(row)
del run.summary["gone"]  # a summary `remove`
run.finish()
"""


@pytest.fixture(scope="module")
def odd_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("odd_runs")
    for kind in ("numbers", "text"):
        subprocess.run([sys.executable, "-c", ODD_RUN, str(root), kind], check=True, timeout=CEILING)
    return root


# ---- tests ----

def _doubles(n: int, seed: int = 0) -> np.ndarray:
    """``n`` finite doubles spread over every exponent (random bit patterns), with their signs."""
    bits = np.random.default_rng(seed).integers(0, 2 ** 64, size=4 * n, dtype=np.uint64)
    x = bits.view(np.float64)
    return x[np.isfinite(x)][:n]


def test_numbers_are_parsed_exactly_as_json_parses_them():
    """orjson (speed) gives the same doubles, bit for bit, as ``json``; what it rejects goes to ``json``."""
    x = _doubles(20_000)
    values = [repr(float(v)) for v in x] + [f"{v:.17g}" for v in x[:2000]] + [f"{v:.6e}" for v in x[:2000]]
    values += ["0", "-0.0", "1", "true", "false", "null", END, "5e-324", "2.2250738585072011e-308",
               "1.7976931348623157e308", str(2 ** 53 + 1), str(2 ** 63 - 1), str(2 ** 63 + 1), str(2 ** 64 - 1)]
    expected = np.array(json.loads("[" + ",".join(values).replace(END, "null") + "]"), dtype=np.float64)
    got = wandb_offline._numbers(values)
    assert got.tobytes() == expected.tobytes()
    for rejected in (["NaN", "1.5"], ["Infinity", "-Infinity"], ["1e400"], [str(2 ** 70), "1"]):
        exp = np.array(json.loads("[" + ",".join(rejected) + "]"), dtype=np.float64)
        assert wandb_offline._numbers(rejected).tobytes() == exp.tobytes(), rejected
    assert wandb_offline._numbers(['"text"', "1"]) is None  # not all numbers: the caller reads rows instead


def _read_all(dirs: list[Path]) -> list:
    return [read_segment(d, idle_seconds=0, frame=True) for d in dirs]


def _segment_dirs(root: Path) -> list[Path]:
    dirs = find_run_dirs([root])
    assert dirs, root
    return dirs


@pytest.mark.parametrize("source", ["0.19.11", "0.22.3", "installed", "odd"])
def test_fast_reader_gives_the_segments_it_gave_before(source, wandb_root, odd_root, monkeypatch):
    root = {"installed": wandb_root, "odd": odd_root}.get(source, FIXTURES / source)
    dirs = _segment_dirs(root)
    fast = _read_all(dirs)
    with monkeypatch.context() as m:
        m.setattr(wandb_offline, "_history_frame", _history_frame_before)
        m.setattr(wandb_offline, "_apply_summaries", _apply_summaries_before)
        ref = _read_all(dirs)
    for a, b in zip(fast, ref):
        assert (a.run_id, a.config, a.summary, a.state, a.read_error) == (b.run_id, b.config, b.summary, b.state,
                                                                          b.read_error), a.path
        assert_frame_equal(a.history, b.history, check_exact=True)
    if source == "odd":  # the odd values did reach the frames (not silently dropped by both)
        numbers = next(s for s in fast if s.run_id == "odd-numbers").history
        assert np.isnan(numbers["train/reward"][3]) and numbers["train/entropy"][4] == np.inf
        assert numbers["train/big"][6] == float(2 ** 70) and numbers["train/tiny"][8] == 5e-324
        assert "gone" not in next(s for s in fast if s.run_id == "odd-text").summary
        assert (next(s for s in fast if s.run_id == "odd-text").history["train/note"] == "a text value").any()


def _tables(runs: pd.DataFrame) -> dict[str, str]:
    # the shipped fixtures predate evaluation profiles (unknown profile): allowed, as the readers are compared here
    return {s: render.markdown(build_table(runs, SPECS[s], allow_mixed_profiles=True)) for s in ("1", "2", "mini")}


def _assert_curves_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b) and all(list(a[p]) == list(b[p]) for p in a)
    for p in a:
        for r in a[p]:
            x, y = a[p][r], b[p][r]
            assert_frame_equal(x.raw, y.raw, check_exact=True)
            for f in ("mean", "lo", "hi"):
                assert_series_equal(getattr(x, f), getattr(y, f), check_exact=True)
            assert x.unfinished == y.unfinished


@pytest.mark.parametrize("source", ["0.22.3", "installed"])
def test_report_frames_tables_and_curves_are_those_before(source, wandb_root, monkeypatch):
    """Parallel fast reading (the default) and curves ranked once per report give the frames, tables and curve
    data of serial reading with the implementations before and curves ranked per figure."""
    root = wandb_root if source == "installed" else FIXTURES / source
    runs, history = load(offline=[root], idle_seconds=0)  # default: one reader process per CPU
    with monkeypatch.context() as m:
        m.setattr(wandb_offline, "_history_frame", _history_frame_before)
        m.setattr(wandb_offline, "_apply_summaries", _apply_summaries_before)
        ref_runs, ref_history = load(offline=[root], idle_seconds=0, workers=1)
    assert_frame_equal(runs, ref_runs, check_exact=True)
    assert runs.attrs == ref_runs.attrs
    assert_frame_equal(history, ref_history, check_exact=True)
    assert _tables(runs) == _tables(ref_runs)
    trained = runs[runs["objective.name"] != BASE]
    assert trained["group"].nunique() < len(trained)  # seeds share a setting: the choice is not trivial
    for name, (metrics, _, log) in curves.FIGURES.items():
        for metric in metrics:
            for spec in ("1", "mini"):
                new = curves.curve_data(runs, history, metric, SPECS[spec], positive_only=log)
                _assert_curves_equal(new, _curve_data_before(ref_runs, ref_history, metric, SPECS[spec],
                                                             positive_only=log))
                assert new or metric not in history or history[metric].isna().all(), (name, metric)


def test_curves_of_a_sweep_draw_only_the_chosen_setting():
    """Many settings per (panel, method): the curves are those of the setting the table shows, as before, and
    the figure's metric falls back to the older name only when no run at all logged the newer one."""
    rows, hist = [], []
    for g in range(6):
        for seed in range(3):
            rid = f"grpo-g{g}-s{seed}"
            rows.append({"run_id": rid, "state": "finished" if g != 5 else "crashed", "group": f"grpo-g{g}",
                         "objective.name": "grpo", "model.name": "m", "dataset.name": "d", "seed": seed,
                         curves.DEFAULT_SELECT_METRIC: (0.9 if g == 5 else 0.1 * (g % 4)) + 0.01 * seed})
            steps = np.arange(0, 30, 2 if g % 2 else 1)
            hist.append(pd.DataFrame({"run_id": rid, "step": steps, "train/reward": np.sin(steps + g + seed),
                                      "train/objective/seq_weight_var": np.abs(np.cos(steps * g)) + (g == 3)}))
    runs = pd.DataFrame(rows)
    runs.attrs["config_columns"] = ["objective.name", "model.name", "dataset.name", "seed"]
    history = pd.concat(hist, ignore_index=True)
    history.loc[history["run_id"] == "grpo-g0-s0", "train/objective/seq_weight_var_stale"] = 0.5
    for metric in ("train/reward", "train/objective/seq_weight_var", "train/objective/seq_weight_var_stale"):
        new = curves.curve_data(runs, history, metric, SPECS["mini"], positive_only=metric.endswith("var"))
        _assert_curves_equal(new, _curve_data_before(runs, history, metric, SPECS["mini"],
                                                     positive_only=metric.endswith("var")))
    (drawn,) = curves.curve_data(runs, history, "train/reward", SPECS["mini"])["m · d"].values()
    # the best held-out accuracy among finished settings (g5 is better but crashed)
    assert list(drawn.raw.columns) == ["grpo-g3-s0", "grpo-g3-s1", "grpo-g3-s2"]
    # g3 is drawn, g0 alone logged the stale variance: the figure keeps the newer name (as before) and is empty
    assert curves._figure(*_chosen(runs, history), name="seq_weight_var",
                          metrics=curves.FIGURES["seq_weight_var"][0], label="v", log=True,
                          out_dir=Path("/nonexistent"), alpha=curves.ALPHA) == []


def _chosen(runs, history):
    chosen = curves._choose(curves._panels(runs, SPECS["mini"]), curves.DEFAULT_SELECT_METRIC)
    return chosen, curves._chosen_history(history, chosen), curves._logged(history)


def test_record_framing_used_by_the_benchmark_reads_back(tmp_path):
    """``benchmarks/report.py`` re-frames records as W&B does: reading its output gives the records back."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    try:
        from report import write_records
    finally:
        sys.path.pop(0)
    records = [bytes([i % 251]) * n for i, n in enumerate([1, 10, 32_000, 32_761, 70_000, 5, 0, 3])]
    path = tmp_path / "run-x.wandb"
    write_records(path, records)
    assert wandb_offline.read_records(path) == (records, None)
    assert struct.unpack_from("<4s", path.read_bytes())[0] == b":W&B"


def test_figures_drawn_side_by_side_are_the_figures_drawn_one_by_one(wandb_root, tmp_path):
    runs, history = load(offline=[wandb_root], idle_seconds=0)
    one = curves.plot_all(runs, history, SPECS["mini"], tmp_path / "one", workers=1)
    two = curves.plot_all(runs, history, SPECS["mini"], tmp_path / "two", workers=2)
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 2 * len(curves.FIGURES)
    for a, b in zip(one, two):
        assert b.stat().st_size > 0
        if a.suffix == ".png":  # (a PDF carries its creation time)
            assert a.read_bytes() == b.read_bytes(), a.name
