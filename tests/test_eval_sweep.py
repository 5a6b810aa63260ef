"""``sspo-exp eval --sweep FILE`` / ``--group G``: every finished run of a sweep (or W&B group) re-scored under one
evaluation profile; points with no finished run are skipped and named."""

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from sweeps_helpers import TINY
from test_eval import build_tiny

from sspo_exp import keys
from sspo_exp.evaluation.cli import main
from sspo_exp.sweeps import rescore
from sspo_exp.sweeps.grid import load_sweep, plan, sweep_jobs

ARITH = Path(__file__).parents[1] / "conf" / "dataset" / "arithmetic.yaml"
EVAL = ["eval.benchmarks=[arithmetic]", "eval.max_new_tokens=4", "eval.progress=false", "eval.dtype=float32"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def _sweep(tmp_path: Path) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text("seeds: [0]\ngrid:\n  - objective: [grpo, sspo]\n")
    return path


def _finish(run_dir: Path, tiny_dir: Path, group: str, summary: bool = True) -> None:
    """A run as training leaves it: config, run.json, a complete checkpoint and (finished) summary.json."""
    ckpt = run_dir / "checkpoint-4"
    shutil.copytree(tiny_dir, ckpt)
    (ckpt / "trainer_state.json").write_text('{"global_step": 4}')
    (ckpt / "optimizer.pt").write_bytes(b"x")
    data = OmegaConf.load(ARITH)
    data.test_size = 5
    OmegaConf.save(OmegaConf.create({"dataset": data, "wandb": {"mode": "offline", "project": "sspo-exp"}, "seed": 0}),
                   run_dir / "config.yaml")
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_dir.name, "group": group, "setting_hash": "abc123"}))
    if summary:
        (run_dir / "summary.json").write_text("{}")


def test_overrides_are_split_between_the_sweep_and_the_evaluation():
    train, evaluation = rescore.split_overrides(
        ["trainer.max_steps=4", "eval.backend=vllm", "output_root=/r", "launcher=submitit_slurm",
         "hydra.launcher.partition=gpu", "+eval.x=1", "model=tiny", "arithmetic.test_size=5"])
    assert train == ["trainer.max_steps=4", "output_root=/r", "model=tiny"]
    assert evaluation == ["eval.backend=vllm", "output_root=/r", "launcher=submitit_slurm",
                          "hydra.launcher.partition=gpu", "+eval.x=1", "arithmetic.test_size=5"]


def test_a_sweep_is_rescored_run_by_run_and_a_point_without_a_finished_run_is_named(tiny_dir, tmp_path, monkeypatch,
                                                                                       capsys):  # fmt: skip
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    sweep = _sweep(tmp_path)
    train = [*TINY, f"output_root={tmp_path}"]
    jobs = plan(sweep_jobs(load_sweep(sweep), train))  # the sweep's own expansion and run ids
    assert [j.run_id.split("-")[0] for j in jobs] == ["grpo", "sspo"]
    grpo, sspo = jobs
    _finish(grpo.run_dir, tiny_dir, "g")  # finished; the SSPO point has no run at all

    assert main(["--sweep", str(sweep), *train, *EVAL, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"skip    {sspo.run_id}" in out and "new" in out and "no finished run" in out
    assert f"score   {grpo.run_id}" in out and "1 to score under profile hf-float32-4tok, 1 skipped" in out
    assert not (grpo.run_dir / "reeval").exists()  # a dry run scores nothing

    assert main(["--sweep", str(sweep), *train, *EVAL]) == 0
    out = capsys.readouterr().out
    assert f"sspo-exp report --offline {tmp_path.resolve()} --reeval hf-float32-4tok" in out
    record = json.loads((grpo.run_dir / "reeval" / "hf-float32-4tok" / "arithmetic.json").read_text())
    assert record["n"] == 5 and record["model"]["run_id"] == grpo.run_id
    assert not sspo.run_dir.exists()
    # where the report reads the trained rows of `--reeval hf-float32-4tok` (sspo_exp.report.table_notes.use_reeval)
    wandb_offline = pytest.importorskip("sspo_exp.report.wandb_offline")
    (seg,) = [wandb_offline.read_segment(d) for d in (grpo.run_dir / "wandb").glob("offline-run-*")]
    assert seg.run_id == grpo.run_id
    assert seg.summary[keys.reeval_prefix("hf-float32-4tok") + keys.eval_key("arithmetic")] == record["pass@1"]


def test_a_group_is_its_runs_and_unfinished_ones_are_skipped(tiny_dir, tmp_path, capsys):
    _finish(tmp_path / "sspo-a-s0-11111111", tiny_dir, "G·x")
    _finish(tmp_path / "sspo-a-s1-22222222", tiny_dir, "G·x", summary=False)  # checkpoint, no summary: resumable
    _finish(tmp_path / "grpo-s0-33333333", tiny_dir, "other")
    assert main(["--group", "G·x", f"output_root={tmp_path}", *EVAL, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "score   sspo-a-s0-11111111" in out
    assert [line.split()[:3] for line in out.splitlines() if line.startswith("skip")] == \
        [["skip", "sspo-a-s1-22222222", "resume"]]
    assert "grpo-s0" not in out
    assert main(["--group", "abc123", f"output_root={tmp_path}", *EVAL, "--dry-run"]) == 0  # the setting hash
    assert "3 runs: 2 to score" in capsys.readouterr().out


@pytest.mark.parametrize("args, words", [
    (["--group", "nope"], "--group nope: no run under"),
    (["--group", "g", "trainer.max_steps=3"], "--group takes evaluation overrides only"),
    (["--sweep", "no_such_sweep"], "sweep file no_such_sweep: not found"),
    (["--sweep", "cpu_minigrid", "eval.model=x"], "eval.model / eval.output_dir: not with --sweep"),
    (["--sweep", "cpu_minigrid", "eval.backend=tpu"], "eval.backend='tpu'"),
])  # fmt: skip
def test_a_bad_rescoring_line_is_one_line_and_exit_2(tmp_path, capsys, args, words):
    assert main([*args, f"output_root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_rescoring_goes_through_the_sweeps_launchers(tiny_dir, tmp_path, monkeypatch):
    """``launcher=submitit_local``: each run is scored in a job of its own (the path SLURM jobs take)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    _finish(tmp_path / "sspo-a-s0-11111111", tiny_dir, "G")
    assert main(["--group", "G", f"output_root={tmp_path}", *EVAL, "launcher=submitit_local"]) == 0
    record = json.loads((tmp_path / "sspo-a-s0-11111111" / "reeval" / "hf-float32-4tok" / "arithmetic.json").read_text())
    assert record["n"] == 5
    assert list((tmp_path / ".hydra").glob("eval-multirun-*/.submitit/*/*_result.pkl"))  # a submitit job scored it
