"""The rendezvous port of a multi-task SLURM job (sspo_exp/sweeps/distributed.py): outside the kernel's ephemeral range,
the same in every task of a job, distinct for jobs that may share a node."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sspo_exp.sweeps.distributed import RENDEZVOUS_PORTS, export_rank_env, rendezvous_port

EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: What submitit's TorchDistributedEnvironment.export() sets.
RANK_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


def test_ports_lie_below_the_ephemeral_range_the_kernel_hands_out():
    low = int(EPHEMERAL.read_text().split()[0]) if EPHEMERAL.exists() else 32768  # Linux's default floor
    assert 1024 <= RENDEZVOUS_PORTS.start and RENDEZVOUS_PORTS.stop <= low
    assert 29400 not in RENDEZVOUS_PORTS and 29500 not in RENDEZVOUS_PORTS  # torchrun's and torch's defaults
    for job_id in ("1", "72", "71_0", "999999999", "4294967296"):
        assert rendezvous_port(job_id) in RENDEZVOUS_PORTS


def test_one_job_one_port_and_neighbouring_jobs_differ():
    assert rendezvous_port("72") == rendezvous_port("72")  # every task of the job, and the job after a requeue
    ports = {rendezvous_port(str(i)) for i in range(1000, 1000 + len(RENDEZVOUS_PORTS))}
    assert len(ports) == len(RENDEZVOUS_PORTS)  # 14,000 consecutive jobs on one node: no two share a port
    assert rendezvous_port("71_0") != rendezvous_port("71_1")  # not a number: still one port per id


def test_each_task_of_a_slurm_job_exports_the_jobs_port(monkeypatch):
    """What every task of job 72 (2 tasks on node vm) exports, whatever MASTER_PORT slurm/env.sh left."""
    seen = []
    for name in RANK_VARIABLES:  # export() writes them into os.environ: setenv makes monkeypatch put back what was
        monkeypatch.setenv(name, "")  # there (absent, as a rule) after the test; a later run must not see rank 1 of 2
        monkeypatch.delenv(name)
    for rank in (0, 1):
        for key, value in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "72", "SLURM_NTASKS": "2",
                           "SLURM_JOB_NUM_NODES": "1", "SLURM_NODEID": "0", "SLURM_PROCID": str(rank),
                           "SLURM_LOCALID": str(rank), "SLURM_JOB_NODELIST": "vm", "MASTER_PORT": "29500"}.items():  # fmt: skip
            monkeypatch.setenv(key, value)
        exported = export_rank_env("ddp")
        assert exported["rank"] == rank and exported["world_size"] == 2
        seen.append(exported["master"])
        assert os.environ["MASTER_PORT"] == str(rendezvous_port("72")) and os.environ["RANK"] == str(rank)
    assert seen == [f"vm:{rendezvous_port('72')}"] * 2


def test_outside_a_multi_task_job_nothing_is_exported(monkeypatch):
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert export_rank_env("ddp") is None


@pytest.mark.parametrize("job_id", ["", "abc"])
def test_an_odd_id_still_gets_a_port(job_id):
    assert rendezvous_port(job_id) in RENDEZVOUS_PORTS
