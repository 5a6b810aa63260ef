"""Held-out accuracy has one name (``keys.HELDOUT``, ``eval/heldout/accuracy``; ``keys.HELDOUT_BEFORE``); runs logged
before it moved under ``eval/`` spell it four old ways, and every reader takes both: the report's frames, the CPU
study's stored columns, the Optuna objective and pruning."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from sspo_exp import keys
from sspo_exp.report import study_data
from sspo_exp.report.frames import RunData, normalize_history, to_frames
from sspo_exp.report.tables import SPECS, build_table

OLD_SUMMARY = {keys.OLD_HELDOUT: 0.7, keys.OLD_HELDOUT_AFTER: 0.75, keys.OLD_HELDOUT_BEFORE: 0.5,
               "eval/arithmetic/pass@1": 75.0}  # fmt: skip
NEW_SUMMARY = {keys.HELDOUT: 0.9, keys.HELDOUT_BEFORE: 0.55, "eval/arithmetic/pass@1": 90.0}


def _run(run_id: str, summary: dict, heldout_key: str, values: list[float], objective: str) -> RunData:
    rows = [{keys.GLOBAL_STEP: s, heldout_key: v} for s, v in enumerate(values)]
    return RunData(run_id=run_id, state="finished", group=objective, job_type=objective,
                   config={"objective": {"name": objective}, "model": {"name": "m"}, "dataset": {"name": "arithmetic"},
                           "seed": 0}, summary=summary, history=normalize_history(rows))  # fmt: skip


def _frames():
    return to_frames([_run("old-s0", OLD_SUMMARY, keys.OLD_HELDOUT, [0.5, 0.7], "grpo"),
                      _run("new-s0", NEW_SUMMARY, keys.HELDOUT, [0.55, 0.9], "sspo")])


def test_the_one_name_is_in_the_eval_section_and_the_trainer_buffer_spells_it_for_rewrite_logs():
    from transformers.integrations.integration_utils import rewrite_logs

    assert keys.HELDOUT == "eval/heldout/accuracy" and keys.HELDOUT_BEFORE == "eval_before/heldout/accuracy"
    assert rewrite_logs({keys.HELDOUT_LOG: 0.5}) == {keys.HELDOUT: 0.5}  # what W&B receives from the trainer's row
    assert keys.parse_eval_key(keys.HELDOUT) == ("eval", "heldout", "accuracy")  # beside eval/<benchmark>/<stat>
    assert "heldout" not in keys.benchmarks_in([keys.HELDOUT, "eval/gsm8k/pass@1"])  # not a table column


def test_an_old_spelling_run_and_a_new_spelling_run_read_alike_in_the_report():
    runs, history = _frames()
    assert not set(keys.LEGACY) & set(runs.columns) and not set(keys.LEGACY) & set(history.columns)
    by_id = runs.set_index("run_id")
    # the old run's final evaluation (heldout_accuracy/after) wins over its last logged value (train/heldout_accuracy)
    assert by_id.loc["old-s0", keys.HELDOUT] == 0.75 and by_id.loc["new-s0", keys.HELDOUT] == 0.9
    assert by_id.loc["old-s0", keys.HELDOUT_BEFORE] == 0.5 and by_id.loc["new-s0", keys.HELDOUT_BEFORE] == 0.55
    hist = history.set_index(["run_id", "step"])[keys.HELDOUT]
    assert hist.to_dict() == {("old-s0", 0): 0.5, ("old-s0", 1): 0.7, ("new-s0", 0): 0.55, ("new-s0", 1): 0.9}
    # the tables' selection metric finds both (and a frame stored with the old names, the CPU study's, too)
    table = build_table(runs, SPECS["mini"], paper_dir=None, allow_mixed_profiles=True)
    assert table.select_metric == keys.HELDOUT and not any("no run has the selection metric" in n for n in table.notes)
    old_frame = runs.rename(columns={keys.HELDOUT: keys.OLD_HELDOUT})
    old_frame.attrs = runs.attrs
    assert build_table(old_frame, SPECS["mini"], paper_dir=None, allow_mixed_profiles=True).select_metric == \
        keys.OLD_HELDOUT


def test_the_cpu_study_stores_both_spellings_under_its_old_column_names(tmp_path, monkeypatch):
    from sspo_exp.report import sources

    monkeypatch.setattr(sources, "load", lambda offline: _frames())
    runs, history = study_data.collect([tmp_path / "runs"], tmp_path / "data")
    header = (tmp_path / "data" / "runs.csv").read_text().splitlines()[0].split(",")
    assert {keys.OLD_HELDOUT, keys.OLD_HELDOUT_BEFORE, keys.OLD_HELDOUT_AFTER} <= set(header)
    assert keys.HELDOUT not in header and keys.HELDOUT not in history.columns
    r = runs.set_index("run_id")
    assert r.loc["new-s0", keys.OLD_HELDOUT_AFTER] == 0.9 and r.loc["new-s0", keys.OLD_HELDOUT_BEFORE] == 0.55
    assert r.loc["old-s0", keys.OLD_HELDOUT_AFTER] == 0.75
    assert history.set_index(["run_id", "step"]).loc[("new-s0", 1), keys.OLD_HELDOUT] == 0.9


def test_optuna_reads_either_spelling_of_a_runs_summary_and_an_old_space_file():
    from sspo_exp.sweeps.space import check_space

    space = {"study": "s", "params": {"gate.tau_pos": {"low": 0.1, "high": 1.0}}}
    assert check_space({**space, "metric": keys.OLD_SUMMARY_AFTER})["metric"] == keys.HELDOUT
    assert check_space(space)["metric"] == keys.HELDOUT
    old_json = {keys.OLD_SUMMARY_BEFORE: 0.4, keys.OLD_SUMMARY_AFTER: 0.8}  # an old run's summary.json
    assert keys.read(old_json, keys.HELDOUT) == 0.8 and keys.read(old_json, keys.HELDOUT_BEFORE) == 0.4
    assert keys.read({keys.HELDOUT: 0.6, **old_json}, keys.HELDOUT) == 0.6  # the current name first
    assert keys.read({}, keys.HELDOUT) is None and keys.current_name("train/reward") == "train/reward"


@pytest.mark.parametrize("logged", [keys.HELDOUT_LOG, keys.OLD_HELDOUT_LOG])
def test_pruning_reports_the_held_out_accuracy_of_either_log_row(tmp_path, logged):
    from transformers import TrainerControl, TrainerState

    from sspo_exp.sweeps import pruning

    reported = []
    trial = SimpleNamespace(report=lambda v, s: reported.append((s, v)), should_prune=lambda: False)
    cb = pruning.reporter(trial, 0)
    state = TrainerState(max_steps=4)
    state.global_step = 2
    cb.on_log(SimpleNamespace(output_dir=str(tmp_path)), state, TrainerControl(), logs={logged: 0.25, "loss": 0.0})
    cb.on_log(SimpleNamespace(output_dir=str(tmp_path)), state, TrainerControl(), logs={"loss": 0.0})
    assert reported == [(2, 0.25)] and not math.isnan(reported[0][1])
    assert pd.isna(keys.read({}, keys.HELDOUT_LOG, float("nan")))
