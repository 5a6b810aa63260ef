"""A sweep of real tiny-model training runs through the local Hydra launcher; a re-launch skips them (slow)."""

from __future__ import annotations

import json

import pytest
import torch

from sspo_exp.sweeps import grid
from sweeps_helpers import TINY, set_env

pytestmark = pytest.mark.slow


def test_cpu_sweep_trains_every_point_and_a_relaunch_skips_them(tmp_path, monkeypatch):
    set_env(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    sweep = tmp_path / "mini.yaml"
    sweep.write_text("experiment: cpu_minigrid\nseeds: [0]\ngrid:\n  - {objective: grpo, objective.eps_low: 0.1}\n"
                     "  - {objective: sspo, gate: gumbel}\n")  # fmt: skip
    common = [*TINY, f"output_root={tmp_path / 'runs'}"]
    report = grid.run_sweep(sweep, common)
    assert report == {"points": 2, "skipped": 0, "launched": 2, "failed": []}
    planned = grid.plan(grid.sweep_jobs(grid.load_sweep(sweep), common))
    for job in planned:
        summary = json.loads((job.run_dir / "summary.json").read_text())
        assert summary["run_id"] == job.run_id and summary["global_step"] == 4
        config = (job.run_dir / "config.yaml").read_text()
        assert "eps_low: 0.1" in config if job.run_id.startswith("grpo") else "name: gumbel" in config
        assert list(job.run_dir.glob("wandb/offline-run-*"))  # the W&B record the report reads
    assert grid.run_sweep(sweep, common) == {"points": 2, "skipped": 2, "launched": 0, "failed": []}
