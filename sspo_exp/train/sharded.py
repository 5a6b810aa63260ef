"""Generation with the policy of a sharded training run (DeepSpeed ZeRO-3, FSDP1, FSDP2), for in-training evaluation.

Held-out accuracy and ``final_eval`` benchmarks inside a training run call HF ``generate`` on the trainer's model
(``callbacks.HeldoutEval``, ``run.train``). Under sharding every process holds a slice of each weight, so:

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
"""

from __future__ import annotations

from contextlib import contextmanager


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
