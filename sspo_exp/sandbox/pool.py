"""A bounded pool of sandboxes for the episodes of one training step.

At most ``size`` sandboxes are alive at once (``sandbox.pool_size``); :meth:`SandboxPool.open` blocks until one
is free. Each episode gets a FRESH sandbox (never one another episode used: no state, file or process carries
over) and gives it back with :meth:`SandboxPool.release`, which kills it and removes its cgroup. The pool has a
cgroup of its own (``sandbox.pool_memory_mb``) in which every sandbox's group nests: whatever the number of
episodes, their memory together stays under that budget (and each sandbox under ``memory_mb``); ``cells`` is how
many cells should run at once (one per CPU core). :meth:`close` (or leaving the ``with`` block) closes every
sandbox still out and removes the pool's group, so a step that raises leaves nothing behind.

    with SandboxPool(SandboxConfig(limits, pool_size=4)) as pool:
        box = pool.open(setup_code)        # started, setup run
        box.run("print(1)")
        pool.release(box)

Sandboxes start in ~45 ms here (docs/sandbox.md, benchmarks/sandbox_throughput.py), so the pool starts them on
demand rather than keeping warm ones.
"""

from __future__ import annotations

import os
import threading

from sspo_exp.sandbox import cgroup
from sspo_exp.sandbox.box import Sandbox
from sspo_exp.sandbox.config import SandboxConfig


class SetupFailed(RuntimeError):
    """A task's setup code failed in a fresh sandbox (the message has its error)."""


class SandboxPool:
    """At most ``cfg.pool_size`` live sandboxes with ``cfg``'s limits, ``cfg.pool_memory_mb`` together; thread-safe."""

    def __init__(self, cfg: SandboxConfig | None = None) -> None:
        self.cfg = cfg or SandboxConfig()
        self.size = self.cfg.pool_size
        self.cells = max(1, min(self.size, os.cpu_count() or 1))
        """How many cells to run at once: one per CPU core (at most ``size``)."""
        try:
            self.group: cgroup.Group | None = cgroup.backend().create_parent(self.cfg.pool_memory_mb << 20)
        except cgroup.CgroupUnavailable:
            self.group = None  # each sandbox then refuses, or runs weak if allowed, and says why
        self._slots = threading.BoundedSemaphore(self.size)
        self._lock = threading.Lock()
        self._out: set[Sandbox] = set()
        self._closed = False

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def live(self) -> int:
        """Sandboxes handed out and not yet released."""
        return len(self._out)

    def open(self, setup: str | None = None) -> Sandbox:
        """A started sandbox (after running ``setup``, if given), once fewer than ``size`` are out. Raises
        ``SandboxUnavailable`` (no sandbox of the required strength here) or :class:`SetupFailed`."""
        self._slots.acquire()
        box = Sandbox.from_config(self.cfg, _parent=self.group)
        with self._lock:
            if self._closed:
                self._slots.release()
                raise RuntimeError("SandboxPool.open after close()")
            self._out.add(box)
        try:
            box.start()
            if setup:
                obs = box.run(setup)
                if obs.error or obs.killed:
                    raise SetupFailed(f"the task's setup code failed in the sandbox: {(obs.error or obs.killed)[:300]}")
        except BaseException:
            self.release(box)
            raise
        return box

    def release(self, box: Sandbox) -> None:
        """Kill ``box`` (every process, its cgroup, its files) and free its slot. Safe to call twice."""
        with self._lock:
            if box not in self._out:
                return
            self._out.discard(box)
        try:
            box.close()
        finally:
            self._slots.release()

    def close(self) -> None:
        """Release every sandbox still out and remove the pool's cgroup; later :meth:`open` calls raise."""
        with self._lock:
            self._closed = True
            out = list(self._out)
        for box in out:
            self.release(box)
        if self.group is not None:
            self.group.remove()
