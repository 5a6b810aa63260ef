"""Waiting in tests: on events (a file appears, a job changes state, a process ends), never on a guessed duration.

``CEILING`` is only a safety net so that a hung job cannot hang CI forever: it is far above what any test needs
on a slow or loaded machine (the slowest test takes a few minutes on a busy 2-core machine), so reaching it means
something is stuck, not slow. Override with ``SSPO_TEST_CEILING`` (seconds).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Seconds before a wait gives up: a hang detector, not a speed requirement.
CEILING = float(os.environ.get("SSPO_TEST_CEILING", "1800"))


def wait_for(predicate: Callable[[], T], what: str, ceiling: float = CEILING, poll: float = 0.2,
             alive: Callable[[], bool] | None = None) -> T:  # fmt: skip
    """Poll ``predicate`` until it returns something truthy and return that.

    ``alive`` (optional) says whether the thing being waited on can still produce the event (e.g. its process is
    still running): when it turns false, the predicate is tried once more and the wait fails at once instead of
    sitting out the ceiling.
    """
    end = time.monotonic() + ceiling
    while True:
        value = predicate()
        if value:
            return value
        if alive is not None and not alive():
            value = predicate()
            if value:
                return value
            raise AssertionError(f"gave up waiting for {what}: what should produce it has ended")
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what} after {ceiling:.0f} s (a hang, not slowness)")
        time.sleep(poll)


def running(proc: subprocess.Popen) -> Callable[[], bool]:
    """``alive`` for :func:`wait_for`: the process has not exited."""
    return lambda: proc.poll() is None
