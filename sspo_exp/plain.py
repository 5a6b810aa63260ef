"""Config blocks as plain Python (the one owner of that conversion: stage keys, messages and settings use it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf


def to_plain(cfg: Any) -> Any:
    """``cfg`` as plain Python (an OmegaConf node resolved; mappings copied recursively), for keys and messages."""
    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return {k: to_plain(v) for k, v in cfg.items()} if isinstance(cfg, Mapping) else cfg


def plain_dict(cfg: Any) -> dict:
    """A config mapping (DictConfig, dict or None) as a plain dict (None: empty)."""
    return dict(to_plain(cfg) or {})
