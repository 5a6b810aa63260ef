#!/usr/bin/env bash
# Stop the single-node SLURM started by slurm/local/start.sh: cancel jobs, stop slurmd, slurmctld, munged
# (each by its pid file / exact name), remove the /etc/slurm symlinks start.sh made. Safe to run twice.
set -uo pipefail
STATE=${SSPO_SLURM_STATE:-/tmp/sspo-slurm}
if [[ "$(readlink -f /etc/slurm/slurm.conf 2>/dev/null)" != "$STATE/slurm.conf" ]]; then
  echo "stop.sh: no SLURM started by start.sh (state $STATE)"; exit 0
fi
scancel --full --quiet --user=root 2>/dev/null || true
for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
  if [[ -s $pidfile ]]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    end=$((SECONDS + 120)); while kill -0 "$pid" 2>/dev/null && (( SECONDS <= end )); do sleep 0.5; done
  fi
done
if [[ -s /run/munge/munged.pid ]]; then kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true; fi
rm -f /etc/slurm/slurm.conf /etc/slurm/cgroup.conf
