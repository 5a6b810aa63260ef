"""The ranks' environment of a multi-process SLURM job: every task of the job is one rank of one TRL/accelerate run.

A sweep point (or an Optuna trial) launched through ``launcher=submitit_slurm`` is ONE SLURM job of ``nodes x
tasks_per_node`` tasks (conf/launcher/submitit_slurm.yaml, shaped by the model preset's ``resources`` block). submitit
runs the Hydra job in every task; at job start this callback exports what ``torch.distributed`` reads:

* ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` from submitit's
  ``submitit.helpers.TorchDistributedEnvironment`` (the first host of the job) with the port :func:`rendezvous_port`
  gives the job, the same in every task and after a requeue;
  ``CUDA_VISIBLE_DEVICES`` is left alone, because accelerate places rank ``LOCAL_RANK`` on ``cuda:LOCAL_RANK``;
* for ``resources.engine`` ``deepspeed_zero3`` / ``fsdp``: the ``ACCELERATE_*`` / ``FSDP_*`` variables that
  ``accelerate launch --config_file conf/accelerate/<engine>.yaml`` would give its processes, made by accelerate's own
  functions (``accelerate.utils.launch.prepare_deepspeed_cmd_env`` / ``prepare_multi_gpu_env``). transformers'
  ``TrainingArguments`` then builds the same Accelerator (DeepSpeed plugin from the environment) as under
  ``accelerate launch``; no launcher process sits between SLURM and the ranks.

A one-task job (or a job outside SLURM) is left as it is: single-process training, as before.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

from sspo_exp import CONF_DIR
from sspo_exp.sweeps.resources import SHARDED_ENGINES

try:  # a Hydra callback, so every job launched through conf/launcher/submitit_*.yaml gets the ranks' environment
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra-core is a dependency
    Callback = object


#: The ports a job's rendezvous (rank 0's TCPStore) may take: below Linux's default ephemeral range (32768-60999,
#: /proc/sys/net/ipv4/ip_local_port_range), where the kernel picks the local port of every outgoing connection and of
#: every listener bound to port 0 (W&B's service, gloo's pairs, a cold start's workers). submitit draws the port from
#: 20000-60000; in a CI run one drawn there was already taken: rank 0 failed with EADDRINUSE while rank 1 waited out the
#: 30-minute rendezvous timeout. It stops short of 29400 and 29500 (torchrun's and torch's default ports, the second
#: also slurm/env.sh's MASTER_PORT for the sbatch templates).
RENDEZVOUS_PORTS = range(15000, 29000)


#: The first setup line of every SLURM job sspo-exp submits (hydra_plugins/sspo_exp_launcher/slurm.py, and an Optuna
#: trial's job, sspo_exp/sweeps/trial_jobs.py): ``srun`` then ends the job's other tasks as soon as one exits non-zero
#: (``srun --kill-on-bad-exit``), instead of leaving them in the rendezvous or a collective until torch's timeout.
KILL_BAD_EXIT = "export SLURM_KILL_BAD_EXIT=1"


def rendezvous_port(job_id: str) -> int:
    """The rendezvous port of the job whose scheduler id is ``job_id`` (``SLURM_JOB_ID``: the same in every task, kept
    by a requeue, distinct for each task of an array). Consecutive ids get consecutive ports, so jobs sharing a node do
    not collide until 14,000 ids apart; Lightning's SLURM environment does likewise (15000 + the id's last four
    digits)."""
    key = int(job_id) if job_id.isdigit() else zlib.crc32(job_id.encode())
    return RENDEZVOUS_PORTS.start + key % len(RENDEZVOUS_PORTS)


def engine_env(engine: str, num_machines: int, num_processes: int, machine_rank: int, main_process_ip: str,
               main_process_port: int) -> dict[str, str]:  # fmt: skip
    """The variables ``accelerate launch`` sets for ``conf/accelerate/<engine>.yaml`` (only those it adds or changes)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    if engine not in SHARDED_ENGINES:
        return {}
    argv = ["--config_file", str(CONF_DIR / "accelerate" / f"{engine}.yaml"), "--num_machines", str(num_machines),
            "--num_processes", str(num_processes), "--machine_rank", str(machine_rank),
            "--main_process_ip", main_process_ip, "--main_process_port", str(main_process_port), "train.py"]  # fmt: skip
    args, defaults, mp_from_config = _validate_launch_command(launch_command_parser().parse_args(argv))
    if args.use_deepspeed:  # as accelerate/commands/launch.py::launch_command does before deepspeed_launcher
        fields = list(defaults.deepspeed_config.keys()) if defaults else []
        args.deepspeed_fields_from_accelerate_config = ",".join(fields + (["mixed_precision"] if mp_from_config else []))
        env = prepare_deepspeed_cmd_env(args)[1]
    else:
        env = prepare_multi_gpu_env(args)
    return {k: v for k, v in env.items() if os.environ.get(k) != v}


def export_rank_env(engine: str = "ddp") -> dict[str, Any] | None:
    """In a SLURM/submitit job of more than one task: export this task's rank environment (see the module docstring)
    and return it; otherwise None."""
    import submitit

    try:
        job = submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job
        return None
    if job.num_tasks <= 1:
        return None
    # slurm/env.sh's fixed MASTER_PORT would be shared by two jobs on one node: each job gets its own
    os.environ["MASTER_PORT"] = str(rendezvous_port(job.raw_job_id))
    dist = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    env = engine_env(engine, job.num_nodes, dist.world_size, job.node, dist.master_addr, dist.master_port)
    os.environ.update(env)
    return {"rank": dist.rank, "world_size": dist.world_size, "master": f"{dist.master_addr}:{dist.master_port}", **env}


class RankEnvironment(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/launcher/submitit_*.yaml): :func:`export_rank_env` at job start,
    with the engine of the job's model preset (``model.resources.engine``)."""

    def on_job_start(self, config, **kwargs) -> None:
        resources = (config.get("model") or {}).get("resources") or {}
        exported = export_rank_env(str(resources.get("engine", "ddp")))
        if exported:
            print(f"rank {exported['rank']} of {exported['world_size']} (rendezvous {exported['master']})", flush=True)
