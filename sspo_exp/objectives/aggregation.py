"""The one masked aggregation every objective shares.

Two reductions, both over response tokens only (``mask``):

- ``seq_mean``: ``1/|y_i| Σ_t x_{i,t}`` per response (0 for a response with no tokens).
- ``aggregate``: the sequence terms of a batch into one number.  ``"seq-mean-token-mean"`` is the paper's
  ``1/G Σ_i`` of per-response terms (Eqs. 2, 5–11); ``"token-mean"`` (DAPO-style, off by default) weights each
  response by its length, ``Σ_i |y_i| x_i / Σ_i |y_i|``.
"""

from __future__ import annotations

from torch import Tensor

from .spec import LOSS_AGGS  # noqa: F401  (one definition, torch-free)


def lengths(mask: Tensor) -> Tensor:
    """``|y_i|``: the number of response tokens of each row [B] (``mask`` is a float 0/1 tensor [B, T])."""
    return mask.sum(dim=-1)


def seq_mean(x: Tensor, mask: Tensor, length: Tensor) -> Tensor:
    """Masked per-response mean over tokens [B, T] -> [B]; ``x`` must already be 0 at masked positions."""
    return (x * mask).sum(dim=-1) / length.clamp(min=1.0)


def aggregate(seq_terms: Tensor, length: Tensor, loss_agg: str) -> Tensor:
    """Reduce per-response terms [B] to a scalar with the chosen ``loss_agg`` (see module docstring)."""
    if loss_agg == "seq-mean-token-mean":
        return seq_terms.mean()
    if loss_agg == "token-mean":
        return (seq_terms * length).sum() / length.sum().clamp(min=1.0)
    raise ValueError(f"loss_agg={loss_agg!r} is not known; valid values: {', '.join(LOSS_AGGS)}")
