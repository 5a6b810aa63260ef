"""Shared by tests/test_verl_*.py: skip without verl (it lives in .venv-verl), verl's actor config, batches."""

from __future__ import annotations

import importlib.util

import pytest

HAVE_VERL = importlib.util.find_spec("verl") is not None
needs_verl = pytest.mark.skipif(
    not HAVE_VERL, reason="verl is not installed here: `bash .ci/verl.sh` makes .venv-verl (verl 0.9.1); "
    "run `.venv-verl/bin/python -m pytest -m verl tests/test_verl_*.py` (CI does, see .ci/run)",
)


def actor_config(loss_mode: str, loss_agg_mode: str = "seq-mean-token-mean", **fields):
    """verl's own ``ActorConfig`` (a dataclass it validates), as verl's workers pass it to a policy loss."""
    from verl.workers.config.actor import ActorConfig, PolicyLossConfig

    return ActorConfig(strategy="fsdp", rollout_n=8, ppo_micro_batch_size_per_gpu=1, loss_agg_mode=loss_agg_mode,
                       policy_loss=PolicyLossConfig(loss_mode=loss_mode), **fields)  # fmt: skip


def random_batch(seed: int, rows: int = 6, T: int = 9, scale: float = 0.4, empty_row: bool = False):
    """verl's inputs: old/new log-probs [B, T] (float64, new ones a leaf), token-level outcome advantages (one
    value per response, 0 on padding, as verl's GRPO estimator writes them) and a ragged response mask."""
    import torch

    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(rows, T, generator=g, dtype=torch.float64) * 3
    new = (old + scale * torch.randn(rows, T, generator=g, dtype=torch.float64)).requires_grad_()
    lengths = torch.randint(1, T + 1, (rows,), generator=g)
    if empty_row:
        lengths[1] = 0
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    adv = torch.randn(rows, generator=g, dtype=torch.float64)
    return old, new, adv.unsqueeze(1) * mask, mask
