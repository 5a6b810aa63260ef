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
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from sspo_exp.sandbox.box import Observation, Sandbox
from sspo_exp.sandbox.config import Limits
from sspo_exp.sandbox.isolation import processes_of

#: The limits of the table (small, so every case ends in seconds; wall is a ceiling far above need).
TABLE_LIMITS = Limits(cpu_seconds=1, wall_seconds=120, memory_mb=256, processes=16, output_bytes=10_000, disk_mb=8)


@dataclass(frozen=True)
class Case:
    """One hostile (or normal) program: its cells, the limit that should stop it and the expected outcome."""

    name: str
    cells: tuple[str, ...]
    """Cells run in order in one episode; the outcome is the last cell's. ``{...}`` fields come from the Bait."""
    limit: str
    """The limit (or isolation) expected to stop it, for the table."""
    expect: str
    """Expected :func:`outcome` of the last cell."""
    output: str = ""
    """A regex the last cell's output must match (``re.search``, multiline), e.g. a count below the limit."""
    forbid: str = ""
    """A regex the last cell's output must NOT match (multiline), e.g. a successful escape."""
    limits: dict = field(default_factory=dict)
    """Overrides of :data:`TABLE_LIMITS` for this case."""


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


def _code(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


#: Prepended to the probing cells: ``attempt(label, fn)`` prints ``label SUCCEEDED ...`` or ``label failed: Error``.
_TRY = (
    _code(
        """
    def attempt(label, fn):
        try:
            result = fn()
            print(label, "SUCCEEDED", repr(result)[:200])
        except BaseException as e:
            print(label, "failed:", type(e).__name__)
    """
    )
    + "\n"
)  # ends its last line: a probe's own code follows

CASES: tuple[Case, ...] = (
    Case(
        "normal code: stdlib, state across cells, final expression",
        (
            "import math, json, statistics, fractions\nx = math.factorial(20)",
            "print(x % 1000, json.dumps(statistics.mean([1, 2, 3])))\nfractions.Fraction(x, 3)",
        ),
        "-",
        "ok",
        output=r"^0 2\nFraction\(810967336058880000, 1\)\n$",
    ),
    Case("infinite loop", ("while True:\n    pass",), "cpu_seconds=1", "killed (cpu)"),
    Case(
        "sleep forever",
        ("import time\ntime.sleep(10**6)",),
        "wall_seconds=2",
        "killed (wall)",
        limits={"wall_seconds": 2},
    ),
    Case(
        "fork bomb (forks until refused, children wait)",
        (
            _code(
                """
                import os, time
                n = 0
                try:
                    while True:
                        if os.fork() == 0:
                            time.sleep(600)
                            os._exit(0)
                        n += 1
                except OSError as e:
                    print('forks refused after', n, type(e).__name__)
                """
            ),
            _code(
                """
                import os
                mine = 0
                for p in filter(str.isdigit, os.listdir('/proc')):
                    try:
                        mine += os.stat('/proc/' + p).st_uid == os.getuid()
                    except OSError:
                        pass
                print('processes of my uid', mine)
                """
            ),
        ),
        "processes=16",
        "ok",
        output=r"^processes of my uid ([2-9]|1[0-6])\n$",  # the REPL + its children, at most the limit
    ),
    Case(
        "fork bomb (infinite, ignores refusals)",
        ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",),
        "processes=16, wall_seconds=3",
        "killed (wall)",
        limits={"wall_seconds": 3},
    ),
    Case("memory bomb (one 4 GiB allocation)", ("b = bytearray(4 * 1024**3)",), "memory_mb=256", "MemoryError"),
    Case(
        "memory bomb (grow a list by 10 MB)",
        ("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))",),
        "memory_mb=256",
        "MemoryError",
    ),
    Case(
        "1 GiB of output (print)",
        ("import sys\nfor _ in range(1024):\n    sys.stdout.write('x' * 2**20)",),
        "output_bytes=10000",
        "truncated",
        output=r"^x{{10000}}$",
    ),
    Case(
        "1 GiB of output (child process: head -c 1G /dev/zero)",
        ("import subprocess\nsubprocess.run(['head', '-c', '1G', '/dev/zero'])",),
        "output_bytes=10000",
        "truncated",
        output=r"^\x00{{10000}}$",
    ),
    Case(
        "write outside the sandbox",
        (
            _TRY
            + _code(
                """
                import os
                for path in ['{host_dir}/escaped', '{escape_tmp}', '/usr/escaped', '/root/escaped', '/escaped',
                             '/proc/sys/kernel/hostname', '/dev/escaped']:
                    attempt(path, lambda: open(path, 'w').write('escaped'))
                attempt('{host_dir}/sub', lambda: os.makedirs('{host_dir}/sub'))
                """
            ),
        ),
        "read-only / and binds",
        "ok",
        # the private /tmp (and /dev, a tmpfs) may be written; the host's side is checked by Bait.breaches
        forbid=r"^(?!/tmp/|/dev/).* SUCCEEDED",
    ),
    Case(
        "fill the private /tmp",
        ("with open('big', 'wb') as f:  # in the working directory\n    f.write(b'0' * 100 * 2**20)",),
        "disk_mb=8",
        "OSError",
    ),
    Case(
        "read the user's home and /root",
        (
            _TRY
            + _code(
                """
                import os, glob
                for path in ['{home}/secret.txt', '{root_secret}', os.path.expanduser('~/secret.txt')]:
                    attempt(path, lambda: open(path).read())
                print(dict(os.environ))
                print(glob.glob('/root/*'), glob.glob('{home}/*'), os.listdir('/'))
                """
            ),
        ),
        "no bind of $HOME, /root; --clearenv",
        "ok",
        forbid="SUCCEEDED",
    ),
    Case(
        "open a socket (host listener on 127.0.0.1, the internet)",
        (
            _TRY
            + _code(
                """
                import socket
                for addr in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('10.0.2.2', 22)]:
                    attempt(addr, lambda: socket.create_connection(addr, timeout=2))
                attempt('dns', lambda: socket.getaddrinfo('pypi.org', 443))
                """
            ),
        ),
        "--unshare-net",
        "ok",
        forbid="SUCCEEDED",
    ),
    Case(
        "signal the parent and the host",
        (
            _TRY
            + _code(
                """
                import os, signal
                attempt('ppid', lambda: os.kill(os.getppid(), signal.SIGKILL))
                attempt('pid 1', lambda: os.kill(1, signal.SIGKILL))
                attempt('host pid', lambda: os.kill({host_pid}, signal.SIGKILL))
                attempt('host ppid', lambda: os.kill({host_ppid}, signal.SIGKILL))
                print('alive')
                """
            ),
        ),
        "--unshare-pid, private uid",
        "ok",
        output=r"alive\n$",  # a signal to the sandbox's own PID 1 from inside is discarded by the kernel
        forbid=r"^host .* SUCCEEDED",
    ),
    Case(
        "kill -9 -1 (every process it may signal)",
        ("import os, subprocess\nchild = subprocess.Popen(['sleep', '600'])\nos.kill(-1, 9)\nprint(child.wait())",),
        "--unshare-pid, private uid",
        "ok",
        output=r"^-9\n$",  # only its own child died (kill(-1) spares the caller and PID 1)
    ),
    Case("kill itself", ("import os\nos.kill(os.getpid(), 9)",), "-", "killed (signal 9)"),
)


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
        if uid is not None and processes_of(uid):
            found.append(f"processes of the sandbox's uid {uid} outlived it: {processes_of(uid)}")
        return found


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
