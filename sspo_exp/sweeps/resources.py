"""The job of one run: its shape (model preset x launcher), its checks at the job's real world size, its cost.

Every model preset carries a ``resources`` block (conf/model/*.yaml, documented there); conf/launcher/submitit_slurm.yaml
reads it (``nodes``, ``tasks_per_node`` = ``gpus_per_node``, ``timeout_min``), so ``sspo-exp sweep sweeps/table1.yaml
launcher=submitit_slurm`` submits each point as one job of the preset's shape, and any field can be overridden
(``model.resources.nodes=2`` or ``hydra.launcher.tasks_per_node=4``). The local launchers run one process per run.

GPU-hours (``--dry-run``) are an estimate, stated as such::

    FLOPs     = tokens x 6 x N          tokens = max_steps x prompts_per_step x G x (max_prompt + max_completion)
    GPU-hours = FLOPs / (peak FLOP/s x MFU) / 3600

with N the parameters a token passes through (``active_params_b``, else ``params_b``), ``peak_tflops`` the GPU's dense
bf16 peak and ``mfu`` the fraction of it a GRPO step reaches (generation included), all from the resources block.
Every completion is counted at full length, so the estimate is an upper bound on tokens; the MFU is an assumption.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sspo_exp.errors import ConfigError

#: model.resources.engine values that shard the weights (their accelerate config is conf/accelerate/<engine>.yaml).
SHARDED_ENGINES = ("deepspeed_zero3", "fsdp")
ENGINES = ("ddp", *SHARDED_ENGINES)
#: Bytes per parameter trained in fp32 with AdamW: weights 4 + gradients 4 + two moments 8 (activations not counted).
BYTES_PER_PARAM = 16
#: Launcher targets (hydra.launcher._target_) whose jobs can hold several processes.
MULTI_PROCESS_LAUNCHERS = ("SlurmLauncher", "submitit_launcher.LocalLauncher")


@dataclass(frozen=True)
class JobShape:
    """One run's job: ``nodes x tasks_per_node`` ranks (one per GPU on a GPU cluster), plus a vLLM server's GPUs."""

    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0
    engine: str = "ddp"
    server_gpus: int = 0
    timeout_min: int | None = None

    @property
    def world_size(self) -> int:
        return self.nodes * self.tasks_per_node

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node + self.server_gpus

    def describe(self) -> str:
        if self.world_size == 1 and not self.gpus:
            return "1 process"
        gpus = f", {self.nodes}x{self.gpus_per_node} GPU" if self.gpus_per_node else ", CPU"
        server = f" + {self.server_gpus} server GPU" if self.server_gpus else ""
        hours = f", {self.timeout_min / 60:g} h limit" if self.timeout_min else ""
        return f"{self.world_size} ranks{gpus}{server}, {self.engine}{hours}"


def _resources(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    block = (cfg.get("model") or {}).get("resources") or {}
    return OmegaConf.to_container(block, resolve=True) if OmegaConf.is_config(block) else dict(block)


def job_shape(cfg: Any) -> JobShape:
    """The shape of ``cfg``'s job, from a config composed with its Hydra node (``return_hydra_config=True``)."""
    res = _resources(cfg)
    launcher = cfg.hydra.launcher
    if not any(t in str(launcher.get("_target_", "")) for t in MULTI_PROCESS_LAUNCHERS):
        return JobShape(engine=str(res.get("engine", "ddp")))
    return JobShape(nodes=int(launcher.get("nodes") or 1), tasks_per_node=int(launcher.get("tasks_per_node") or 1),
                    gpus_per_node=int(launcher.get("gpus_per_node") or 0), engine=str(res.get("engine", "ddp")),
                    server_gpus=int(res.get("server_gpus") or 0), timeout_min=launcher.get("timeout_min"))  # fmt: skip


def check_shape(cfg: Any, shape: JobShape) -> None:
    """What the job needs beyond the batch arithmetic (``make_plan(cfg, world_size)`` checks that): a known engine,
    sharding only on GPUs, a vLLM server's GPUs, and weights + AdamW state that fit the GPUs. One line each."""
    res = _resources(cfg)
    rollout, use_cpu = cfg.trainer.rollout, bool(cfg.trainer.get("use_cpu", False))
    if shape.engine not in ENGINES:
        raise ConfigError(f"model.resources.engine={shape.engine!r}: choose one of {', '.join(ENGINES)}")
    if shape.engine in SHARDED_ENGINES and (use_cpu or shape.gpus_per_node == 0) and shape.world_size > 1:
        raise ConfigError(f"model.resources.engine={shape.engine}: DeepSpeed/FSDP shard only on GPUs; this job has "
                          f"no GPUs (hydra.launcher.gpus_per_node=0 or trainer.use_cpu=true): use engine=ddp")  # fmt: skip
    if rollout == "vllm_server" and shape.server_gpus < 1:
        raise ConfigError("trainer.rollout=vllm_server: model.resources.server_gpus must be >= 1 (the vLLM server's "
                          "own GPUs); or trainer.rollout=vllm_colocate")  # fmt: skip
    if rollout == "vllm_server" and shape.world_size > 1:
        raise ConfigError("trainer.rollout=vllm_server: a sweep job does not start the vLLM server; submit these "
                          "points with slurm/train_vllm_server.sbatch (docs/cluster.md), or trainer.rollout=vllm_colocate")  # fmt: skip
    params_b, mem = res.get("params_b"), res.get("gpu_mem_gb")
    if params_b and mem and shape.gpus_per_node:
        share = shape.world_size if shape.engine in SHARDED_ENGINES else 1
        need = params_b * BYTES_PER_PARAM / share
        if need > mem:
            raise ConfigError(f"model.resources: {params_b}B parameters need ~{need:.0f} GB per GPU for fp32 weights, "
                              f"gradients and AdamW ({BYTES_PER_PARAM} B/param) over {share} GPU(s) with engine="
                              f"{shape.engine}; a GPU has gpu_mem_gb={mem}: use deepspeed_zero3/fsdp or more nodes")  # fmt: skip


def tokens(cfg: Any) -> int:
    """Tokens a run processes, every completion at full length (an upper bound)."""
    t = cfg.trainer
    return int(t.max_steps * t.prompts_per_step * t.num_generations * (t.max_prompt_length + t.max_completion_length))


def flops_hours(tokens: float, params: float, peak_flops: float, mfu: float) -> float:
    """``tokens x 6 x params / (peak_flops x mfu)`` in hours (module docstring): the one GPU-hour formula, for the
    TRL path's presets and verl's recipe (``sspo_exp.integrations.verl_recipe``) alike."""
    return tokens * 6.0 * params / (peak_flops * mfu) / 3600.0


def gpu_hours(cfg: Any) -> float | None:
    """Estimated GPU-hours of one run (module docstring); None when the preset gives no parameter count."""
    res = _resources(cfg)
    n = res.get("active_params_b") or res.get("params_b")
    if not n or not res.get("peak_tflops") or not res.get("mfu"):
        return None
    return flops_hours(tokens(cfg), n * 1e9, res["peak_tflops"] * 1e12, res["mfu"])


def assumptions(cfg: Any) -> str:
    """The assumed peak and MFU of :func:`gpu_hours`, as printed beside the total."""
    res = _resources(cfg)
    return f"peak {res.get('peak_tflops')} TFLOP/s per GPU, MFU {res.get('mfu')}"
