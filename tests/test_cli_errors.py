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
    (["eval", "eval.model=x", "eval.benchmarks=gsm8k"], ["eval.benchmarks=gsm8k: a list", "[gsm8k]"]),
    (["train", "final_eval.benchmarks=gsm8k"], ["final_eval.benchmarks=gsm8k: a list", "[gsm8k]"]),
    (["eval", "eval.model=x", "eval.benchmarks=[codeact]"], ["eval.data.codeact=FILE", "no Hub copy"]),
    (["train", "final_eval.benchmarks=[codeact]"], ["final_eval.data.codeact=FILE", "no Hub copy"]),
    (["train", "experiment=table1", "model.cold_start.enabled=false", "dataset.components.gsm8k.path=/nowhere/gsm8k"],
     ["dataset.components.gsm8k.path=/nowhere/gsm8k", "no such file"]),  # Table 1's mixture
    # a mistyped experiment or launcher: an error naming the options, not the default job run silently
    (["train", "experiment=tabel1"], ["experiment/tabel1", "table1"]),
    (["train", "launcher=submitit_slurmm"], ["launcher/submitit_slurmm", "submitit_slurm"]),
    (["cold-start", "experiment=tabel1"], ["experiment/tabel1"]),
    # files that do not exist: found before W&B opens or a model loads
    (["train", "model=local", "model.path=/nowhere/model", "model.name=m"], ["model.path=/nowhere/model", "no such directory"]),
    (["train", "+final_eval.data.gsm8k=/nowhere/gsm8k"], ["final_eval.data.gsm8k=/nowhere/gsm8k", "no such file"]),
    (["train", "model=local", "model.path=/tmp", "model.name=m", "dataset=gsm8k", "dataset.path=/nowhere/gsm8k"], ["dataset.path=/nowhere/gsm8k", "no such file"]),
    # CodeAct's opt-in environments (issue 25 review): checked with the other local files, not at data loading
    (["train", "model=local", "model.path=/tmp", "model.name=m", "dataset=codeact", "dataset.wikitable_dir=/nowhere/wtq"],
     ["dataset.wikitable_dir=/nowhere/wtq", "no such file", "WikiTableQuestions"]),
    (["train", "model=local", "model.path=/tmp", "model.name=m", "dataset=codeact", "dataset.hotpotqa_file=/nowhere/h.json"],
     ["dataset.hotpotqa_file=/nowhere/h.json", "no such file", "HotpotQA"]),
])  # fmt: skip
def test_bad_input_exits_2_with_one_message_before_heavy_imports(tmp_path, args, words):
    out = _run(tmp_path, *args, f"output_root={tmp_path}")
    err = out.stderr
    assert out.returncode == 2, err
    assert "Traceback" not in err and "HEAVY []" in err, err
    message = err.split("HEAVY")[0]
    for word in words:
        assert word in message, message


def test_a_mistyped_launcher_in_a_sweep_launches_nothing(tmp_path):
    out = _run(tmp_path, "sweep", "sweeps/cpu_minigrid.yaml", "launcher=submitit_slurmm",
               f"output_root={tmp_path / 'runs'}", "--dry-run")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "launcher/submitit_slurmm" in out.stderr


def test_sweep_refuses_bad_points_before_anything_is_queued(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("grid: [{objective: grpo, trainer.mu: [2, 0]}, {objective: sspo, gate.tau_pos: [-1]}]")
    for extra in (["--dry-run"], []):
        out = _run(tmp_path, "sweep", str(sweep), f"output_root={tmp_path / 'runs'}", *extra)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "2 of 3 sweep points are invalid" in out.stderr and "trainer.mu=0" in out.stderr
        assert "gate.tau_pos=-1" in out.stderr and "trainer.mu=2 " not in out.stderr
        assert not (tmp_path / "runs").exists()  # nothing queued, no run directory made


def test_eval_of_a_run_whose_checkpoint_holds_no_hf_model_says_why(tmp_path):
    """An FSDP run saved with SHARDED_STATE_DICT: its checkpoint resumes training but has no config.json/weights to
    load; `sspo-exp eval` says so in one line (it was a transformers traceback)."""
    run = tmp_path / "runs" / "grpo-s0-x"
    ckpt = run / "checkpoint-4"
    (ckpt / "pytorch_model_fsdp_0").mkdir(parents=True)
    (ckpt / "optimizer_0").mkdir()
    (ckpt / "trainer_state.json").write_text("{}")
    (run / "config.yaml").write_text("seed: 0\n")
    out = _run(tmp_path, "eval", f"eval.model={run}", "eval.benchmarks=[gsm8k]")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "holds no HF model" in out.stderr and "FULL_STATE_DICT" in out.stderr


def test_a_sweep_on_a_login_node_does_not_require_the_compute_nodes_files(tmp_path):
    """Local paths are checked where a run starts (train, cold-start), not in the sweep's up-front validation: a
    node-local model directory need not exist on the machine that submits."""
    out = _run(tmp_path, "sweep", "sweeps/cpu_minigrid.yaml", "model=local", "model.path=/nowhere/model",
               "model.name=m", f"output_root={tmp_path / 'runs'}", "--dry-run")
    assert out.returncode == 0, out.stderr


def _default_run_dir(output_root) -> "Path":
    from hydra import compose, initialize_config_dir

    from sspo_exp import CONF_DIR
    from sspo_exp.train.config import make_plan

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"output_root={output_root}"])
    return make_plan(cfg).run.path


def test_a_run_busy_elsewhere_is_one_line_with_holder_since_and_stale_time_and_exit_75(tmp_path):
    """Another host's live lease on the very run: one line (who, since when, when stale), exit 75, no traceback,
    nothing trained (no wandb directory, no checkpoint)."""
    import json
    import time

    run_dir = _default_run_dir(tmp_path / "runs")
    run_dir.mkdir(parents=True)
    started = time.time() - 300
    (run_dir / "lease.json").write_text(json.dumps({"host": "node-7", "pid": 4242, "job_id": "991_3",
                                                    "started": started, "renewed": time.time()}))  # fmt: skip
    out = _run(tmp_path, "train", f"output_root={tmp_path / 'runs'}")
    assert out.returncode == 75, out.stderr
    lines = [line for line in out.stderr.split("HEAVY")[0].splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    (line,) = lines
    assert line.startswith("sspo-exp train: busy: run ") and "node-7:4242, SLURM job 991_3" in line, line
    assert f"since {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))}" in line and "goes stale at " in line
    assert sorted(p.name for p in run_dir.iterdir()) == ["lease.json", "lease.json.lock"]


def test_report_over_a_folder_without_runs_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "empty" / "wandb").mkdir(parents=True)
    out = _run(tmp_path, "report", "--offline", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.split("HEAVY")[0].strip() == (
        f"sspo-exp report: no runs found in {tmp_path / 'empty'} (offline: W&B run directories offline-run-*/ "
        "holding a run-*.wandb file, searched recursively)")
    assert not (tmp_path / "out").exists()  # no empty tables written
