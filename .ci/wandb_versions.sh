#!/usr/bin/env bash
# A second, small virtualenv, .venv-wandb-old, holding ANOTHER wandb release than the main environment's, so that
# tests/test_wandb_versions.py can have real offline runs written by that release at test time and read them with
# the report in the main environment (a cross-version check the stored files in tests/fixtures/wandb_runs cannot
# give for the installed reader's future). The main environment resolves the newest wandb (pyproject.toml has no
# upper bound), so the second one is an older release the report must keep reading: 0.22.3.
# Only what the run writer (tests/report_helpers.py) needs: wandb itself and orjson (it checks the written rows
# with sspo_exp.report.wandb_offline, through PYTHONPATH; no torch). ~15 s to install, ~13 s to write the runs.
# Idempotent: a stamp holding the hash of this script and .ci/venv.sh skips a finished install.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/venv.sh
venv=.venv-wandb-old
version=0.22.3
want="$(cat .ci/wandb_versions.sh .ci/venv.sh | sha256sum | cut -d' ' -f1)"
if venv_current "$venv" "$want" "import wandb, orjson"; then
  echo "wandb env: $venv is up to date"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q "wandb==$version" 'orjson>=3.9'
"$venv/bin/python" -c "import wandb; assert wandb.__version__ == '$version', wandb.__version__"
venv_stamp "$venv" "$want"
echo "wandb env: $venv holds wandb $version"
