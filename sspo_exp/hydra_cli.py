"""The one bridge from ``sspo-exp <command> [overrides]`` to ``hydra.main`` (train and eval use it).

``hydra.main`` runs with ``sys.argv`` set to our arguments, so everything Hydra's own command line offers works:
``-m``/``--multirun`` sweeps, launcher plugins, ``--cfg job``, tab completion. A user's mistake ends with exit status
2 and one line naming the field, with no traceback: a bad override (Hydra's own message, before the task starts) or a
:class:`~sspo_exp.errors.ConfigError` from the task's validation, which runs before torch, TRL or transformers load
(or a :class:`~sspo_exp.data.schema.DataError` about the user's data files, found when they are read). A run that
another live process is training (:class:`~sspo_exp.rundir.RunBusy`) ends with one line saying who holds it, since
when and when its lease goes stale, and exit status 75 (EX_TEMPFAIL: try again later).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from sspo_exp import CONF_DIR
from sspo_exp.data.schema import DataError
from sspo_exp.errors import ConfigError
from sspo_exp.rundir import RunBusy

USAGE_ERROR = 2
#: Another live process is training the run (sspo_exp.rundir.RunBusy): try again later (sysexits.h EX_TEMPFAIL).
RUN_BUSY = 75


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
        except RunBusy as busy:  # the run is not trained twice: one line, and a status a script can test
            print(f"{prog}: busy: {busy}", file=sys.stderr, flush=True)
            raise SystemExit(RUN_BUSY) from None

    saved = sys.argv
    args = list(sys.argv[1:] if argv is None else argv)
    # shell completion installs itself for the program's first word only (the bash function calls `sspo-exp -sc
    # query=bash`, which sspo_exp.cli hands back here without the command word)
    completing = any(a in ("-sc", "--shell-completion") for a in args)
    if completing and any(a.startswith("query=") for a in args) and "COMP_LINE" not in os.environ:
        print(f"{prog}: -sc query=bash is what the shell calls while completing (with COMP_LINE set); install "
              f'completion with eval "$({prog} -sc install=bash)"', file=sys.stderr)
        return USAGE_ERROR
    sys.argv = [prog.split()[0] if completing else prog, *args]
    try:
        _main()
    except SystemExit as e:  # Hydra prints its error and exits 1: before the task started, that was the user's input
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return USAGE_ERROR if code == 1 and not started else code
    finally:
        sys.argv = saved
    return 0
