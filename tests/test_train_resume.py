"""Resume picks the newest *complete* checkpoint; W&B's offline file is flushed often enough to survive a kill."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from sspo_exp.rundir import RunDir, checkpoint_is_complete
from sspo_exp import keys
from waiting import wait_for


def last_complete_checkpoint(run_dir: Path) -> str | None:
    newest = RunDir.of(run_dir).newest_complete_checkpoint()
    return None if newest is None else str(newest)


def _checkpoint(run_dir: Path, step: int, *files: str, state: str | None = '{"global_step": 0}') -> Path:
    path = run_dir / f"checkpoint-{step}"
    path.mkdir(parents=True)
    for name in files:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(b"x")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_resume_skips_checkpoints_cut_while_saving(tmp_path):
    complete = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth")
    _checkpoint(tmp_path, 2, *complete)
    good = _checkpoint(tmp_path, 10, *complete)  # numeric order: 10 > 9 although "10" < "9" as text
    _checkpoint(tmp_path, 9, *complete)
    _checkpoint(tmp_path, 12, "model.safetensors", "optimizer.pt", state=None)  # killed before trainer_state.json
    _checkpoint(tmp_path, 14, "model.safetensors", "optimizer.pt", state='{"global_st')  # killed while writing it
    _checkpoint(tmp_path, 16, "model.safetensors")  # killed before the optimizer state
    _checkpoint(tmp_path, 18, "optimizer.pt")  # no weights
    (tmp_path / "checkpoint-20.tmp").mkdir()  # not a checkpoint name
    assert last_complete_checkpoint(tmp_path) == str(good)


@pytest.mark.parametrize("files", [
    ("model.safetensors.index.json", "optimizer.pt"),  # sharded weights
    ("pytorch_model_fsdp_0/__0_0.distcp", "optimizer_0/__0_0.distcp"),  # FSDP sharded state dict
    ("model.safetensors", "global_step8/bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt"),  # DeepSpeed ZeRO
])  # fmt: skip
def test_distributed_checkpoint_layouts_count_as_complete(tmp_path, files):
    assert checkpoint_is_complete(_checkpoint(tmp_path, 8, *files))
    assert not checkpoint_is_complete(_checkpoint(tmp_path, 9, *files, state=None))


def test_no_checkpoint_means_a_fresh_start(tmp_path):
    assert last_complete_checkpoint(tmp_path) is None
    assert last_complete_checkpoint(tmp_path / "missing") is None
    _checkpoint(tmp_path, 4, "model.safetensors", state=None)
    assert last_complete_checkpoint(tmp_path) is None


def test_offline_wandb_file_is_flushed_while_the_run_is_open(tmp_path, monkeypatch):
    """wandb 0.31 flushes the offline ``.wandb`` file every 15 s by default; our settings flush it every
    ``WANDB_FLUSH_SECONDS``, so a logged row reaches the disk while the run is still open (what a SIGKILL would leave
    behind). The interval is checked on the settings; the row is awaited as an event (no guessed duration)."""
    import wandb

    from sspo_exp.report.wandb_offline import read_segment
    from sspo_exp.train.run import WANDB_FLUSH_SECONDS, wandb_settings

    settings = wandb_settings(wandb)
    assert settings.x_transaction_log_flush_interval == WANDB_FLUSH_SECONDS
    assert WANDB_FLUSH_SECONDS < wandb.Settings().x_transaction_log_flush_interval  # shorter than wandb's default

    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(dir=str(tmp_path), mode="offline", project="flush-test", settings=settings)
    try:
        run.log({"train/loss": 0.5, "train/global_step": 1})

        def logged_rows():
            (seg_dir,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
            return [r for r in read_segment(seg_dir).history if r.get("train/loss") == 0.5] and seg_dir

        seg_dir = wait_for(logged_rows, "the logged row in the offline file while the run is open")
        assert read_segment(seg_dir).project == "flush-test"
    finally:
        wandb.finish()
        wandb.teardown()


@pytest.mark.slow
def test_a_run_killed_after_its_last_checkpoint_resumes_without_an_extra_step(tmp_path):
    """Killed after saving checkpoint-<max_steps> but before summary.json: the relaunch evaluates that checkpoint and
    trains nothing (transformers' loop would have trained step max_steps + 1)."""
    import json

    import torch

    from sspo_exp.train.run import train
    from train_helpers import small_cfg, tiny_model_dir

    torch.set_num_threads(1)
    cfg = small_cfg(tmp_path / "runs", tiny_model_dir(tmp_path), max_steps=2, save_steps=2)
    first = train(cfg)
    (run,) = (tmp_path / "runs").glob("sspo-*")
    (run / "summary.json").unlink()  # the kill
    again = train(cfg)
    assert again["global_step"] == first["global_step"] == 2 and again["resumed_from"].endswith("checkpoint-2")
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2"]
    state = json.loads((run / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert again[keys.HELDOUT] == first[keys.HELDOUT]  # the same weights, greedy
    assert again["train_reward_last"] == first["train_reward_last"]  # the checkpoint's log history
