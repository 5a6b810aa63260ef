"""A sandbox for model-written code: one isolated, persistent Python interpreter per episode.

    from sspo_exp.sandbox import Sandbox, Limits
    with Sandbox(Limits(cpu_seconds=5, wall_seconds=10)) as box:
        box.run("x = 2\nprint(x + 1)")   # Observation(output='3\\n', error=None, ...)
        box.run("x * 10")                # later cells see earlier variables; a final expression is echoed

For the episodes of one training step, a bounded pool (at most ``pool_size`` sandboxes alive, ``pool_memory_mb``
of memory together):

    with SandboxPool(SandboxConfig(pool_size=4, pool_memory_mb=2048)) as pool:
        box = pool.open(); box.run("1 + 1"); pool.release(box)

See docs/sandbox.md for the isolation (bubblewrap, a cgroup budget per sandbox, a seccomp filter, rlimits), the
weak mode, the pool's throughput and the hostile-program table.
"""

from sspo_exp.sandbox.box import Observation, Sandbox
from sspo_exp.sandbox.config import Limits, SandboxConfig, SandboxConfigError
from sspo_exp.sandbox.isolation import SandboxUnavailable
from sspo_exp.sandbox.pool import SandboxPool, SetupFailed

__all__ = [
    "Limits", "Observation", "Sandbox", "SandboxConfig", "SandboxConfigError", "SandboxPool", "SandboxUnavailable",
    "SetupFailed",
]
