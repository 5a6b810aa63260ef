"""Hostile programs and the host-side checks that they stayed contained.

One catalogue serves the tests (``tests/test_sandbox.py`` runs each case and asserts its outcome and
containment) and ``sspo-exp sandbox`` (prints the table of docs/sandbox.md from a real run on this machine).

Containment of a case (:class:`Bait` sets up the targets, :meth:`Bait.breaches` checks them afterwards):
no secret token reached the sandbox's output, no connection reached the host's listening socket, no file
appeared or changed in the host's bait directory or at the escape paths, the host process and its parent are
alive, and (when the sandbox had a private uid) no process of that uid is left on the host.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sspo_exp.sandbox import cgroup, syscalls
from sspo_exp.sandbox.box import Observation, Sandbox
from sspo_exp.sandbox.cases import CASES, TABLE_LIMITS, Case
from sspo_exp.sandbox.config import Limits
from sspo_exp.sandbox.isolation import processes_of

__all__ = ["CASES", "TABLE_LIMITS", "Bait", "Case", "Row", "outcome", "run_case", "table"]


def outcome(obs: Observation) -> str:
    """``killed (cpu|wall|signal N|exit N)``, ``truncated``, the exception class name, or ``ok``."""
    if obs.killed:
        return f"killed ({obs.killed})"
    if obs.truncated:
        return "truncated"
    if obs.error:
        last = obs.error.strip().splitlines()[-1]
        return last.split(":", 1)[0]
    return "ok"


class Bait:
    """Host-side targets for the hostile cases, and the check that none was touched. A context manager."""

    def __enter__(self) -> "Bait":
        self.token = secrets.token_hex(16)
        self._tmp = tempfile.TemporaryDirectory(prefix="sspo-bait-")
        root = Path(self._tmp.name)
        self.host_dir, self.home = root / "host", root / "home"
        self.host_dir.mkdir()
        self.home.mkdir()
        (self.host_dir / "existing.txt").write_text("unchanged")
        (self.home / "secret.txt").write_text(f"secret {self.token}")
        self.escape_tmp = f"/tmp/sspo-escape-{secrets.token_hex(8)}"  # not the secret: the sandbox may print it
        self.root_secret = Path(f"/root/sspo-secret-{secrets.token_hex(8)}")
        try:
            self.root_secret.write_text(f"secret {self.token}")
        except OSError:
            self.root_secret = None  # not root: the home dir stands in
        self._old_home = os.environ.get("HOME")
        os.environ["HOME"] = str(self.home)
        os.environ["SSPO_BAIT_SECRET"] = self.token
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.setblocking(False)
        self._snapshot = self._snap()
        return self

    def __exit__(self, *exc) -> None:
        self.listener.close()
        if self.root_secret is not None:
            self.root_secret.unlink(missing_ok=True)
        Path(self.escape_tmp).unlink(missing_ok=True)
        if self._old_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = self._old_home
        os.environ.pop("SSPO_BAIT_SECRET", None)
        self._tmp.cleanup()

    def fields(self) -> dict:
        return {
            "host_dir": self.host_dir,
            "home": self.home,
            "escape_tmp": self.escape_tmp,
            "root_secret": self.root_secret or f"{self.home}/secret.txt",
            "port": self.listener.getsockname()[1],
            "host_pid": os.getpid(),
            "host_ppid": os.getppid(),
            "syscall_numbers": _syscall_numbers(),
            "clone_flags": dict(syscalls.CLONE_NEW),
        }

    def _snap(self) -> dict:
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(self._tmp.name).rglob("*")}

    def breaches(self, obs: Observation, uid: int | None) -> list[str]:
        """Every way the last episode got out (empty list: contained)."""
        found = []
        if self.token in obs.output + (obs.error or ""):
            found.append("a secret reached the sandbox")
        try:
            conn, _ = self.listener.accept()
            conn.close()
            found.append("a connection reached the host's listener")
        except BlockingIOError:
            pass
        if self._snap() != self._snapshot:
            found.append("the host's bait directory changed")
        escaped = [p for p in (self.escape_tmp, "/root/escaped", "/escaped", "/usr/escaped") if _exists(p)]
        if escaped:
            found.append(f"files appeared outside the sandbox: {escaped}")
            for p in escaped:  # reported once; the next case starts clean
                Path(p).unlink(missing_ok=True)
        shm = [p for p in Path("/dev/shm").glob("*") if uid is not None and _owner(p) == uid]
        if shm:
            found.append(f"files appeared in the host's /dev/shm: {[p.name for p in shm]}")
            for p in shm:  # reported once; they would hold host memory after the sandbox is gone
                p.unlink(missing_ok=True)
        if uid is not None and processes_of(uid):
            found.append(f"processes of the sandbox's uid {uid} outlived it: {processes_of(uid)}")
        if cgroup.leftovers():
            found.append(f"cgroups outlived the sandbox: {cgroup.leftovers()}")
        return found


def _owner(path: Path) -> int | None:
    try:
        return path.lstat().st_uid
    except OSError:
        return None


def _syscall_numbers() -> dict[str, int]:
    try:
        return syscalls.numbers()
    except syscalls.SeccompUnavailable:
        return {"clone": -1, "clone3": -1}


def _exists(path: str) -> bool:
    try:
        return os.path.lexists(path) and Path(path).exists()
    except PermissionError:  # unreadable to this (non-root) host user: nor could the sandbox have written it
        return False


@dataclass(frozen=True)
class Row:
    name: str
    limit: str
    outcome: str
    seconds: float
    output_ok: bool
    breaches: tuple[str, ...]
    observation: Observation


def run_case(case: Case, bait: Bait, base: Limits = TABLE_LIMITS, **sandbox_kwargs) -> Row:
    """Run one case in a fresh sandbox; report its outcome, the last cell's seconds and any breach."""
    import dataclasses

    limits = dataclasses.replace(base, **case.limits)
    fields = bait.fields()
    with Sandbox(limits, **sandbox_kwargs) as box:
        uid = box.uid
        for cell in case.cells:
            obs = box.run(cell.format(**fields))
    # the sandbox is closed (every process SIGKILLed, bwrap reaped) before the checks
    escaped = {k: re.escape(str(v)) for k, v in fields.items()}
    output_ok = re.search(case.output.format(**escaped), obs.output, re.M) is not None
    if case.forbid and re.search(case.forbid.format(**escaped), obs.output, re.M):
        output_ok = False
    return Row(case.name, case.limit, outcome(obs), obs.seconds, output_ok, tuple(bait.breaches(obs, uid)), obs)


def table(rows: list[Row]) -> str:
    """The markdown table of docs/sandbox.md."""
    lines = ["| program | limit | outcome | seconds | contained |", "|---|---|---|---:|---|"]
    for r in rows:
        contained = "yes" if not r.breaches else "NO: " + "; ".join(r.breaches)
        lines.append(f"| {r.name} | {r.limit} | {r.outcome} | {r.seconds:.2f} | {contained} |")
    return "\n".join(lines)
