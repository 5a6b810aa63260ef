"""Generation with the policy of a sharded training run (DeepSpeed ZeRO-3, FSDP1, FSDP2), for in-training evaluation.

Held-out accuracy and ``final_eval`` benchmarks inside a training run call HF ``generate`` on the trainer's model
(``callbacks.InitialEval``, ``callbacks.HeldoutEval``, ``run.train``). Under sharding every process holds a slice of
each weight, so:

- **FSDP2** (``fsdp_version: 2``, conf/accelerate/fsdp.yaml): the model *is* the sharded module and each forward
  all-gathers a layer's weights, so ``generate`` works as is, provided that every process calls it the same number
  of times in the same order. It does: every process evaluates the same rows with the same greedy decoding and the
  same weights, so they stop at the same step (tests/test_sharded_eval.py checks the outputs equal the unsharded
  model's on 2 gloo processes).
- **FSDP1**: parameters are flat shards outside a forward; TRL's ``DistributedBackend.summon_full_params``
  materialises them for the duration.
- **DeepSpeed ZeRO-3**: TRL's ``unwrap_model_for_generation`` gathers every parameter once (instead of once per
  layer per generated token) and hands back the plain module.

:func:`generation_model` applies TRL's own two context managers, exactly as ``GRPOTrainer`` does for its HF
rollouts; outside sharding it returns the trainer's model unchanged.

**The initial policy** (before-RL held-out accuracy, ``final_eval.before``) cannot be scored on the model
``load_policy`` returns under a sharded engine: ZeRO-3's ``zero.Init`` (switched on by ``grpo_config``) leaves each
process 0-element placeholders, and FSDP's ``fsdp_cpu_ram_efficient_loading`` leaves ranks > 0 on the meta device and
the whole model on rank 0's CPU. So ``run.py`` scores it only when unsharded (before the trainer exists, as always);
under ``config.sharded_engine()`` ``callbacks.InitialEval`` scores it at ``on_train_begin`` — which transformers'
``_inner_training_loop`` calls after ``_prepare_for_training`` (``deepspeed_init`` / ``accelerator.prepare``) — inside
:func:`generation_model`, on every process, with the same files, W&B summary keys and ``summary.json`` entries.
Verified on CPU only (tests/test_train_initial_eval.py: the sharded path forced on a one-process CPU run, where
:func:`generation_model` returns the model as is); not run under a real ZeRO-3 / FSDP launch (no GPU).
"""

from __future__ import annotations

from contextlib import contextmanager
from sspo_exp.errors import ConfigError
from sspo_exp.train.config import sharded_engine


@contextmanager
def generation_model(trainer):
    """The trainer's policy, ready for ``generate`` on every process (see the module docstring)."""
    from trl.distributed import DistributedBackend
    from trl.models.utils import unwrap_model_for_generation

    backend = DistributedBackend(trainer.accelerator)
    if not (backend.is_zero3 or backend.is_fsdp):
        yield trainer.model
        return
    with (
        unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator, gather_deepspeed3_params=True) as model,
        backend.summon_full_params(trainer.model_wrapped, recurse=False),
    ):
        yield model


def refuse_sharding_on_cpu(device) -> None:
    """Raise ``ConfigError`` when ``accelerate launch`` asked for DeepSpeed or FSDP but training runs on the CPU.

    accelerate 1.15 shards only on accelerator devices, and on the CPU it says nothing: ``AcceleratorState`` takes an
    FSDP plugin only for GPU-class distributed types (accelerate/state.py, the ``elif self.distributed_type in
    [DistributedType.MULTI_GPU, ...]`` branch: a CPU process group is ``MULTI_CPU``, so an FSDP config trains as
    plain DDP), and DeepSpeed only when not on the CPU (state.py ``ACCELERATE_USE_DEEPSPEED ... and not cpu``;
    without ``cpu`` no process group forms on a CPU-only machine, ``_prepare_backend``, and each process trains
    alone). docs/engines.md has the details; conf/accelerate/cpu_ddp.yaml is the multi-process CPU path.
    """
    if sharded_engine() and getattr(device, "type", str(device)) == "cpu":
        raise ConfigError(
            "accelerate launch with DeepSpeed/FSDP (conf/accelerate/deepspeed_zero3.yaml, fsdp.yaml) on the CPU: "
            "accelerate 1.15 shards only on GPUs and would train unsharded (see docs/engines.md); on a CPU use "
            "accelerate_command('cpu_ddp', ...)"
        )
