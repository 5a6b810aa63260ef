"""Test-wide settings: no network, W&B offline, quiet tokenizers."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from waiting import CEILING  # noqa: E402


@pytest.fixture(scope="session")
def wandb_root(tmp_path_factory) -> Path:
    """REAL W&B offline runs of the installed wandb (``tests/report_helpers.py``), written once per session."""
    root = tmp_path_factory.mktemp("wandb_runs")
    env = {**os.environ, "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1"}
    env.pop("WANDB_SERVICE", None)
    subprocess.run([sys.executable, str(Path(__file__).parent / "report_helpers.py"), str(root)], check=True,
                   env=env, timeout=CEILING)
    return root


#: What makes a process one rank of a multi-process run, or a task of a SLURM job. A test that leaves one behind makes
#: every later in-process run, and every subprocess and SLURM job a later test starts, a rank of a world that does not
#: exist (a CI run hung 30 minutes on a one-task job that saw WORLD_SIZE=2 from an earlier test). TRL's colocated vLLM
#: sets RANK=0 / WORLD_SIZE=1 / MASTER_* in-process: a world of one is harmless and not flagged.
RANK_ENVIRONMENT = ("WORLD_SIZE", "SLURM_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS", "SUBMITIT_EXECUTOR")


@pytest.fixture(autouse=True)
def _no_rank_environment_left_behind():
    before = {k: os.environ.get(k) for k in RANK_ENVIRONMENT}
    yield
    left = {k: v for k in RANK_ENVIRONMENT
            if (v := os.environ.get(k)) != before[k] and not (k == "WORLD_SIZE" and v == "1")}  # fmt: skip
    for key in left:  # put it back, so one leak fails one test, not the rest of the session
        os.environ.pop(key, None) if before[key] is None else os.environ.__setitem__(key, before[key])
    assert not left, f"the test left a rank environment behind: {left}"
