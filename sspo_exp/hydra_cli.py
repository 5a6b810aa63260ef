"""The one bridge from ``sspo-exp <command> [overrides]`` to ``hydra.main`` (train and eval use it).

``hydra.main`` runs with ``sys.argv`` set to our arguments, so everything Hydra's own command line offers works:
``-m``/``--multirun`` sweeps, launcher plugins, ``--cfg job``, tab completion. A user's mistake ends with exit status
2 and one line naming the field, with no traceback: a bad override (Hydra's own message, before the task starts) or a
:class:`~sspo_exp.errors.ConfigError` from the task's validation, which runs before torch, TRL or transformers load
(or a :class:`~sspo_exp.data.schema.DataError` about the user's data files, found when they are read).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from sspo_exp import CONF_DIR
from sspo_exp.data.schema import DataError
from sspo_exp.errors import ConfigError

USAGE_ERROR = 2


def run(config_name: str, prog: str, task: Callable[[Any], Any], argv: list[str] | None) -> int:
    """Compose ``conf/<config_name>.yaml`` with the overrides in ``argv`` and call ``task(cfg)``; the exit status."""
    import hydra

    started = []

    @hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")
    def _main(cfg):
        started.append(True)
        try:
            return task(cfg)
        except (ConfigError, DataError) as err:  # DataError: the user's data files (missing, malformed)
            print(f"{prog}: error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(USAGE_ERROR) from None

    saved = sys.argv
    sys.argv = [prog, *(sys.argv[1:] if argv is None else argv)]
    try:
        _main()
    except SystemExit as e:  # Hydra prints its error and exits 1: before the task started, that was the user's input
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return USAGE_ERROR if code == 1 and not started else code
    finally:
        sys.argv = saved
    return 0
