"""The host side of a sandbox: one episode = one isolated, persistent interpreter; ``run(code)`` = one cell.

A cell that exceeds its CPU or wall time KILLS the episode: every process in the sandbox dies, the observation
says ``killed="cpu"`` / ``"wall"`` with ``timed_out=True``, and every later ``run`` returns at once with
``killed`` set and an error saying the sandbox is gone (no silent restart: the model's variables are lost, and
the observation must say so). ``restart()`` starts a fresh interpreter explicitly. The same holds when the
interpreter dies for any other reason (``killed="signal 9"`` after ``os.kill(os.getpid(), 9)``, ``"exit 3"`` after
``os._exit(3)``) or
breaks the protocol (``killed="protocol"``).
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
import weakref
from dataclasses import dataclass

from sspo_exp.sandbox import cgroup, isolation, reap, syscalls
from sspo_exp.sandbox.config import Limits, SandboxConfig
from sspo_exp.sandbox.isolation import SandboxUnavailable
from sspo_exp.sandbox.repl import write_frame

log = logging.getLogger(__name__)

#: Seconds the interpreter may take to start (not model code: no cell runs before it is ready).
STARTUP_SECONDS = 60.0

#: Every sandbox is spawned from this one long-lived thread: bwrap's ``--die-with-parent`` (PR_SET_PDEATHSIG) fires
#: when the *thread* that forked it exits, so a sandbox started from a short-lived worker thread would die with it.
#: Processes of a sandbox that are not model code: bubblewrap's monitor and its PID 1 (the cgroup's ``pids.max`` is
#: ``processes`` + these; the REPL and everything it starts share ``processes``).
BWRAP_PROCESSES = 2

_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sspo-sandbox-spawner")


@dataclass(frozen=True)
class Observation:
    """What one cell did, as the environment reports it to the policy."""

    output: str
    """The cell's stdout and stderr interleaved (also of its child processes), at most ``output_bytes``; a final
    expression's repr is included, as in a Jupyter cell."""
    error: str | None
    """The formatted exception (traceback of the cell's own frames), or a note on a limit/kill; None if clean."""
    timed_out: bool
    """True if this cell hit its CPU or wall-time limit (the sandbox was then killed)."""
    killed: str | None
    """None while the episode's sandbox lives; else why it died: ``cpu``, ``wall``, ``memory`` (the kernel's OOM
    killer ended the interpreter: the sandbox's cgroup budget was full), ``protocol``, ``signal N``, ``exit N``.
    Stays set on every later ``run``."""
    truncated: bool
    """True if the cell wrote more than ``output_bytes`` (the rest was refused, the writer saw EPIPE)."""
    seconds: float
    """Wall-clock seconds the host waited for this cell."""


class Sandbox:
    """One episode's isolated interpreter. Use as a context manager; state persists across ``run`` calls."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        allow_weak: bool = False,
        site_packages: bool = False,
        _probe: bool = False,
        _parent: cgroup.Group | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.allow_weak, self.site_packages, self._probe = allow_weak, site_packages, _probe
        self._parent = _parent  # a pool's cgroup: this sandbox's group nests in it (their memory is shared)
        self.weak = False
        """True if this sandbox runs without bubblewrap (the weak mode)."""
        self.missing: list[str] = []
        """What this sandbox runs without (empty at full strength: bubblewrap, cgroup budget, seccomp)."""
        self.killed: str | None = None
        self.peak_bytes: int | None = None
        """After close: the sandbox's peak memory charge (its cgroup's: processes, /tmp, shared memory), if known."""
        self._proc: subprocess.Popen | None = None
        self._group: cgroup.Group | None = None
        self._oom_seen = 0
        self._workdir: str | None = None
        self._uid: int | None = None
        self._finalizer = None
        self._stderr = None

    @classmethod
    def from_config(cls, cfg: SandboxConfig, _parent: cgroup.Group | None = None) -> "Sandbox":
        return cls(cfg.limits, allow_weak=cfg.allow_weak, site_packages=cfg.site_packages, _parent=_parent)

    @staticmethod
    def check() -> str:
        """Describe this machine's isolation (after running one real sandbox), or raise SandboxUnavailable."""
        return check()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _prepare(self) -> bool:
        """Create the cgroup and collect what is missing; True if bubblewrap is usable."""
        use_bwrap = True
        self.missing = []
        if not self._probe:
            try:
                _probe()
            except SandboxUnavailable as why:
                use_bwrap = False
                self.missing.append(str(why).replace(f"; {isolation.WEAK_HINT}", ""))
        try:
            budget = (self.limits.memory_mb << 20, self.limits.processes + BWRAP_PROCESSES)
            self._group = cgroup.backend().create(*budget, parent=self._parent)
            self._oom_seen = 0
        except cgroup.CgroupUnavailable as why:
            self.missing.append(f"no per-sandbox memory and process budget: {why}")
        try:
            syscalls.program()
        except syscalls.SeccompUnavailable as why:
            self.missing.append(f"no seccomp filter: {why}")
        return use_bwrap

    def _launch(self, info_fd: int) -> isolation.Launch:
        use_bwrap = self._prepare()
        if self.missing and not self._probe:
            if not self.allow_weak:
                raise SandboxUnavailable(f"{'; '.join(self.missing)}; {isolation.WEAK_HINT}")
            _warn_weak(self.missing, use_bwrap)
        if use_bwrap:
            seccomp_fd = None if any(m.startswith("no seccomp") for m in self.missing) else syscalls.program_fd()
            try:
                return isolation.bwrap_launch(self.limits, self.site_packages, info_fd, seccomp_fd)
            except BaseException:
                if seccomp_fd is not None:
                    os.close(seccomp_fd)
                raise
        self._workdir = tempfile.mkdtemp(prefix="sspo-sandbox-")
        program = None if any(m.startswith("no seccomp") for m in self.missing) else syscalls.program()
        return isolation.weak_launch(self.limits, self._workdir, self.site_packages, program)

    def start(self) -> None:
        info_r, info_w = os.pipe()
        launch = None
        try:
            launch = self._launch(info_w)
            self.weak, self.killed, self._uid = launch.weak, None, launch.repl_cfg.get("uid")
            self._stderr = tempfile.TemporaryFile()  # bwrap's own messages; the REPL silences fd 2 before any cell
            argv = launch.argv + [json.dumps(launch.repl_cfg)]
            self._proc = _SPAWNER.submit(
                subprocess.Popen,
                self._group.wrap(argv) if self._group else argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=launch.cwd,
                env=launch.env,
                start_new_session=True,
                pass_fds=() if launch.weak else (info_w, *launch.fds),
            ).result()
        except BaseException:
            os.close(info_r)
            self.close()
            raise
        finally:
            os.close(info_w)
            for fd in launch.fds if launch else ():
                os.close(fd)
        deadline = time.monotonic() + STARTUP_SECONDS
        init = None if self.weak else reap.first_pid(info_r, deadline)
        os.close(info_r)
        self._finalizer = weakref.finalize(
            self, reap.kill_tree, self._proc, init, self._uid if self.weak else None, self._group
        )
        ready = self._recv(deadline)
        if not isinstance(ready, dict) or not ready.get("ready"):
            self._kill("startup")
            self._stderr.seek(0)
            err = self._stderr.read().decode(errors="replace").strip()[-2000:]
            self.close()
            raise SandboxUnavailable(
                f"the sandbox's interpreter did not start ({ready!r}); its stderr: {err or '(empty)'}; "
                f"command: {' '.join(launch.argv[:3])} ...; {isolation.WEAK_HINT}"
            )

    def restart(self) -> None:
        """Kill this episode's interpreter (if alive) and start a fresh one: all variables are lost."""
        self.close()
        self.start()

    def close(self) -> None:
        """Kill every process of the sandbox, remove its cgroup and its files (safe to call twice)."""
        if self._proc is not None and self.killed is None:
            self._kill("closed")
        if self._finalizer is not None:
            self._finalizer()
        elif self._group is not None:  # created, but the launch failed before a finalizer owned it
            self._group.remove()
        if self._group is not None:
            self.peak_bytes = self._group.last_peak
        self._group = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    @property
    def uid(self) -> int | None:
        """The episode's private host uid (when the host runs as root), else None."""
        return self._uid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self.killed is None

    # -- one cell ----------------------------------------------------------------------------------------------
    def run(self, code: str) -> Observation:
        """Run one cell; never raises for anything the code does (see the module docstring for kills)."""
        if self._proc is None:
            raise RuntimeError("Sandbox.run before start(): use `with Sandbox(limits) as box:`")
        t0 = time.monotonic()
        if self.killed is not None:
            gone = f"the sandbox was killed earlier ({self.killed}); its state is gone: start a new episode"
            return Observation("", gone, False, self.killed, False, 0.0)
        if self._group is not None:
            self._oom_seen = self._group.oom_kills()  # an OOM kill during this cell ends it as "memory"
        try:
            write_frame(self._proc.stdin.fileno(), {"code": code})
        except BrokenPipeError:
            pass  # the interpreter is gone: _recv sees EOF and says why
        reply = self._recv(t0 + self.limits.wall_seconds)
        seconds = time.monotonic() - t0
        if isinstance(reply, dict) and "output" in reply:
            return Observation(reply["output"], reply["error"], False, None, bool(reply["truncated"]), seconds)
        reason = reply if isinstance(reply, str) else "protocol"
        self._kill(reason)
        return Observation("", _kill_note(reason, self.limits), reason in ("cpu", "wall"), reason, False, seconds)

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _recv(self, deadline: float) -> dict | str:
        """One frame from the REPL, or why none came: ``wall`` (deadline), ``cpu``/``signal N``/``exit N`` (EOF),
        ``protocol`` (a frame over the size cap or not JSON)."""
        fd = self._proc.stdout.fileno()
        cap = 12 * self.limits.output_bytes + (1 << 20)  # JSON may escape a byte to 6; output and error
        header = self._read_exact(fd, 4, deadline)
        if isinstance(header, bytes):
            size = int.from_bytes(header, "big")
            if size > cap:
                return "protocol"
            body = self._read_exact(fd, size, deadline)
            if isinstance(body, bytes):
                try:
                    return json.loads(body)
                except ValueError:
                    return "protocol"
            header = body
        if header == "eof":
            try:
                rc = self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                return "exit unknown"
            sig = -rc if rc < 0 else rc - 128 if rc > 128 and not self.weak else None  # bwrap reports 128 + signal
            if sig == signal.SIGKILL and self._group is not None and self._group.oom_kills() > self._oom_seen:
                return "memory"
            return "cpu" if sig == signal.SIGXCPU else f"signal {sig}" if sig else f"exit {rc}"
        return header

    @staticmethod
    def _read_exact(fd: int, n: int, deadline: float) -> bytes | str:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return "wall"
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                return "eof"
            buf += chunk
        return bytes(buf)

    def _kill(self, reason: str) -> None:
        self.killed = reason
        if self._finalizer is not None:
            self._finalizer()


def _kill_note(reason: str, limits: Limits) -> str:
    if reason == "cpu":
        return f"CPU time limit ({limits.cpu_seconds} s per cell) exceeded: the sandbox was killed, its state is gone"
    if reason == "wall":
        return f"wall time limit ({limits.wall_seconds} s per cell) exceeded: the sandbox was killed, its state is gone"
    if reason == "memory":
        return (
            f"memory budget ({limits.memory_mb} MiB for the whole sandbox: processes, /tmp, shared memory) exceeded: "
            "the kernel killed the interpreter, its state is gone"
        )
    return f"the sandbox's interpreter died ({reason}): its state is gone"


def _warn_weak(missing: list[str], bwrap: bool) -> None:
    what = []
    if not bwrap:
        what.append(
            "model-written code runs as a plain child process: it can read every world-readable file, write the "
            "host's /tmp and /dev/shm, reach the network and see other processes"
            + ("" if os.geteuid() == 0 else ", and it has no process limit")
        )
    if any(m.startswith("no per-sandbox memory") for m in missing):
        what.append("memory is limited per process only (RLIMIT_AS): memfd, shared memory and /tmp are not counted")
    if any(m.startswith("no seccomp") for m in missing):
        what.append("every system call the kernel allows is open (no seccomp filter)")
    msg = f"!!! SANDBOX IS WEAK: {'; '.join(missing)}. sandbox.allow_weak=true, so {'; '.join(what)}. " \
        "Do not use this on a shared machine or with untrusted models."
    log.warning(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=5)


def _probe() -> str:
    """Describe bubblewrap here after one real sandbox (cached per process); raise SandboxUnavailable if it fails."""
    if isolation.forced_weak():
        raise SandboxUnavailable("bubblewrap disabled by force_weak() (sspo-exp sandbox --weak)")
    return _bwrap_probe()


@functools.lru_cache(maxsize=None)
def _bwrap_probe() -> str:
    with Sandbox(Limits(), _probe=True) as box:
        obs = box.run("import os; print(os.getuid(), len(os.listdir('/')))")
    if obs.error or obs.killed:
        raise SandboxUnavailable(f"bubblewrap started but a test cell failed: {obs}")
    version = subprocess.run([isolation.bwrap_path(), "--version"], capture_output=True, text=True).stdout.strip()
    variant = (
        "as root, no user namespace; REPL switches to a random unprivileged uid"
        if os.geteuid() == 0
        else "unprivileged user namespace (--unshare-user --disable-userns)"
    )
    return (
        f"{version}: {variant}; namespaces net+pid+ipc+uts+cgroup, no capabilities, read-only /usr and "
        f"interpreter, private tmpfs /tmp; rlimits on CPU, address space, processes, files "
        f"(uid {obs.output.split()[0]})"
    )


def check() -> str:
    """Describe the isolation this machine gives, or raise SandboxUnavailable naming everything that is missing:
    a working bubblewrap (one real sandbox is run, once per process), a cgroup budget, the seccomp filter."""
    missing, parts = [], []
    for name, describe, error in (
        ("bubblewrap", _probe, SandboxUnavailable),
        ("budget", lambda: cgroup.backend().describe(), cgroup.CgroupUnavailable),
        ("seccomp", lambda: f"seccomp: {len(syscalls.DENIED)} calls + namespace clone flags denied (EPERM)",
         syscalls.SeccompUnavailable),
    ):
        try:
            parts.append(describe())
        except error as why:
            missing.append(f"{name}: {why}")
    if missing:
        raise SandboxUnavailable("; ".join(missing))
    return "; ".join(parts)
