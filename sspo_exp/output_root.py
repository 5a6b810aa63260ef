"""Hydra callback of ``conf/train.yaml`` and ``conf/eval.yaml``: ``output_root`` must be a directory this process can
write, checked before Hydra creates its own log directory inside it (``hydra.run.dir``, ``hydra.sweep.dir``).

Without it a mistyped ``output_root`` ends in Hydra's ``FileNotFoundError`` traceback from that ``mkdir``, before the
task (and its one-line :class:`~sspo_exp.errors.ConfigError` handling, ``sspo_exp.hydra_cli``) ever runs. Here it
ends as every user's mistake does: one line naming the field, exit status 2. (A ``SystemExit`` passes through Hydra's
error handler, which reports any ``Exception`` with a traceback.)
"""

from __future__ import annotations

import sys

from hydra.experimental.callback import Callback

from sspo_exp.errors import ConfigError, writable_dir

USAGE_ERROR = 2


def check_output_root(config) -> None:
    """Exit 2 with one line (``sspo-exp <job>: error: output_root=...``) if ``config.output_root`` is not writable."""
    try:
        writable_dir(str(config.output_root), "output_root")
    except ConfigError as err:
        print(f"sspo-exp {config.hydra.job.name}: error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(USAGE_ERROR) from None


class OutputRootCheck(Callback):
    """``hydra.callbacks.output_root``: :func:`check_output_root` before a run or a multirun starts."""

    def on_run_start(self, config, **kwargs) -> None:
        check_output_root(config)

    def on_multirun_start(self, config, **kwargs) -> None:
        check_output_root(config)
