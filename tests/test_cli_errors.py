"""A user's mistake: exit status 2, one short message naming the field, the bad value and what is allowed; no
traceback; and it is found before torch, transformers or TRL are imported (so it costs a second, not a model load)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "trl")
PROBE = ("import sys; from sspo_exp.cli import main; rc = main(sys.argv[1:]); "
         "print('HEAVY', [m for m in {heavy!r} if m in sys.modules], file=sys.stderr); sys.exit(rc)")


def _run(tmp_path, *args):
    return subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)  # fmt: skip


@pytest.mark.parametrize("args, words", [
    (["train", "trainer.mu=0"], ["trainer.mu=0", ">= 1"]),
    (["train", "trainer.per_device_batch_size=7"], ["trainer.per_device_batch_size=7", "allowed per_device_batch_size"]),
    (["train", "trainer.lr_scheduler_type=cosin"], ["trainer.lr_scheduler_type='cosin'", "cosine"]),
    (["train", "gate.tau_pos=-1"], ["tau_pos", "-1", "> 0"]),
    (["train", "objective=grpo", "objective.eps_low=2"], ["eps_low", "(0, 1)"]),
    (["train", "final_eval.benchmarks=[gsm9k]"], ["final_eval.benchmarks", "gsm9k", "gsm8k"]),
    (["train", "model=local"], ["is required with model=local", "model.path=DIR"]),
    (["train", "experiment=table1", "model.cold_start.lr_scheduler_type=step"],
     ["model.cold_start.lr_scheduler_type='step'", "cosine"]),  # the SFT cold start (issue 11 item 3)
    (["train", "model=local", "model.path=/x", "model.name=m", "dataset=deepmath", "+cold_start@model.cold_start=sft"],
     ["dataset.name='deepmath'", "worked solution", "gsm8k"]),
    (["cold-start", "experiment=table1", "model.cold_start.max_length=0"], ["model.cold_start.max_length=0", ">= 1"]),
    (["cold-start", "experiment=table1", "trainer.mu=0"], ["trainer.mu=0"]),  # the whole training config is checked
    (["train", "objective=ppo"], ["objective", "ppo", "grpo"]),  # Hydra's own message
    (["train", "trainer.epochs=3"], ["trainer.epochs"]),  # Hydra's own message: no such key
    (["eval"], ["eval.model is required"]),
    (["eval", "eval.model=x", "eval.benchmarks=[gsm9k]"], ["eval.benchmarks", "gsm9k", "gsm8k"]),
    (["eval", "eval.model=/nowhere/model"], ["eval.model=/nowhere/model", "no such directory"]),
])  # fmt: skip
def test_bad_input_exits_2_with_one_message_before_heavy_imports(tmp_path, args, words):
    out = _run(tmp_path, *args, f"output_root={tmp_path}")
    err = out.stderr
    assert out.returncode == 2, err
    assert "Traceback" not in err and "HEAVY []" in err, err
    message = err.split("HEAVY")[0]
    for word in words:
        assert word in message, message


def test_sweep_refuses_bad_points_before_anything_is_queued(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("grid: [{objective: grpo, trainer.mu: [2, 0]}, {objective: sspo, gate.tau_pos: [-1]}]")
    for extra in (["--dry-run"], []):
        out = _run(tmp_path, "sweep", str(sweep), f"output_root={tmp_path / 'runs'}", *extra)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "2 of 3 sweep points are invalid" in out.stderr and "trainer.mu=0" in out.stderr
        assert "gate.tau_pos=-1" in out.stderr and "trainer.mu=2 " not in out.stderr
        assert not (tmp_path / "runs").exists()  # nothing queued, no run directory made
