# Environment of every sspo-exp job on a SLURM cluster: THE one place to edit for your cluster.
# Sourced by the Hydra SLURM launcher (conf/launcher/submitit_slurm.yaml `setup`) and by the sbatch templates
# in this folder, before any Python starts. Keep it idempotent and quiet; override any variable before sourcing.
#
#   source slurm/env.sh          (from the repository root)

# 1. Software: load your cluster's modules and activate the environment holding sspo-exp, e.g.
#      module load cuda/12.4
#      source "$HOME/sspo-exp/.venv/bin/activate"
#    Jobs launched through Hydra already run the Python that submitted them, so this matters for sbatch templates.
SSPO_EXP_ROOT=${SSPO_EXP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export SSPO_EXP_ROOT
if [[ -z ${VIRTUAL_ENV:-} && -f "$SSPO_EXP_ROOT/.venv/bin/activate" ]]; then
  source "$SSPO_EXP_ROOT/.venv/bin/activate"
fi

# 2. Caches and hubs: models/datasets come from a shared cache; compute nodes are often offline.
export HF_HOME=${HF_HOME:-$HOME/.cache/huggingface}           # HF models and datasets
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}                     # 1: never download on a compute node (pre-fetch on a login node)
export SSPO_EXP_CACHE=${SSPO_EXP_CACHE:-$HOME/.cache/sspo-exp} # cold-started tiny models
export TOKENIZERS_PARALLELISM=false

# 3. Logging: W&B offline by default (sync later with `wandb sync`); set WANDB_MODE=online to stream.
export WANDB_MODE=${WANDB_MODE:-offline}
export WANDB_SILENT=${WANDB_SILENT:-true}

# 4. Threads: one process per task; let torch use the CPUs SLURM gave the task.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}

# 5. Multi-node rendezvous (used by slurm/train_multinode.sbatch): the first node of the allocation.
export MASTER_PORT=${MASTER_PORT:-29500}
if [[ -n ${SLURM_JOB_NODELIST:-} ]] && command -v scontrol >/dev/null; then
  MASTER_ADDR=${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)}
  export MASTER_ADDR
fi
