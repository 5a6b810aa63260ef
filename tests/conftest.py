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
