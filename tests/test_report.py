"""Reports from REAL W&B offline runs of the installed wandb (written once per session by tests/report_helpers.py,
the ``wandb_root`` fixture in conftest.py)."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import report_helpers as H
from sspo_exp import keys
from sspo_exp.report import render
from sspo_exp.report.cli import main
from sspo_exp.report.curves import curve_data, smooth
from sspo_exp.report.frames import merge_segments, normalize_history
from sspo_exp.report.sources import load, offline_runs
from sspo_exp.report.tables import SPECS, build_table
from sspo_exp.report.wandb_offline import read_records, read_segment
from waiting import CEILING

WANDB_CLI = H.wandb_leet_cli()
#: The killed launches' rows are on disk only with a wandb that flushes its file within a second (0.31's
#: x_transaction_log_flush_interval); older releases had not written them when SIGKILL came (see
#: tests/fixtures/wandb_runs/README.md; test_wandb_versions.py reads such files).
needs_flush = pytest.mark.skipif(not H.flushes_fast(), reason="this wandb cannot flush its file within a second")


@pytest.fixture(scope="module")
def frames(wandb_root):
    return load(offline=[wandb_root], idle_seconds=0)  # no exit record -> "killed" at once


def _seg_dirs(root: Path, run_id: str) -> list[Path]:
    return sorted(root.glob(f"wandb/offline-run-*-{run_id}"))


def _expected(cfg_name: str, bench: str) -> list[float]:
    row = next(r for r in H.ALL_RUNS if r[2] == cfg_name)
    return [v for v in row[5][bench] if v is not None]


# ---------------------------------------------------------------- reader


def test_reader_gives_config_history_summary(wandb_root):
    (d,) = _seg_dirs(wandb_root, "grpo-eps02-s1")
    seg = read_segment(d)
    assert seg.state == "finished" and seg.exit_code == 0 and seg.read_error is None
    assert seg.config["objective"] == {"name": "grpo", "eps_low": 0.2}
    assert seg.config["model"]["name"] == H.MODEL and seg.config["seed"] == 1
    assert seg.group == "grpo-eps0.2" and seg.job_type == "grpo"
    assert seg.summary["eval/gsm8k/pass@1"] == 82.0
    hist = normalize_history(seg.history)
    assert list(hist["step"]) == list(range(H.STEPS))  # held-out rows merged into their step's row
    assert np.allclose(hist["train/reward"], [H.reward(2, 1, s) for s in range(H.STEPS)])
    assert hist.loc[hist["step"] == 19, "train/heldout_accuracy"].item() == 0.40
    assert hist["train/heldout_accuracy"].notna().sum() == 3


@pytest.mark.skipif(WANDB_CLI is None, reason="no `wandb leet inspect` (wandb < 0.31)")
def test_reader_matches_wandb_leet_inspect(wandb_root):
    """W&B's own reader (`wandb leet inspect --json`, Go) sees the same history, summary and config."""
    for run_id in ("grpo-eps02-s1", "sspo-expsig-s2", "base-s0"):
        for d in _seg_dirs(wandb_root, run_id):
            lines = subprocess.run([WANDB_CLI, "leet", "inspect", "--json", str(d)], capture_output=True, text=True,
                                   check=True).stdout.splitlines()
            recs = [json.loads(x) for x in lines if x.strip()]
            leet_hist = [r["history"]["item"] for r in recs if r["type"] == "history"]
            seg = read_segment(d)
            assert seg.history == leet_hist
            summ = json.loads(subprocess.run([WANDB_CLI, "leet", "inspect", "--summary", "--json", str(d)],
                                             capture_output=True, text=True, check=True).stdout)
            assert summ["config"] == seg.config
            for k, v in seg.summary.items():
                if not k.startswith("_"):
                    assert summ["summary"][k] == v, k
            assert (summ["state"] == "finished") == (seg.state == "finished")


def test_truncated_file_reads_up_to_last_complete_record(wandb_root, tmp_path):
    (d,) = _seg_dirs(wandb_root, "sapo-t1-s0")
    src = next(d.glob("run-*.wandb"))
    full = read_segment(d)
    data = src.read_bytes()
    n_records = len(read_records(src)[0])
    seen = []
    for cut in np.linspace(200, len(data) - 1, 12).astype(int):
        cdir = tmp_path / f"offline-run-20260101_000000-cut{cut}"
        cdir.mkdir()
        (cdir / src.name).write_bytes(data[:cut])
        seg = read_segment(cdir, idle_seconds=0)
        assert seg.state == "killed" and seg.exit_code is None  # the exit record is the last one
        assert seg.history == full.history[: len(seg.history)]  # a clean prefix, nothing invented
        assert len(read_records(cdir / src.name)[0]) < n_records
        seen.append(len(seg.history))
    assert seen == sorted(seen) and seen[0] < seen[-1]
    bad = tmp_path / "offline-run-x" / src.name
    bad.parent.mkdir()
    bad.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    assert "checksum" in read_records(bad)[1]


@needs_flush
def test_killed_and_running_states(wandb_root):
    (d,) = _seg_dirs(wandb_root, "sspo-expsig-s2")
    assert read_segment(d, idle_seconds=0).state == "killed"
    assert read_segment(d, idle_seconds=1e9).state == "running"
    hist = normalize_history(read_segment(d).history)
    assert list(hist["step"]) == list(range(H.KILL_AT))


@needs_flush
def test_resumed_run_merges_two_directories(wandb_root, frames):
    assert len(_seg_dirs(wandb_root, "sspo-atanlog-s2")) == 2
    runs, history = frames
    r = runs.set_index("run_id").loc["sspo-atanlog-s2"]
    assert r["n_segments"] == 2 and r["state"] == "finished" and r["eval/gsm8k/pass@1"] == 92.0
    h = history[history["run_id"] == "sspo-atanlog-s2"]
    assert list(h["step"]) == list(range(H.STEPS))  # no gap, no duplicate
    assert np.allclose(h["train/reward"], [H.reward(4, 2, s) for s in range(H.STEPS)])  # re-logged steps won


def test_merge_segments_rule():
    a = normalize_history([{"train/global_step": s, "x": 1.0} for s in range(5)])
    b = normalize_history([{"train/global_step": s, "x": 2.0} for s in range(3, 7)])
    m = merge_segments([a, b])
    assert list(m["step"]) == list(range(7)) and list(m["x"]) == [1, 1, 1, 2, 2, 2, 2]
    assert list(merge_segments([a, normalize_history([])])["x"]) == [1.0] * 5


# ---------------------------------------------------------------- tables


@needs_flush
def test_table1_cells(frames):
    runs, _ = frames
    t = build_table(runs, SPECS["1"])
    assert t.blocks == [H.MODEL, H.TINY]
    b = H.MODEL
    assert t.rows[b] == ["base", "grpo", "sapo", "sspo/expsig", "sspo/atanlog"]
    for row, cfg in [("grpo", "grpo-eps0.2"), ("sapo", "sapo-t1"), ("sspo/atanlog", "sspo-atanlog"),
                     ("sspo/expsig", "sspo-expsig"), ("base", "base")]:
        for col in ("gsm8k", "math500", "aime25"):
            vals = _expected(cfg, col)
            c = t.cells[(b, row, col)]
            assert c.n == len(vals) and c.config == cfg
            assert c.mean == pytest.approx(np.mean(vals))
            assert (math.isnan(c.std) if len(vals) == 1 else c.std == pytest.approx(np.std(vals, ddof=1)))
    # selection by held-out accuracy: grpo-eps0.1 has higher test scores but lower held-out accuracy
    assert t.cells[(b, "grpo", "gsm8k")].mean == pytest.approx(82.0)
    # Δ Avg recomputed from the cells: GRPO (82-70 + 61-50 + 13.33-10)/3
    assert t.cells[(b, "grpo", "delta_avg")].mean == pytest.approx((12 + 11 + 10 / 3) / 3)
    assert t.cells[(b, "sspo/atanlog", "delta_avg")].mean == pytest.approx((21 + 15 + (63.3 / 3 - 10)) / 3)
    marks = {(r, c): t.cells[(b, r, c)].marks for r in t.rows[b] for c in t.columns}
    for col in t.columns:
        assert "best" in marks[("sspo/atanlog", col)]
        assert "second" in marks[("sspo/expsig", col)]
        assert "baseline" in marks[("grpo", col)] and "baseline" not in marks[("sapo", col)]
        assert not marks[("base", col)] - {"missing"}
    assert "few_seeds" in marks[("sspo/expsig", "gsm8k")] and "few_seeds" not in marks[("grpo", "gsm8k")]
    assert list(t.excluded["run_id"]) == ["sspo-expsig-s2"] and t.excluded["state"].item() == "killed"
    # the paper's numbers, matched by model name without the org prefix
    assert t.paper[(b, "grpo", "gsm8k")] == 84.5 and t.paper[(b, "sspo/atanlog", "delta_avg")] == 11.2


def test_table_marks_and_delta_avg_reproduce_the_paper():
    """Fed the paper's own Table 1 cells, we recompute its Δ Avg and place its bold/underline/italic."""
    paper = pd.read_csv(Path(__file__).parents[1] / "reports" / "paper" / "table1.csv")
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(len(paper))], "state": "finished", "group": "",
                         "objective.name": paper["method"], "gate.name": paper["gate"].fillna("clip"),
                         "model.name": paper["model"], **{f"eval/{c}/pass@1": paper[c] for c in
                                                          ("gsm8k", "math500", "aime25")}, "name": "",
                         "last_step": np.nan, "read_error": None})
    t = build_table(runs, SPECS["1"], allow_mixed_profiles=True)
    b = t.blocks[0]
    for _, p in paper.iterrows():
        row = f"sspo/{p['gate']}" if p["method"] == "sspo" else p["method"]
        ours = round(t.cells[(b, row, "delta_avg")].mean, 1)
        if row == "sspo/siglog":  # the paper prints 8.8; its own cells give (11.0 + 8.2 + 6.7) / 3 = 8.63
            assert ours == 8.6 and p["delta_avg"] == 8.8
        elif p["method"] != "base":
            assert ours == pytest.approx(p["delta_avg"], abs=1e-9)
    m = lambda r, c: t.cells[(b, r, c)].marks  # noqa: E731
    assert all("best" in m("sspo/atanlog", c) for c in t.columns)
    assert "second" in m("sspo/expatan", "gsm8k") and "second" in m("sspo/expatan", "math500")
    assert all("second" in m(f"sspo/{g}", "aime25") for g in ("expsig", "expatan", "gumbel", "siglog"))
    assert all("baseline" in m("gmpo", c) for c in t.columns) and not any("baseline" in m("grpo", c)
                                                                           for c in t.columns)


@needs_flush
def test_mini_table_and_missing_cells(frames):
    runs, _ = frames
    t = build_table(runs, SPECS["mini"])
    b = t.blocks[0]
    assert t.cells[(b, "sspo/atanlog", "arithmetic")].mean == pytest.approx(72.0)
    assert t.cells[(b, "sapo", "delta_avg")].mean == pytest.approx(21.0)
    assert not any("optimistic" in n for n in t.notes)
    # held-out accuracy == the test benchmark (the CPU grid's held-out set is its test split): flagged
    same = runs.assign(**{keys.HELDOUT: runs["eval/arithmetic/pass@1"] / 100})
    notes = build_table(same, SPECS["mini"]).notes
    assert any("equals eval/arithmetic/pass@1" in n and "looks like the test set" in n for n in notes)
    t2 = build_table(runs, SPECS["2"])  # no aime24 / codeact anywhere: marked, listed, no crash
    assert "missing" in t2.cells[(b, "grpo", "codeact")].marks
    md = render.markdown(t2)
    assert "Missing cells:" in md and "CodeAct" in md


def test_base_row_derived_from_eval_before(frames):
    """No explicit base run for the tiny model: Base = its finished training runs' eval_before, one value per
    seed (two cold-start seeds disagree) -> mean ± std over seeds; an explicit base run wins."""
    runs, _ = frames
    b = H.TINY
    killed = runs[runs["run_id"] == "tiny-grpo-s0"].assign(run_id="k", state="killed", **{
        "eval_before/arithmetic/pass@1": 99.0, "eval_before/gsm8k/pass@1": 99.0})
    runs = pd.concat([runs, killed], ignore_index=True)
    t = build_table(runs, SPECS["mini"])
    assert t.rows[b] == ["base", "grpo", "sspo/atanlog"]
    base = t.cells[(b, "base", "arithmetic")]
    distinct = [20.0, 30.0]  # per seed (grpo and sspo share them); the killed run's eval_before (99) not counted
    assert base.mean == pytest.approx(25.0) and base.std == pytest.approx(np.std(distinct, ddof=1))
    assert base.n == 2 and "derived" in base.marks and not base.marks - {"derived"}
    assert t.cells[(b, "grpo", "arithmetic")].mean == pytest.approx(np.mean(_expected("tiny-grpo", "arithmetic")))
    assert t.cells[(b, "grpo", "delta_avg")].mean == pytest.approx(42.0 - 25.0)
    assert t.cells[(b, "sspo/atanlog", "delta_avg")].mean == pytest.approx(53.0 - 25.0)
    # the explicit base run (20.0) wins over grpo-eps0.1's disagreeing eval_before (21.0), which is noted
    q = t.cells[(H.MODEL, "base", "arithmetic")]
    assert q.mean == 20.0 and "derived" not in q.marks and q.config == "base"
    assert any(H.MODEL in n and "21.0" in n and "explicit" in n for n in t.notes)
    assert any(n.startswith("tiny / Arithmetic") and "20.0, 30.0" in n and "over the 2 seeds" in n for n in t.notes)
    assert "(n) = number of seeds" in render.markdown(t)
    md = render.markdown(t)
    assert "| tiny | Base | 25.0 ± 7.1 (2) ‡ |  |" in md
    assert "| tiny | GRPO | *<ins>42.0 ± 2.8</ins>* (2) † | *<ins>17.0</ins>* |" in md
    assert r"25.0 $\pm$ 7.1$^\ddagger$" in render.latex(t)
    # agreeing seeds: std 0 over the 2 seeds and no disagreement note; no eval_before at all -> missing
    t1 = build_table(runs, SPECS["1"], allow_mixed_profiles=True)
    g = t1.cells[(b, "base", "gsm8k")]
    assert (g.mean, g.n, g.std, g.marks) == (5.0, 2, 0.0, {"derived"})
    assert "missing" in t1.cells[(b, "base", "math500")].marks
    assert not any("GSM8K" in n and "tiny" in n for n in t1.notes)
    # a base run with only some benchmarks: derived values fill only the others
    extra = pd.DataFrame([{"run_id": "tb", "name": "", "state": "finished", "objective.name": "base",
                           "model.name": b, "eval/arithmetic/pass@1": 27.0}])
    t2 = build_table(pd.concat([runs, extra], ignore_index=True), SPECS["1"], columns=("gsm8k", "arithmetic"),
                     allow_mixed_profiles=True)
    assert t2.cells[(b, "base", "arithmetic")].mean == 27.0 and t2.cells[(b, "base", "gsm8k")].mean == 5.0


def _synthetic_runs(rows: list[dict]) -> pd.DataFrame:
    base = {"name": "", "state": "finished", "group": "", "model.name": "m", "last_step": np.nan, "read_error": None}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_derived_base_is_one_value_per_seed():
    """eval_before 50, 50, 60 from seeds 0, 1, 2 -> 53.3 (n=3), not the mean of the distinct values 55.0 (n=2);
    a second run of seed 0 (another method, same initial weights) does not count twice."""
    before = "eval_before/arithmetic/pass@1"
    runs = _synthetic_runs(
        [{"run_id": f"g{s}", "objective.name": "grpo", "seed": s, before: v, "eval/arithmetic/pass@1": 70.0}
         for s, v in enumerate([50.0, 50.0, 60.0])]
        + [{"run_id": "s0", "objective.name": "sspo", "gate.name": "atanlog", "seed": 0, before: 50.0}])
    c = build_table(runs, SPECS["mini"], allow_mixed_profiles=True).cells[("m", "base", "arithmetic")]
    assert (c.n, c.mean, c.std) == (3, pytest.approx(160 / 3), pytest.approx(np.std([50, 50, 60], ddof=1)))
    # runs of one seed that disagree: that seed counts once with their mean, and it is noted
    t = build_table(runs.assign(**{before: [50.0, 50.0, 60.0, 52.0]}), SPECS["mini"], allow_mixed_profiles=True)
    assert t.cells[("m", "base", "arithmetic")].mean == pytest.approx((51 + 50 + 60) / 3)
    assert any("same seed disagree" in n for n in t.notes)


@needs_flush
def test_render_markdown_latex_csv(frames):
    runs, _ = frames
    t = build_table(runs, SPECS["1"])
    md, tex, csv = render.markdown(t), render.latex(t), render.csv_frame(t)
    assert "**91.0 ± 1.0** (3)" in md and "<ins>85.5 ± 0.7</ins> (2) †" in md and "*82.0 ± 2.0* (3)" in md
    assert "sspo-expsig-s2 (sspo-expsig-seed2): killed" in md and "last step 24" in md
    assert "84.5 (-2.5)" in md  # paper (ours − paper)
    assert r"\textbf{91.0 $\pm$ 1.0}" in tex and r"\underline{85.5 $\pm$ 0.7}$^\dagger$" in tex
    assert r"\textit{82.0 $\pm$ 2.0}" in tex
    row = csv[(csv["method"] == "grpo") & (csv["column"] == "gsm8k")].iloc[0]
    assert row["n"] == 3 and row["paper"] == 84.5 and row["delta_to_paper"] == pytest.approx(-2.5)
    assert row["config"] == "grpo-eps0.2" and "baseline" in row["marks"]


def test_empty_source_gives_an_empty_table(tmp_path):
    runs, history = load(offline=[tmp_path])
    t = build_table(runs, SPECS["mini"], allow_mixed_profiles=True)
    assert t.blocks == [] and "Pass@1" in render.markdown(t)


# ---------------------------------------------------------------- curves, API source, CLI


def test_smoothing_is_bias_corrected_ema():
    s = smooth(pd.Series([1.0, 2.0, 3.0]), alpha=0.5)
    assert list(s) == pytest.approx([1.0, (2 + 0.5) / 1.5, (3 + 0.5 * 2 + 0.25) / 1.75])
    with pytest.raises(ValueError, match="alpha"):
        smooth(pd.Series([1.0]), alpha=0)


@needs_flush
def test_curve_data_mean_over_seeds_then_smoothed(frames):
    runs, history = frames
    data = curve_data(runs, history, "train/reward", SPECS["mini"], alpha=0.3)
    assert len(data) == 2
    panel = f"{H.MODEL} · arithmetic"
    curve = data[panel]["grpo"]
    wide, mean, unfinished = curve.raw, curve.mean, curve.unfinished
    assert sorted(wide.columns) == ["grpo-eps02-s0", "grpo-eps02-s1", "grpo-eps02-s2"] and unfinished == 0
    raw = pd.Series([np.mean([H.reward(2, s, k) for s in range(3)]) for k in range(H.STEPS)])
    assert np.allclose(mean.values, raw.ewm(alpha=0.3).mean().values)
    assert data[panel]["sspo/expsig"].unfinished == 1  # the killed seed is drawn, and counted as not finished
    assert "base" not in data[panel]


def test_curves_choose_the_configuration_the_table_shows(frames):
    """A config whose only run crashed cannot be drawn in place of the finished config the table shows, even with a
    higher selection metric; every seed of the chosen config is drawn, a crashed one included."""
    runs, history = frames
    g = runs[runs["run_id"] == "grpo-eps02-s0"]
    crashed = g.assign(run_id="grpo-x-s0", group="grpo-x", state="crashed", **{"train/heldout_accuracy": 0.99})
    runs = pd.concat([runs, crashed], ignore_index=True)
    history = pd.concat([history, history[history["run_id"] == "grpo-eps02-s0"].assign(run_id="grpo-x-s0")])
    t = build_table(runs, SPECS["mini"])
    assert t.cells[(H.MODEL, "grpo", "arithmetic")].config == "grpo-eps0.2"
    data = curve_data(runs, history, "train/reward", SPECS["mini"])
    assert sorted(data[f"{H.MODEL} · arithmetic"]["grpo"].raw.columns) == [f"grpo-eps02-s{s}" for s in range(3)]
    # no finished run at all (a grid still running): the best config over runs of any state is drawn
    only = runs[runs["run_id"] == "grpo-x-s0"]
    assert list(curve_data(only, history, "train/reward", SPECS["mini"])[f"{H.MODEL} · arithmetic"]["grpo"].raw
                .columns) == ["grpo-x-s0"]


class _FakeRun:
    def __init__(self, r):
        self.id, self.name, self.state, self.group, self.job_type = r.run_id, r.name, r.state, r.group, r.job_type
        self.tags, self.config = list(r.tags), {**r.config, "_wandb": {"x": 1}}
        self.summary_metrics = r.summary
        self._rows = [{k: v for k, v in row.items() if k != "step" and pd.notna(v)}
                      for row in r.history.to_dict("records")]

    def scan_history(self, page_size=1000):
        return iter(self._rows)


class _FakeApi:
    def __init__(self, runs):
        self._runs, self.calls = runs, []

    def runs(self, path, filters=None):
        self.calls.append((path, filters))
        return [_FakeRun(r) for r in self._runs]


def test_api_source_gives_the_same_tables(wandb_root, frames):
    api = _FakeApi(offline_runs([wandb_root], idle_seconds=0))
    runs, history = load(project="ent/proj", filters={"group": "x"}, api=api)
    assert api.calls == [("ent/proj", {"group": "x"})]
    a = render.csv_frame(build_table(runs, SPECS["1"]))
    b = render.csv_frame(build_table(frames[0], SPECS["1"]))
    pd.testing.assert_frame_equal(a, b)
    assert len(history) == len(frames[1])


def test_cli_end_to_end(wandb_root, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--offline", str(wandb_root), "--table", "mini", "--out", str(out), "--curves",
               "--smoothing", "0.1", "--running-after", "0"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| Qwen/Qwen2.5-7B-Instruct | SSPO (atanlog) | **72.0 ± 2.0** (3) | **52.0** |" in printed
    for name in ("table_mini.md", "table_mini.tex", "table_mini.csv", "curves_reward.png", "curves_entropy.pdf",
                 "curves_seq_weight_var.png"):
        assert (out / name).stat().st_size > 0, name
    assert main(["--offline", str(wandb_root), "--format", "html"]) == 2
    assert main(["--offline", str(tmp_path / "nope")]) == 2
    assert main(["--offline", str(wandb_root), "--smoothing", "1.5"]) == 2


def test_cli_rejects_unknown_columns(wandb_root, capsys):
    assert main(["--offline", str(wandb_root), "--table", "mini", "--columns", "arithmetc", "--format", "csv",
                 "--out", str(wandb_root / "unused")]) == 2
    err = capsys.readouterr().err
    assert "--columns arithmetc unknown" in err and "gsm8k" in err and "arithmetic" in err
    assert not (wandb_root / "unused").exists()


def test_cli_rejects_a_reeval_profile_no_run_holds(wandb_root, tmp_path, capsys):
    """A typo in --reeval would print a table of dashes over the last one: exit 2 naming what the runs hold."""
    out = tmp_path / "out"
    assert main(["--offline", str(wandb_root), "--table", "mini", "--reeval", "vllm-bf16-512tok", "--out", str(out)]) == 2
    assert "--reeval vllm-bf16-512tok: no run has re-scored results under that profile" in capsys.readouterr().err
    assert not out.exists()


def test_eval_segment_does_not_finish_a_crashed_run(monkeypatch):
    """A killed training segment + a summary-only segment of the same id that exited 0 (``sspo-exp eval
    eval.model=runs/<id>``) stays killed; a resumed segment that trains and finishes does finish it."""
    from sspo_exp.report import sources
    from sspo_exp.report.wandb_offline import Segment

    def seg(i, state, steps, summary=None):
        return Segment(path=Path(f"d{i}"), run_id="r", state=state, summary=summary or {},
                       history=normalize_history([{"train/global_step": s, "train/reward": 0.1} for s in steps]),
                       config={"objective": {"name": "grpo"}} if steps else {})

    cases = {"killed": [seg(0, "killed", range(5)), seg(1, "finished", [], {"eval/gsm8k/pass@1": 50.0})],
             "finished": [seg(0, "killed", range(5)), seg(1, "finished", range(3, 9))],
             "crashed": [seg(0, "crashed", []), seg(1, "finished", [], {"eval/gsm8k/pass@1": 50.0})]}
    for expected, segs in cases.items():
        monkeypatch.setattr(sources, "read_offline", lambda *a, segs=segs, **kw: segs)
        (r,) = sources.offline_runs(["x"])
        assert r.state == expected and r.n_segments == 2
    base = [seg(0, "finished", [], {"eval/gsm8k/pass@1": 40.0})] * 2  # an eval-only (base) run, evaluated twice
    monkeypatch.setattr(sources, "read_offline", lambda *a, **kw: base)
    assert sources.offline_runs(["x"])[0].state == "finished"


def test_fast_path_equals_plain_wandb_records_and_parallel_read(wandb_root):
    """The merged-items view (speed) reads exactly what W&B's Record class reads, file by file."""
    from sspo_exp.report.wandb_offline import find_run_dirs, read_offline

    for d in find_run_dirs([wandb_root]):
        a, b = read_segment(d), read_segment(d, fast=False)
        assert (a.history, a.summary, a.config, a.state) == (b.history, b.summary, b.config, b.state), d
    one, two = read_offline([wandb_root]), read_offline([wandb_root], workers=2)
    assert [(s.path, s.history, s.summary) for s in one] == [(s.path, s.history, s.summary) for s in two]


@needs_flush
def test_still_running_run_is_listed_not_counted(wandb_root):
    runs, _ = load(offline=[wandb_root], idle_seconds=1e9)  # "written to recently": still running
    t = build_table(runs, SPECS["mini"], allow_mixed_profiles=True)
    assert t.excluded.set_index("run_id").loc["sspo-expsig-s2", "state"] == "running"
    assert "sspo-expsig-s2 (sspo-expsig-seed2): running" in render.markdown(t)
    assert t.cells[(t.blocks[0], "sspo/expsig", "arithmetic")].n == 2
    assert main(["--offline", str(wandb_root), "--filters", "{}"]) == 2  # --filters needs --project


def test_flatten_config_keeps_hydra_keys_and_media_dicts():
    from sspo_exp.report.frames import flatten

    cfg = {"objective": {"_target_": "x.y", "name": "sspo"}, "seed": 1, "img": {"_type": "image-file", "p": 1}}
    assert flatten(cfg) == {"objective._target_": "x.y", "objective.name": "sspo", "seed": 1,
                            "img": {"_type": "image-file", "p": 1}}


def test_a_table_says_when_finished_runs_come_from_other_code_versions():
    from sspo_exp.report.tables import code_version_notes

    done = pd.DataFrame({"code.version": ["0.2.0", "0.2.0", "0.1.0"], "code.commit": ["abc", "abc", None]})
    (note,) = code_version_notes(done)
    assert "2 code versions" in note and "2 run(s) by sspo-exp 0.2.0 @ abc" in note and "0.1.0 @ ?" in note
    assert code_version_notes(done.iloc[:2]) == [] and code_version_notes(pd.DataFrame({"x": [1]})) == []


def test_a_settings_seeds_are_one_configuration_across_the_group_name_change():
    """The W&B group became ``<label>·<setting hash>``; a sweep relaunched after that upgrade adds seeds under the new
    group to runs logged under the old one. Both carry the setting hash in their config, so the report must count them
    as one configuration (not two, each with fewer seeds); a different setting with the same label stays apart."""
    import pandas as pd

    from sspo_exp.report.tables import _config_key

    label = "tiny·arithmetic·grpo·ε0.2·μ2"
    old = pd.Series({"group": label, "identity.setting_hash": "a1b2c3", "seed": 0})
    new = pd.Series({"group": f"{label}·a1b2c3", "identity.setting_hash": "a1b2c3", "seed": 1})
    other = pd.Series({"group": f"{label}·ffffff", "identity.setting_hash": "ffffff", "seed": 0})
    assert _config_key(old, ["seed"]) == _config_key(new, ["seed"]) == f"{label}·a1b2c3"
    assert _config_key(other, ["seed"]) != _config_key(new, ["seed"])
    assert _config_key(pd.Series({"group": "g", "seed": 0}), ["seed"]) == "g"  # no identity block: the group
