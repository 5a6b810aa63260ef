#!/usr/bin/env bash
# A third virtualenv, .venv-verl, with verl (PyPI release) for the tests marked `verl` (tests/test_verl_*.py).
#
# Why a separate environment: verl 0.9.1 requires transformers <5.11, while the project's own environment resolves
# to a newer transformers (TRL 1.16's floor is lower, but pinning the whole project below 5.11 for a CPU test path
# would change what every run trains with). verl's policy-loss registry (verl.trainer.ppo.core_algos) imports on
# the CPU; its trainer needs GPUs and is not run here. Installed with uv, like .ci/vllm.sh (the shared steps, stamp
# and uv with pip's find-links and constraint: .ci/venv.sh). Idempotent: a stamp holding the hash of pyproject.toml
# and the scripts skips a finished install.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/venv.sh
venv=.venv-verl
want="$(cat pyproject.toml .ci/verl.sh .ci/venv.sh | sha256sum | cut -d' ' -f1)"
if venv_current "$venv" "$want" "import importlib.util as u; assert u.find_spec('verl') and u.find_spec('sspo_exp')"; then
  echo "verl env: $venv is up to date"
  exit 0
fi
python3 -m venv "$venv"
# verl 0.9.1 pins transformers <5.11, below the project's own floors (transformers >=5.16, tokenizers and
# huggingface-hub to match), so `pip install -e '.[verl]'` cannot resolve: install verl with the project's other
# dependencies, those three left to verl's resolution, then the project itself without dependencies.
mapfile -t reqs < <(python3 - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
relaxed = {"transformers", "tokenizers", "huggingface-hub", "torch"}
for req in project["dependencies"] + project["optional-dependencies"]["test"] + ["verl==0.9.1"]:
    name = re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip()
    print(name if name.lower() in relaxed else req)
PY
)
pip="$venv/bin/pip"
if venv_get_uv "$venv"; then
  venv_uv_install "$venv" torch==2.13.0 "${reqs[@]}"
  venv_uv "$venv" install --no-deps -e .
else
  echo "verl env: uv could not be installed; installing with pip (slower)" >&2
  "$pip" install -q torch==2.13.0            # the CPU wheel first, so verl does not pull a CUDA build
  "$pip" install -q "${reqs[@]}"
  "$pip" install -q --no-deps -e .
fi
"$venv/bin/python" -c "import torch, transformers, verl; from verl.trainer.ppo import core_algos; print('verl env:', 'verl', verl.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
venv_stamp "$venv" "$want"
