"""The sandbox's settings: per-cell limits and the isolation policy (the ``sandbox:`` config block).

Every field is documented where it is declared. ``SandboxConfig.from_mapping`` validates a user's block (a dict
or an OmegaConf node) and names the bad field, value and allowed values, before anything runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping


class SandboxConfigError(ValueError):
    """A ``sandbox.*`` value is invalid; the message names the field, the value and what would be right."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox. CPU and wall time are per cell (one ``Sandbox.run``); the rest hold for the
    whole episode. A cell that exceeds ``cpu_seconds`` or ``wall_seconds`` kills the episode's sandbox; memory,
    processes, files and output are refused by the kernel or the REPL (the cell sees ``MemoryError``, a failed
    ``fork``, ``EFBIG`` or a closed stdout) and the episode goes on."""

    cpu_seconds: int = 5
    """CPU seconds one cell may use in the interpreter process (``RLIMIT_CPU``, re-armed before each cell; the
    kernel's SIGXCPU kills the episode). Children each get their own budget; ``wall_seconds`` bounds them all."""
    wall_seconds: float = 10.0
    """Wall-clock seconds one cell may take before the host kills the whole sandbox (every process in it)."""
    memory_mb: int = 512
    """Memory of the whole sandbox, in MiB: the budget of its cgroup (``memory.max``), which counts every process's
    memory AND the pages it holds without mapping them — ``/tmp`` files, ``memfd_create`` files, shared memory.
    A cell that fills it is OOM-killed by the kernel (the episode ends, ``killed="memory"``). Each process's address
    space is also capped at this (``RLIMIT_AS``), so one oversized allocation fails with ``MemoryError`` first."""
    processes: int = 32
    """Processes (and threads) the sandbox may hold at once: its cgroup's ``pids.max`` (plus bubblewrap's own two)
    and ``RLIMIT_NPROC`` for the sandbox's own user id: ``fork``/``clone`` beyond it fails with EAGAIN, so a fork
    bomb stops itself."""
    output_bytes: int = 64_000
    """Bytes of stdout+stderr kept per cell; the REPL then closes the pipe, so further writes fail at once."""
    disk_mb: int = 64
    """Size of the private ``/tmp`` (a tmpfs, the working directory) and the largest file (``RLIMIT_FSIZE``), MiB."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise SandboxConfigError(f"sandbox.{f.name}={value!r}: must be a positive number")
            if f.type == "int" and not isinstance(value, int):
                raise SandboxConfigError(f"sandbox.{f.name}={value!r}: must be a positive integer")
        if self.processes < 2:
            raise SandboxConfigError(f"sandbox.processes={self.processes!r}: must be >= 2 (the REPL itself is one)")
        if self.memory_mb < 64:
            raise SandboxConfigError(f"sandbox.memory_mb={self.memory_mb!r}: must be >= 64 (the interpreter needs ~30)")


@dataclass(frozen=True)
class SandboxConfig:
    """The ``sandbox:`` block: the limits plus how much isolation to insist on."""

    limits: Limits = dataclasses.field(default_factory=Limits)
    """Per-cell and per-episode resource limits (see :class:`Limits`)."""
    allow_weak: bool = False
    """Without a working bubblewrap, refuse (False, the default) or run model code in the WEAK mode (True): a
    separate process with the same rlimits, a temporary working directory and a clean environment, but NO
    filesystem, network or PID isolation. Warned loudly at every start; never for untrusted code on a shared box."""
    site_packages: bool = False
    """Bind the host interpreter's site-packages read-only into the sandbox, so model code can import the
    libraries installed there (e.g. sympy, numpy). False: the standard library only."""
    pool_size: int = 32
    """Sandboxes alive at once in the pool of one training step (:class:`sspo_exp.sandbox.SandboxPool`): the
    episodes of a step run in waves of this many (each keeps its sandbox for all its turns), and a wave's turns
    are sampled as one batch, so keep it >= the episodes per step and process for batched generation. Cells run
    at most one per CPU core at once (so one cell's CPU does not eat another's wall limit)."""
    pool_memory_mb: int = 4096
    """Memory of all the pool's sandboxes together, in MiB: the pool's own cgroup, in which each sandbox's group
    nests (each still capped at ``memory_mb``). The host's worst case for a step, however many episodes it
    runs; when the sandboxes together reach it, the kernel kills the largest process among them."""

    def __post_init__(self) -> None:
        for name in ("pool_size", "pool_memory_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SandboxConfigError(f"sandbox.{name}={value!r}: must be an integer >= 1")
        if self.pool_memory_mb < self.limits.memory_mb:
            raise SandboxConfigError(
                f"sandbox.pool_memory_mb={self.pool_memory_mb!r}: must be >= memory_mb ({self.limits.memory_mb}), "
                "the budget of one sandbox"
            )

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any] | None) -> "SandboxConfig":
        """Build from a ``sandbox:`` block with the limit fields flat beside ``allow_weak`` / ``site_packages`` /
        ``pool_size`` / ``pool_memory_mb``."""
        block = dict(block or {})
        limit_names = [f.name for f in dataclasses.fields(Limits)]
        flags = {"allow_weak", "site_packages"}
        pool = {"pool_size", "pool_memory_mb"}
        unknown = sorted(set(block) - set(limit_names) - flags - pool)
        if unknown:
            raise SandboxConfigError(
                f"sandbox.{unknown[0]}: unknown field; allowed: {', '.join(limit_names + sorted(flags) + sorted(pool))}"
            )
        for name in flags & set(block):
            if not isinstance(block[name], bool):
                raise SandboxConfigError(f"sandbox.{name}={block[name]!r}: must be true or false")
        limits = Limits(**{k: block[k] for k in limit_names if k in block})
        return cls(limits, **{k: block[k] for k in flags | pool if k in block})
