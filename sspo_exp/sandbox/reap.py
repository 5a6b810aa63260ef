"""Ending a sandbox: find its PID 1, kill every process in it, and wait until nothing of it is left."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time

from sspo_exp.sandbox import cgroup
from sspo_exp.sandbox.isolation import processes_of


def first_pid(info_fd: int, deadline: float) -> int | None:
    """A pidfd of the sandbox's PID 1, from bwrap's ``--info-fd`` JSON (None if bwrap failed before writing it)."""
    data = b""
    while time.monotonic() < deadline and select.select([info_fd], [], [], deadline - time.monotonic())[0]:
        chunk = os.read(info_fd, 4096)
        if not chunk:
            break
        data += chunk
        try:
            return os.pidfd_open(json.loads(data)["child-pid"])
        except ValueError:
            continue  # more to come
        except (KeyError, OSError, AttributeError):  # no such process, or no pidfd_open (Linux < 5.3)
            return None
    return None


def kill_tree(
    proc: subprocess.Popen, init_pidfd: int | None, weak_uid: int | None, group: cgroup.Group | None
) -> None:
    """SIGKILL the sandbox and wait until it is gone: bwrap's death kills the sandbox's PID 1
    (``--die-with-parent``), whose exit the kernel holds back until every process of the namespace is dead, so
    once that pidfd is readable nothing is left. The cgroup is then emptied (SIGKILL to anything still in it) and
    removed. In the weak mode without a cgroup, kill every process of the episode's uid."""
    if group is not None:
        group.kill()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.kill()
    proc.wait()
    if init_pidfd is not None:
        select.select([init_pidfd], [], [], 60.0)
        os.close(init_pidfd)
    deadline = time.monotonic() + 60.0
    while weak_uid is not None and processes_of(weak_uid) and time.monotonic() < deadline:
        try:  # as the episode's uid, kill(-1) reaches exactly its processes; SIGKILL lands asynchronously
            subprocess.run(["kill", "-9", "-1"], user=weak_uid, group=weak_uid, extra_groups=[], check=False)
        except OSError:
            break
        time.sleep(0.02)
    if group is not None:
        group.remove()
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass
