"""A bounded pool of sandboxes for the episodes of one training step.

At most ``size`` sandboxes are alive at once (``sandbox.pool_size``); :meth:`SandboxPool.open` blocks until one
is free. Each episode gets a FRESH sandbox (never one another episode used: no state, file or process carries
over) and gives it back with :meth:`SandboxPool.release`, which kills it and removes its cgroup. The pool bounds
what a batch of hostile episodes can take from the host: ``size`` x ``memory_mb`` of memory (each sandbox's
cgroup budget), ``size`` x ``processes`` processes, ``size`` cells on the CPU at once. :meth:`close` (or leaving
the ``with`` block) closes every sandbox still out, so a step that raises leaves nothing behind.

    with SandboxPool(SandboxConfig(limits, pool_size=4)) as pool:
        box = pool.open(setup_code)        # started, setup run
        box.run("print(1)")
        pool.release(box)

Sandboxes start in ~60 ms here (docs/sandbox.md, benchmarks/sandbox_throughput.py), so the pool starts them on
demand rather than keeping warm ones.
"""

from __future__ import annotations

import threading

from sspo_exp.sandbox.box import Sandbox
from sspo_exp.sandbox.config import SandboxConfig


class SetupFailed(RuntimeError):
    """A task's setup code failed in a fresh sandbox (the message has its error)."""


class SandboxPool:
    """At most ``cfg.pool_size`` live sandboxes with ``cfg``'s limits; thread-safe."""

    def __init__(self, cfg: SandboxConfig | None = None) -> None:
        self.cfg = cfg or SandboxConfig()
        self.size = self.cfg.pool_size
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
        box = Sandbox.from_config(self.cfg)
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
        """Release every sandbox still out; later :meth:`open` calls raise."""
        with self._lock:
            self._closed = True
            out = list(self._out)
        for box in out:
            self.release(box)
