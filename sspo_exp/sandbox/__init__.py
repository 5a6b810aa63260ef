"""A sandbox for model-written code: one isolated, persistent Python interpreter per episode.

    from sspo_exp.sandbox import Sandbox, Limits
    with Sandbox(Limits(cpu_seconds=5, wall_seconds=10)) as box:
        box.run("x = 2\nprint(x + 1)")   # Observation(output='3\\n', error=None, ...)
        box.run("x * 10")                # later cells see earlier variables; a final expression is echoed

See docs/sandbox.md for the isolation (bubblewrap + rlimits), the weak mode and the hostile-program table.
"""

from sspo_exp.sandbox.box import Observation, Sandbox
from sspo_exp.sandbox.config import Limits, SandboxConfig, SandboxConfigError
from sspo_exp.sandbox.isolation import SandboxUnavailable

__all__ = ["Limits", "Observation", "Sandbox", "SandboxConfig", "SandboxConfigError", "SandboxUnavailable"]
