"""The objectives, one file each: every module in this folder is imported here and registers itself with
``@register_objective`` (:mod:`sspo_exp.objectives.registry`). To add an objective, add a file (``grpo.py`` is the
shortest example); modules whose name starts with ``_`` hold shared pieces and register nothing.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
