"""launcher=local_parallel (conf/launcher/local_parallel.yaml): a sweep's jobs run in worker processes at once, one
torch thread each; a relaunch skips finished runs."""

from __future__ import annotations

import json

import pytest
from hydra.errors import InstantiationException

from sspo_exp.sweeps import grid
from sspo_exp.sweeps.threads import TorchThreads, set_threads
from sweeps_helpers import TINY, rendezvous_task, set_env

SWEEP = "experiment: cpu_minigrid\nseeds: [0, 1]\ngrid:\n  - {objective: grpo, objective.eps_low: 0.1}\n"


def test_two_jobs_run_at_once_in_two_worker_processes_with_one_thread_each(tmp_path, monkeypatch):
    set_env(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OMP_NUM_THREADS")  # the launcher's callback, not the test's environment, sets it
    out = tmp_path / "runs"
    out.mkdir()
    (out / "expected").write_text("2")
    (tmp_path / "two.yaml").write_text(SWEEP)
    report = grid.run_sweep(tmp_path / "two.yaml", ["launcher=local_parallel", f"output_root={out}"], task=rendezvous_task)
    assert report == {"points": 2, "skipped": 0, "launched": 2, "failed": []}
    jobs = [json.loads((out / f"started-{s}").read_text()) for s in (0, 1)]
    assert len({j["pid"] for j in jobs} | {__import__("os").getpid()}) == 3  # two workers, neither is this process
    assert all(j["threads"] == 1 and j["omp"] == "1" for j in jobs)


def test_thread_count_is_checked_before_any_job_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "two.yaml").write_text(SWEEP)
    with pytest.raises(InstantiationException, match=r"threads must be an integer >= 1, got 0"):
        grid.run_sweep(tmp_path / "two.yaml", ["launcher=local_parallel", "hydra.callbacks.torch_threads.threads=0",
                                               f"output_root={tmp_path / 'runs'}"], task=rendezvous_task)  # fmt: skip
    assert not list((tmp_path / "runs").glob("started-*"))
    with pytest.raises(ValueError, match="got True"):
        TorchThreads(True)


def test_set_threads_sets_torch_and_the_thread_variables(monkeypatch):
    import torch

    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        assert __import__("os").environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_parallel_sweep_trains_both_runs_and_a_relaunch_skips_them(tmp_path, monkeypatch):
    set_env(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "two.yaml").write_text(SWEEP)
    common = [*TINY, "launcher=local_parallel", f"output_root={tmp_path / 'runs'}"]
    assert grid.run_sweep(tmp_path / "two.yaml", common) == {"points": 2, "skipped": 0, "launched": 2, "failed": []}
    for job in grid.plan(grid.sweep_jobs(grid.load_sweep(tmp_path / "two.yaml"), common)):
        assert job.status == "done"
        assert json.loads((job.run_dir / "summary.json").read_text())["global_step"] == 4
        assert list(job.run_dir.glob("wandb/offline-run-*"))
    assert grid.run_sweep(tmp_path / "two.yaml", common) == {"points": 2, "skipped": 2, "launched": 0, "failed": []}
