#!/usr/bin/env bash
# One Table 1 run in verl (docs/verl.md). Needs GPUs, verl 0.9.1 and this package installed beside it as .ci/verl.sh does (its
# verl.plugins entry point registers the sspo losses in every verl process). Not run by this project's CI.
#   bash recipes/verl/run_table1.sh objective.gate=siglog objective.tau_pos=0.5 objective.tau_neg=0.6 seed=1
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mapfile -t args < <(python -m sspo_exp.integrations.verl_recipe "$here/table1.yaml" "$@")
exec python -m verl.trainer.main_ppo "${args[@]}"
