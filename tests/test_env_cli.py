"""``sspo-exp env``: the facts a bug report needs, true for this machine, without importing torch & co."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from sspo_exp import env_cli
from waiting import CEILING

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "trl", "accelerate", "wandb", "pandas", "matplotlib", "optuna", "hydra")


def _env(*args: str, extra_env: dict | None = None, path: str | None = None) -> subprocess.CompletedProcess:
    code = (f"import sys; from sspo_exp.cli import main; code = main(['env', *{list(args)!r}]); "
            f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr); sys.exit(code)")
    env = {**os.environ, **(extra_env or {}), "PYTHONPATH": str(ROOT)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CEILING, env=env)


def test_env_prints_installed_versions_and_git_commit_without_heavy_imports():
    out = _env()
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stderr  # versions from metadata: torch, transformers, TRL, W&B are not imported
    for name in ("torch", "transformers", "trl", "accelerate", "wandb", "optuna", "hydra-core", "submitit"):
        assert f"  - {name}: {version(name)}\n" in out.stdout, name
    assert "  - vllm: " in out.stdout and "  - deepspeed: " in out.stdout and "  - verl: " in out.stdout
    assert f"  - python: {sys.version.split()[0]}" in out.stdout
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if head:
        assert f"  - git commit: {head}" in out.stdout


def test_env_reports_cores_slurm_gpus_and_flags_from_the_environment(tmp_path):
    """A fake ``sinfo`` and ``nvidia-smi`` on PATH and a SLURM job id: each shows up; the flags are echoed."""
    for name, text in (("sinfo", "slurm 24.11.5"), ("nvidia-smi", "NVIDIA H100 80GB HBM3, 81559 MiB, 550.54")):
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\necho '{text}'\n")
        tool.chmod(0o755)
    extra = {"SLURM_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "3", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
             "OMP_NUM_THREADS": "1"}  # fmt: skip
    out = _env("--json", extra_env=extra, path=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["slurm"]["this process"] == "job 4242, array task 3"
    assert "slurm 24.11.5" in info["slurm"]["sinfo"]
    assert info["gpu"]["gpu 0"] == "NVIDIA H100 80GB HBM3, 81559 MiB, 550.54"
    assert info["huggingface"]["HF_HUB_OFFLINE"] == "1" and info["wandb"]["WANDB_MODE"] == "disabled"
    assert info["wandb"]["training default (wandb.mode)"].startswith("offline")
    assert info["cpu"]["OMP_NUM_THREADS"] == "1"
    assert info["cpu"]["torch threads of a CPU run started now"].startswith("1 (")  # the user's OMP_NUM_THREADS wins
    usable = len(os.sched_getaffinity(0))
    assert info["cpu"]["usable cores"].startswith(f"{usable} (affinity {usable},")


def test_env_without_slurm_or_gpu_says_so(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "git").symlink_to(subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip())
    out = _env("--json", extra_env={"SLURM_JOB_ID": ""}, path=str(bare))
    info = json.loads(out.stdout)
    assert info["slurm"]["sinfo"].startswith("not found") and info["slurm"]["this process"] == "not in a SLURM job"
    assert info["gpu"]["gpus"].startswith("none found")
    assert info["sandbox"]["bubblewrap"] == "not found" and info["sandbox"]["sandbox"].startswith("UNAVAILABLE")


def test_cgroup_quota_limits_the_usable_cores(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert env_cli.cgroup_cpus(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert env_cli.cgroup_cpus(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert env_cli.cgroup_cpus(tmp_path) == 2.0


def test_env_is_listed_in_the_command_help():
    from sspo_exp.cli import COMMANDS, _usage

    assert COMMANDS["env"][0] == "sspo_exp.env_cli" and "  env " in _usage()
