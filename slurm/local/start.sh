#!/usr/bin/env bash
# Start a real single-node SLURM on localhost (no systemd): munged, slurmctld, slurmd, run as root.
# Partitions: `debug` (default) and `high` (higher PriorityTier: its jobs preempt `debug` jobs, which are
# REQUEUED, as on clusters with a preemptible partition). Config and state live in $SSPO_SLURM_STATE
# (default /tmp/sspo-slurm); /etc/slurm/slurm.conf is a symlink to it so every client (sbatch, sinfo,
# submitit) finds it. Refuses to touch a slurm.conf it did not write. Waits until the node is idle (a loaded
# machine only makes that slower: the waits give up after $SSPO_SLURM_START_CEILING seconds, default 600).
#   usage: slurm/local/start.sh            stop with: slurm/local/stop.sh
set -euo pipefail
STATE=${SSPO_SLURM_STATE:-/tmp/sspo-slurm}
CEILING=${SSPO_SLURM_START_CEILING:-600}
NODE=$(hostname -s)
HW=$(slurmd -C | head -1 | grep -o 'CPUs=.* ThreadsPerCore=[0-9]*')   # CPUs, boards, sockets, cores, threads
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))   # leave 10% to the OS
mkdir -p "$STATE"/{ctld,d,log}

if [[ -e /etc/slurm/slurm.conf && "$(readlink -f /etc/slurm/slurm.conf)" != "$STATE/slurm.conf" ]]; then
  echo "start.sh: /etc/slurm/slurm.conf exists and is not ours ($STATE/slurm.conf); not touching it" >&2
  exit 1
fi

cat > "$STATE/slurm.conf" <<CONF
# Written by sspo-exp slurm/local/start.sh: a one-node test cluster.
ClusterName=sspo-local
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
# Preemption by partition priority: a job in "high" requeues running "debug" jobs.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
# Short timers so tests see state changes quickly.
KillWait=5
MinJobAge=600
MessageTimeout=20
SlurmdTimeout=60
InactiveLimit=0
NodeName=$NODE $HW RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE
PartitionName=high Nodes=$NODE Default=NO MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
CONF
printf 'CgroupPlugin=autodetect\nIgnoreSystemd=yes\n' > "$STATE/cgroup.conf"
mkdir -p /etc/slurm
ln -sf "$STATE/slurm.conf" /etc/slurm/slurm.conf
ln -sf "$STATE/cgroup.conf" /etc/slurm/cgroup.conf

# munge: a key (kept if present), then the daemon as the munge user.
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
  runuser -u munge -- munged
  end=$((SECONDS + CEILING)); until munge_ok || (( SECONDS > end )); do sleep 0.5; done
  munge_ok || { echo "start.sh: munged did not start (see /var/log/munge/munged.log)" >&2; exit 1; }
fi

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }   # a daemon, by its pid file
alive "$STATE/slurmctld.pid" || slurmctld
alive "$STATE/slurmd.pid" || slurmd

end=$((SECONDS + CEILING))
while (( SECONDS <= end )); do
  if timeout 60 sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
    sinfo
    exit 0
  fi
  # A node left DOWN/DRAINED by an earlier stop comes back with RESUME.
  timeout 60 scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
  sleep 1
done
echo "start.sh: SLURM node did not become idle in $CEILING s; logs in $STATE/log" >&2
sinfo -N -l >&2 || true
tail -n 20 "$STATE"/log/*.log >&2 || true
exit 1
