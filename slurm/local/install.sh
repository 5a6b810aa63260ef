#!/usr/bin/env bash
# Install a single-node SLURM (Debian's slurm-wlm) and munge, for CI and laptops. Idempotent: a no-op when
# the daemons are already installed. Needs root (CI runs as root) and the Debian package mirror.
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
