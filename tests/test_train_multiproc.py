"""A 2-process CPU data-parallel run through ``accelerate launch`` (the multi-GPU path, on gloo)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from sspo_exp.train.launch import accelerate_command
from train_helpers import tiny_model_dir
from waiting import CEILING

pytestmark = pytest.mark.slow


def test_two_process_cpu_run(tmp_path):
    model_dir = tiny_model_dir(tmp_path)
    overrides = ["model=local", "model.name=tiny-untrained", f"model.path={model_dir}", f"output_root={tmp_path / 'runs'}",
                 "dataset.train_size=64", "dataset.test_size=8", "dataset.digits=1", "trainer.num_generations=4",
                 "trainer.prompts_per_step=2",
                 "trainer.per_device_batch_size=2", "trainer.max_completion_length=8", "trainer.max_steps=2",
                 "trainer.save_steps=2", "trainer.eval_samples=4"]  # fmt: skip
    cmd = accelerate_command("cpu_ddp", gpus_per_node=2, main_process_port=29533 + os.getpid() % 1000, overrides=overrides)
    # unbuffered: each print is one write, so the two processes' lines cannot be cut into each other on the shared pipe
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_SILENT="true", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CEILING, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").glob("sspo-*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 2
    # two processes really ran: torchrun's WORLD_SIZE made the plan (train/run.py checks accelerate agrees), and
    # each process printed its plan
    assert json.loads((run_dir / "run.json").read_text())["trl"]["world_size"] == 2
    assert out.stdout.count("on 2 process(es)") == 2, out.stdout[-3000:]
    state = json.loads((run_dir / "checkpoint-2" / "trainer_state.json").read_text())
    # 8 completions per step over 2 processes x micro-batch 2 -> 2 accumulation steps per optimizer step
    assert state["train_batch_size"] == 2 and [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2]
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # only process 0 opened a W&B run
    assert out.stdout.count("held-out greedy accuracy") == 1  # one summary, from process 0
    # final_eval (conf/train.yaml default: arithmetic, before): both processes generate, process 0 records
    assert summary["eval/arithmetic/n"] == 8 and summary["eval_before/arithmetic/n"] == 8  # all of test_size=8
    assert json.loads((run_dir / "eval" / "arithmetic.json").read_text())["n"] == 8


def test_fsdp_launch_on_the_cpu_is_refused(tmp_path):
    """conf/accelerate/fsdp.yaml on a CPU-only machine: accelerate 1.15 starts the processes but would not shard
    (docs/engines.md); every process stops with the reason before loading the model."""
    model_dir = tiny_model_dir(tmp_path)
    overrides = ["model=local", "model.name=tiny-untrained", f"model.path={model_dir}", f"output_root={tmp_path / 'runs'}",
                 "trainer.num_generations=4", "trainer.prompts_per_step=2", "trainer.per_device_batch_size=2"]  # fmt: skip
    cmd = accelerate_command("fsdp", gpus_per_node=2, main_process_port=29533 + (os.getpid() + 1) % 1000, overrides=overrides)
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_SILENT="true", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CEILING, cwd=tmp_path)
    assert out.returncode != 0
    assert out.stderr.count("shards only on GPUs") == 2, out.stderr[-3000:]  # one line per process, no traceback
    assert not list((tmp_path / "runs").glob("*/checkpoint-*"))
