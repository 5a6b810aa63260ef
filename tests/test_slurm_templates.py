"""The sbatch templates in slurm/: valid bash, the per-node commands they render, and (on a SLURM) valid #SBATCH lines."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sweeps_helpers import slurm_reason
from waiting import CEILING

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((ROOT / "slurm").glob("*.sbatch"))
SCRIPTS = [*TEMPLATES, ROOT / "slurm" / "env.sh", *sorted((ROOT / "slurm" / "local").glob("*.sh"))]


def _dry_run(template: str, env: dict[str, str], *overrides: str) -> str:
    env = {**os.environ, "SSPO_DRY_RUN": "1", "SSPO_EXP_ROOT": str(ROOT), **env}
    out = subprocess.run(["bash", str(ROOT / "slurm" / template), *overrides], env=env, capture_output=True, text=True, timeout=CEILING)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_valid_bash(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


def test_multinode_template_renders_one_accelerate_launch_per_node():
    env = {"SLURM_NNODES": "4", "SLURM_PROCID": "2", "SLURM_JOB_NODELIST": "gpu[07-10]", "MASTER_ADDR": "gpu07",
           "GPUS_PER_NODE": "8"}  # fmt: skip
    line = _dry_run("train_multinode.sbatch", env, "experiment=table2_math", "objective=sspo", "seed=1").split()
    config = str(ROOT / "conf" / "accelerate" / "deepspeed_zero3.yaml")
    assert line[:2] == ["accelerate", "launch"] and line[line.index("--config_file") + 1] == config
    assert Path(config).is_file()
    flags = {k: line[line.index(k) + 1] for k in ("--num_machines", "--num_processes", "--machine_rank", "--main_process_port")}
    assert flags == {"--num_machines": "4", "--num_processes": "32", "--machine_rank": "2", "--main_process_port": "29500"}
    assert line[line.index("--main_process_ip") + 1] == "gpu07"
    assert line[-6:] == ["-m", "sspo_exp.cli", "train", "experiment=table2_math", "objective=sspo", "seed=1"]


@pytest.mark.skipif(slurm_reason() is not None, reason=f"`scontrol show hostnames` needs a SLURM config: {slurm_reason()}")
def test_vllm_server_template_puts_the_server_on_node_0_and_trains_on_the_rest():
    out = _dry_run("train_vllm_server.sbatch", {"SLURM_JOB_NODELIST": "gpu[01-03]", "GPUS_PER_NODE": "4"},
                   "experiment=table2_math", "model=qwen3-14b")  # fmt: skip
    server, training = out.strip().splitlines()
    assert server == "server on gpu01: trl vllm-serve --model Qwen/Qwen3-14B --tensor-parallel-size 4 --host 0.0.0.0 --port 8000"
    assert training.startswith("training on gpu02 gpu03 (2 nodes): accelerate launch")
    assert "--num_machines 2 --num_processes 8" in training and "--main_process_ip gpu02" in training
    assert training.endswith("model=qwen3-14b trainer.rollout=vllm_server trainer.vllm.server_host=gpu01 trainer.vllm.server_port=8000")


@pytest.mark.slurm
@pytest.mark.skipif(slurm_reason() is not None, reason=f"SLURM not reachable: {slurm_reason()}")
@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_sbatch_accepts_the_templates_directives(template, tmp_path):
    # shrink to the one-node CPU test cluster; every other #SBATCH line is parsed and checked by sbatch itself
    out = subprocess.run(["sbatch", "--test-only", "--nodes=1", "--gpus-per-node=0", "--cpus-per-task=1", "--mem=1G",
                          f"--output={tmp_path}/out", str(template)], capture_output=True, text=True, timeout=CEILING)  # fmt: skip
    assert out.returncode == 0 and "to start at" in out.stderr, out.stderr
