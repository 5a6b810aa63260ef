"""Hydra callback of ``conf/train.yaml`` and ``conf/eval.yaml``: ``output_root`` must be a directory this process can
write, checked before Hydra creates its own log directory inside it (``hydra.run.dir``, ``hydra.sweep.dir``).

Without it a mistyped ``output_root`` ends in Hydra's ``FileNotFoundError`` traceback from that ``mkdir``, before the
task (and its one-line :class:`~sspo_exp.errors.ConfigError` handling, ``sspo_exp.hydra_cli``) ever runs. Here it
ends as every user's mistake does: one line naming the field, exit status 2. It exits with ``SystemExit``: Hydra
turns any ``Exception`` a callback raises into a warning and goes on (``hydra/_internal/callbacks.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from sspo_exp.errors import ConfigError, writable_dir
from sspo_exp.hydra_cli import USAGE_ERROR


def writable_output_root(value, hydra: bool = True) -> None:
    """A :class:`ConfigError` unless ``output_root`` can be written as the runs see it (``~`` expanded,
    ``sspo_exp.rundir``) and, with ``hydra``, as Hydra's own directories do (taken literally); creates it."""
    given = Path(str(value))
    for path in dict.fromkeys((given.expanduser(), given) if hydra else (given.expanduser(),)):
        writable_dir(path, "output_root")


def check_output_root(config) -> None:
    """Exit 2 with one line (``sspo-exp <job>: error: output_root=...``) unless :func:`writable_output_root`."""
    try:
        writable_output_root(config.output_root)
    except ConfigError as err:
        print(f"sspo-exp {config.hydra.job.name}: error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(USAGE_ERROR) from None


class OutputRootCheck(Callback):
    """``hydra.callbacks.output_root``: :func:`check_output_root` before a run or a multirun starts."""

    def on_run_start(self, config, **kwargs) -> None:
        check_output_root(config)

    def on_multirun_start(self, config, **kwargs) -> None:
        check_output_root(config)
