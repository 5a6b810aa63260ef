"""``sspo-exp report`` on W&B offline runs written by wandb itself with verl's metric names and config layout
(tests/verl_report_helpers.py): the same tables and curves as our own runs, through sspo_exp/report/engines.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sspo_exp.report.curves import curve_data
from sspo_exp.report.sources import load
from sspo_exp.report.tables import SPECS, annotate, build_table
from verl_report_helpers import MODEL, RUNS, STEPS, reward


@pytest.fixture(scope="module")
def verl_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("verl_wandb")
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    env.pop("WANDB_SERVICE", None)
    subprocess.run([sys.executable, str(Path(__file__).parent / "verl_report_helpers.py"), str(root)], check=True,
                   env=env, timeout=600)  # fmt: skip
    return load(offline=[str(root)], workers=1)


def test_config_reads_as_ours(verl_runs):
    runs, _ = verl_runs
    assert len(runs) == 6
    by = {(r["objective.name"], r["seed"]): r for _, r in runs.iterrows()}
    sspo = by[("sspo", 0)]
    assert (sspo["gate.name"], sspo["gate.tau_pos"], sspo["gate.tau_neg"]) == ("atanlog", 0.2, 0.3)
    assert (sspo["model.name"], sspo["trainer.mu"], sspo["trainer.num_generations"]) == (MODEL, 2, 8)
    assert (by[("grpo", 1)]["objective.eps_low"], by[("grpo", 1)]["objective.eps_high"]) == (0.2, 0.2)
    gmpo = by[("gmpo", 0)]  # verl's log-space clip back to ours
    assert gmpo["objective.eps_low"] == pytest.approx(0.2) and gmpo["objective.eps_high"] == pytest.approx(0.3)
    # the two seeds of one setting are one configuration; different settings are not
    assert by[("sspo", 0)]["group"] == by[("sspo", 1)]["group"] != by[("grpo", 0)]["group"]


def test_table1_cells_are_verls_final_validation_in_percent(verl_runs):
    runs, _ = verl_runs
    table = build_table(runs, SPECS["1"])
    block = MODEL
    for mode, row in (("sspo_atanlog", "sspo/atanlog"), ("vanilla", "grpo")):
        evals = next(e for m, _, e, _ in RUNS if m == mode)
        for bench, (_, after) in evals.items():
            cell = table.cells[(block, row, bench)]
            assert cell.n == 2 and cell.mean == pytest.approx(100 * sum(after) / 2)
    # the Base row: verl's val_before_train (step 0), shared by every run of the model
    assert table.cells[(block, "base", "gsm8k")].mean == pytest.approx(70.0)


def test_curves_are_per_optimizer_step(verl_runs):
    runs, history = verl_runs
    sspo = history[history["run_id"].isin(runs[runs["objective.name"] == "sspo"]["run_id"])]
    trained = sspo.dropna(subset=["train/reward"])
    assert sorted(trained["step"].unique()) == [2 * s for s in range(1, STEPS + 1)]  # verl step s = 2s optimizer steps
    row = trained[trained["step"] == 4].iloc[0]
    seed = int(runs.set_index("run_id").loc[row["run_id"], "seed"])
    assert row["train/reward"] == pytest.approx(reward(0, seed, 2))
    assert row["train/entropy"] == pytest.approx(0.98) and row["train/objective/seq_weight_var"] == pytest.approx(0.002)
    curves = curve_data(annotate(runs, SPECS["1"]), history, "train/reward", SPECS["1"])
    (panel,) = curves.values()  # one setting (model x data): Qwen2.5-7B-Instruct
    assert set(panel) == {"grpo", "gmpo", "sspo/atanlog"}
    assert list(panel["sspo/atanlog"].raw.index) == [2 * s for s in range(1, STEPS + 1)]
    assert panel["sspo/atanlog"].raw.shape[1] == 2  # both seeds drawn
