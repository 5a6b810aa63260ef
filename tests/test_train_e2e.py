"""End-to-end CPU runs of ``train(cfg)``: W&B offline records, and exact resume after SIGKILL (slow)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sspo_exp.report.wandb_offline import read_segment
from sspo_exp import keys
from train_helpers import child_script, small_cfg, tiny_model_dir
from waiting import CEILING, running, wait_for

pytestmark = pytest.mark.slow
ENV = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false", WANDB_SILENT="true")
OBJECTIVE_METRICS = ("seq_weight_mean", "seq_weight_var", "token_ratio_mean", "token_ratio_var", "clip_frac",
                     "token_weight_mean", "approx_kl")  # fmt: skip
TIMING = ("_runtime", "_timestamp", "_step", "train/step_time")


def _segments(run_dir: Path):
    dirs = sorted(glob.glob(str(run_dir / "wandb" / "offline-run-*")))
    return [read_segment(d) for d in dirs]


def _step_rows(segments) -> tuple[dict[int, dict], list[int]]:
    """Merge segments in time order by train/global_step (later ones replace); also return every logged step."""
    merged, seen = {}, []
    for seg in segments:
        for row in seg.history:
            if "train/loss" in row:  # one row per optimizer step (other rows: before-RL accuracy, end of train)
                step = int(row["train/global_step"])
                seen.append(step)
                merged[step] = {k: v for k, v in row.items() if k not in TIMING}
    return merged, seen


def test_tiny_run_writes_wandb_offline_records(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_SILENT", "true")
    torch.set_num_threads(1)
    from sspo_exp.train.run import train

    import sspo_exp.evaluation.evaluator as core  # the evaluate the Evaluator calls

    calls = []  # (rows, max_new_tokens) of every greedy evaluation

    def counted(model, tokenizer, rows, max_new_tokens=512, **kw):
        calls.append((len(rows), max_new_tokens))
        return evaluate(model, tokenizer, rows, max_new_tokens, **kw)

    evaluate = core.evaluate
    monkeypatch.setattr(core, "evaluate", counted)
    cfg = small_cfg(tmp_path / "runs", tiny_model_dir(tmp_path), max_steps=4, eval_steps=2)
    cfg.final_eval = {"benchmarks": ["arithmetic"], "before": True, "every_steps": 2, "batch_size": 8}
    summary = train(cfg)
    run_dir = Path(summary["run_dir"])
    assert summary["global_step"] == 4 and json.loads((run_dir / "summary.json").read_text()) == summary
    assert summary[keys.HELDOUT_BEFORE] is not None and summary[keys.HELDOUT] is not None

    (seg,) = _segments(run_dir)
    assert seg.run_id == run_dir.name and seg.job_type == "sspo-atanlog" and seg.state == "finished"
    assert seg.project == "sspo-exp-test"  # cfg.wandb.project, not TRL's default "huggingface"
    assert "seed:0" in seg.tags and "gate:atanlog" in seg.tags and "model:tiny-untrained" in seg.tags
    assert seg.group.startswith("tiny-untrained·arithmetic·sspo-atanlog·")
    assert seg.config["objective"]["name"] == "sspo" and seg.config["gate"]["tau_neg"] == 0.3
    assert seg.config["trainer"]["mu"] == 2 and seg.config["seed"] == 0
    # the config is ours plus the derived TRL batch settings, not TRL's ~220 arguments (loss_type, epsilon, ...)
    assert not {"loss_type", "epsilon", "importance_sampling_level", "per_device_train_batch_size"} & set(seg.config)
    assert seg.config["trl"]["steps_per_generation"] == 2 * seg.config["trl"]["gradient_accumulation_steps"]
    assert seg.config["identity"]["run_id"] == run_dir.name and seg.config["code"]["version"]

    rows, seen = _step_rows([seg])
    assert seen == [1, 2, 3, 4]
    for step, row in rows.items():
        for key in ("train/entropy", "train/grad_norm", "train/learning_rate", "train/loss"):
            assert key in row, (step, key)
        for name in OBJECTIVE_METRICS:
            assert f"train/objective/{name}" in row, (step, name)
    for step in (1, 3):  # a rollout is generated every mu=2 steps; its reward statistics are logged at that step
        for key in ("train/reward", "train/reward_std", "train/rewards/answer_reward/mean",
                    "train/rewards/format_reward/mean", "train/completions/mean_length",
                    "train/completions/cut_before_answer"):  # fmt: skip
            assert key in rows[step], (step, key)
    assert keys.HELDOUT in rows[2] and keys.HELDOUT in rows[4]
    before = [r for r in seg.history if r.get("train/global_step") == 0 and keys.HELDOUT in r]
    assert before and before[0][keys.HELDOUT] == summary[keys.HELDOUT_BEFORE]
    # at the first step of a rollout the policy is the behaviour policy: every ratio is 1
    assert rows[1]["train/objective/token_ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    # diagnostics pooled per optimizer step (issue 11): the fresh steps 1, 3 have variance 0 and no stale key;
    # the stale steps 2, 4 log their pooled variance again under seq_weight_var_stale
    for step in (1, 3):
        assert rows[step]["train/objective/rollout_step"] == 0 and "train/objective/seq_weight_var_stale" not in rows[step]
        assert rows[step]["train/objective/seq_weight_var"] == pytest.approx(0.0, abs=1e-9)
    for step in (2, 4):
        assert rows[step]["train/objective/rollout_step"] == 1
        # (the untrained model earns no reward here, so the policy may not move: the value itself can be 0)
        assert rows[step]["train/objective/seq_weight_var_stale"] == rows[step]["train/objective/seq_weight_var"]

    # final_eval: the arithmetic benchmark (test_size=8) is the held-out set (eval_samples=8): one evaluation per
    # policy state (before, step 2, step 4) serves heldout_accuracy, eval/arithmetic and eval_before/arithmetic
    assert calls == [(8, 8)] * 3
    for stage, heldout in (("eval_before", summary[keys.HELDOUT_BEFORE]), ("eval", summary[keys.HELDOUT])):
        rec = json.loads((run_dir / stage / "arithmetic.json").read_text())
        assert rec["n"] == 8 == len(rec["samples"]) and rec["pass@1"] == pytest.approx(100 * heldout)
        assert rec["provenance"]["versions"]["torch"] and rec["split"] == "test"
        assert summary[f"{stage}/arithmetic/pass@1"] == rec["pass@1"] and summary[f"{stage}/arithmetic/n"] == 8
        assert seg.summary[f"{stage}/arithmetic/pass@1"] == rec["pass@1"] and seg.summary[f"{stage}/arithmetic/n"] == 8
    assert "eval/arithmetic/pass@1" in rows[2] and "eval/arithmetic/pass@1" in rows[4]  # every_steps=2
    assert "eval/arithmetic/pass@1" not in rows[1] and "eval/arithmetic/pass@1" not in rows[3]
    from sspo_exp.report.sources import offline_runs

    (read,) = offline_runs([run_dir])
    assert read.summary["eval/arithmetic/n"] == 8 and read.summary["eval_before/arithmetic/n"] == 8
    assert read.summary["eval/arithmetic/pass@1"] == summary["eval/arithmetic/pass@1"]

    # relaunching a finished config trains nothing and opens no new W&B segment
    assert train(cfg.copy()) == summary and len(_segments(run_dir)) == 1

    # killed after the last checkpoint, before the summary: the resume evaluates the final policy, not the initial one
    before_file = run_dir / "eval_before" / "arithmetic.json"
    stamp = before_file.stat().st_mtime_ns
    (run_dir / "summary.json").unlink()
    calls.clear()
    resumed = train(cfg.copy())
    assert resumed["resumed_from"].endswith("checkpoint-4") and calls == [(8, 8)]  # the trained policy only
    assert before_file.stat().st_mtime_ns == stamp
    for key in ("eval/arithmetic/pass@1", "eval_before/arithmetic/pass@1", "eval_before/arithmetic/n"):
        assert resumed[key] == summary[key], key
    (read,) = offline_runs([run_dir])  # two segments, merged
    assert read.n_segments == 2 and read.summary["eval_before/arithmetic/pass@1"] == summary["eval_before/arithmetic/pass@1"]


def test_sigkill_and_resume_equals_an_uninterrupted_run(tmp_path):
    model_dir = tiny_model_dir(tmp_path)

    def cfg(name):
        return small_cfg(tmp_path / name, model_dir, max_steps=8, save_steps=2, learning_rate=3e-3,
                         max_completion_length=12)  # fmt: skip

    run = lambda c, *stop: [sys.executable, "-c", child_script(c, *stop)]  # noqa: E731
    subprocess.run(run(cfg("full")), env=ENV, check=True, capture_output=True, timeout=CEILING)

    # killed once step 5 is logged, past checkpoint-4, so the resume re-logs a step (the child waits there)
    marker = tmp_path / "step5-logged"
    cut = subprocess.Popen(run(cfg("cut"), 5, marker), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(marker.exists, "the run to log step 5", alive=running(cut))
    os.kill(cut.pid, signal.SIGKILL)
    cut.wait()
    (run_dir,) = (tmp_path / "cut").glob("sspo-*")
    assert not (run_dir / "summary.json").exists() and not (run_dir / "checkpoint-8").exists()
    # a save cut by the kill: weights written, trainer_state.json (transformers writes it last) not; resume skips it
    partial = run_dir / "checkpoint-8"
    partial.mkdir()
    shutil.copy(run_dir / "checkpoint-4" / "model.safetensors", partial / "model.safetensors")
    subprocess.run(run(cfg("cut")), env=ENV, check=True, capture_output=True, timeout=CEILING)

    (full_dir,) = (tmp_path / "full").glob("sspo-*")
    assert full_dir.name == run_dir.name  # the same config -> the same run id
    a = json.loads((full_dir / "summary.json").read_text())
    b = json.loads((run_dir / "summary.json").read_text())
    assert b["resumed_from"].endswith("checkpoint-4")  # killed at step 5; checkpoint-8 (cut) is skipped
    for key in ("global_step", keys.HELDOUT_BEFORE, keys.HELDOUT, "train_reward_first", "train_reward_last"):
        assert a[key] == b[key], key

    from safetensors.torch import load_file

    wa, wb = (load_file(d / "checkpoint-8" / "model.safetensors") for d in (full_dir, run_dir))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # bitwise

    full_rows, full_seen = _step_rows(_segments(full_dir))
    segments = _segments(run_dir)
    assert len(segments) == 2 and {s.run_id for s in segments} == {run_dir.name}
    assert {s.project for s in segments} == {"sspo-exp-test"}  # the resumed segment too
    cut_rows, cut_seen = _step_rows(segments)
    assert full_seen == list(range(1, 9))
    assert sorted(cut_rows) == list(range(1, 9))  # merged: no gap, one row per step
    # as `wandb sync` uploads the segments (in start order): each optimizer step once, in increasing order — the
    # killed segment keeps what W&B had flushed, the resumed one logs only the steps after it (sspo_exp.train.
    # wandb_run) — and W&B's own row counter _step keeps increasing across the segments
    assert cut_seen == list(range(1, 9))
    uploaded = [row for seg in segments for row in seg.history]
    assert [r["_step"] for r in uploaded] == sorted({r["_step"] for r in uploaded})
    assert [r["train/global_step"] for r in uploaded] == sorted(r["train/global_step"] for r in uploaded)
    assert sum(keys.HELDOUT in r and r["train/global_step"] == 0 for r in uploaded) == 1
    for step in range(1, 9):
        assert cut_rows[step] == full_rows[step], step  # every logged value, bitwise
