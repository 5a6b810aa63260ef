"""Render the ``accelerate launch`` command of a multi-GPU / multi-node training job.

    >>> " ".join(accelerate_command("deepspeed_zero3", gpus_per_node=8, num_nodes=2, node_rank=1,
    ...                             main_process_ip="node001", overrides=["model=qwen3-8b"]))  # doctest: +ELLIPSIS
    'accelerate launch --config_file .../conf/accelerate/deepspeed_zero3.yaml --num_machines 2 --num_processes 16 ...'

Run it once per node (SLURM: one task per node, ``node_rank=$SLURM_NODEID``, ``main_process_ip`` = the first host
of ``$SLURM_JOB_NODELIST``). ``--num_processes`` is the total over all nodes, as accelerate expects.
With ``trainer.rollout=vllm_colocate`` vLLM runs inside every training process; with ``vllm_server`` start
``trl vllm-serve --model <path>`` on a separate GPU first.
"""

from __future__ import annotations

import shlex

from sspo_exp import CONF_DIR

BACKENDS = ("deepspeed_zero3", "fsdp", "cpu_ddp")


def accelerate_command(
    backend: str = "deepspeed_zero3",
    *,
    gpus_per_node: int = 8,
    num_nodes: int = 1,
    node_rank: int = 0,
    main_process_ip: str = "127.0.0.1",
    main_process_port: int = 29500,
    overrides: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """argv of ``accelerate launch`` running ``sspo-exp train <overrides>`` on one node of the job."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)} (files in conf/accelerate/)")
    for name, value, low in (("gpus_per_node", gpus_per_node, 1), ("num_nodes", num_nodes, 1), ("node_rank", node_rank, 0)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r}: must be an integer >= {low}")
    if node_rank >= num_nodes:
        raise ValueError(f"node_rank={node_rank}: must be < num_nodes={num_nodes}")
    cmd = [
        "accelerate", "launch",
        "--config_file", str(CONF_DIR / "accelerate" / f"{backend}.yaml"),
        "--num_machines", str(num_nodes),
        "--num_processes", str(gpus_per_node * num_nodes),
        "--machine_rank", str(node_rank),
        "--main_process_ip", main_process_ip,
        "--main_process_port", str(main_process_port),
        "-m", "sspo_exp.cli", "train",
    ]  # fmt: skip
    overrides = [str(o) for o in overrides]
    if backend == "cpu_ddp":
        # accelerate 1.15 starts a MULTI_CPU config (or `--cpu`) through its simple launcher: ONE process, or mpirun
        # with a hostfile (commands/launch.py::launch_command -> simple_launcher). `--multi_gpu` selects its torchrun
        # launcher (num_processes processes); each process, told trainer.use_cpu=true (last, so it wins), then joins
        # a gloo group on the CPU (state.py::_prepare_backend: cpu and WORLD_SIZE > 1 -> MULTI_CPU).
        cmd.insert(2, "--multi_gpu")
        overrides.append("trainer.use_cpu=true")
    return cmd + overrides


def render(cmd: list[str]) -> str:
    """One shell-quoted line."""
    return shlex.join(cmd)
