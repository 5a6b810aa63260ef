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

from sspo_exp.sandbox import isolation
from sspo_exp.sandbox.config import Limits, SandboxConfig
from sspo_exp.sandbox.isolation import SandboxUnavailable
from sspo_exp.sandbox.repl import write_frame

log = logging.getLogger(__name__)

#: Seconds the interpreter may take to start (not model code: no cell runs before it is ready).
STARTUP_SECONDS = 60.0

#: Every sandbox is spawned from this one long-lived thread: bwrap's ``--die-with-parent`` (PR_SET_PDEATHSIG) fires
#: when the *thread* that forked it exits, so a sandbox started from a short-lived worker thread would die with it.
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
    """None while the episode's sandbox lives; else why it died: ``cpu``, ``wall``, ``protocol``,
    ``signal N``, ``exit N``. Stays set on every later ``run``."""
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
    ) -> None:
        self.limits = limits or Limits()
        self.allow_weak, self.site_packages, self._probe = allow_weak, site_packages, _probe
        self.weak = False
        self.killed: str | None = None
        self._proc: subprocess.Popen | None = None
        self._workdir: str | None = None
        self._uid: int | None = None
        self._finalizer = None
        self._stderr = None

    @classmethod
    def from_config(cls, cfg: SandboxConfig) -> "Sandbox":
        return cls(cfg.limits, allow_weak=cfg.allow_weak, site_packages=cfg.site_packages)

    @staticmethod
    def check() -> str:
        """Describe this machine's isolation (after running one real sandbox), or raise SandboxUnavailable."""
        return isolation.check()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _launch(self, info_fd: int) -> isolation.Launch:
        if self._probe:
            return isolation.bwrap_launch(self.limits, self.site_packages, info_fd)
        try:
            isolation.check()
            return isolation.bwrap_launch(self.limits, self.site_packages, info_fd)
        except SandboxUnavailable as why:
            if not self.allow_weak:
                if isolation.WEAK_HINT in str(why):
                    raise
                raise SandboxUnavailable(f"{why}; {isolation.WEAK_HINT}") from why
            msg = (
                f"!!! SANDBOX IS WEAK: {why}. sandbox.allow_weak=true, so model-written code runs as a plain "
                "child process with rlimits only: it can read every world-readable file, reach the network and "
                "see other processes"
                + ("" if os.geteuid() == 0 else ", and (not being root) it has no process limit")
                + ". Do not use this on a shared machine or with untrusted models."
            )
            log.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=4)
            self._workdir = tempfile.mkdtemp(prefix="sspo-sandbox-")
            return isolation.weak_launch(self.limits, self._workdir, self.site_packages)

    def start(self) -> None:
        info_r, info_w = os.pipe()
        try:
            try:
                launch = self._launch(info_w)
            except BaseException:
                os.close(info_r)
                raise
            self.weak, self.killed, self._uid = launch.weak, None, launch.repl_cfg.get("uid")
            self._stderr = tempfile.TemporaryFile()  # bwrap's own messages; the REPL silences fd 2 before any cell
            self._proc = _SPAWNER.submit(
                subprocess.Popen,
                launch.argv + [json.dumps(launch.repl_cfg)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=launch.cwd,
                env=launch.env,
                start_new_session=True,
                pass_fds=() if launch.weak else (info_w,),
            ).result()
        finally:
            os.close(info_w)
        deadline = time.monotonic() + STARTUP_SECONDS
        init = None if self.weak else _first_pid(info_r, deadline)
        os.close(info_r)
        self._finalizer = weakref.finalize(self, _kill_tree, self._proc, init, self._uid if self.weak else None)
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
        if self._proc is not None and self.killed is None:
            self._kill("closed")
        if self._finalizer is not None:
            self._finalizer()
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
    return f"the sandbox's interpreter died ({reason}): its state is gone"


def _first_pid(info_fd: int, deadline: float) -> int | None:
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


def _kill_tree(proc: subprocess.Popen, init_pidfd: int | None, weak_uid: int | None) -> None:
    """SIGKILL the sandbox and wait until it is gone: bwrap's death kills the sandbox's PID 1
    (``--die-with-parent``), whose exit the kernel holds back until every process of the namespace is dead, so
    once that pidfd is readable nothing is left. In the weak mode, kill every process of the episode's uid."""
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
    while weak_uid is not None and isolation.processes_of(weak_uid) and time.monotonic() < deadline:
        try:  # as the episode's uid, kill(-1) reaches exactly its processes; SIGKILL lands asynchronously
            subprocess.run(["kill", "-9", "-1"], user=weak_uid, group=weak_uid, extra_groups=[], check=False)
        except OSError:
            break
        time.sleep(0.02)
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass
