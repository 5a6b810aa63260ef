"""The hostile-program catalogue: what each program does, the limit that should stop it, the expected outcome.

Run by ``tests/test_sandbox.py`` (each case alone) and ``tests/test_sandbox_batch.py`` (many at once in a pool),
and printed as the table of docs/sandbox.md by ``sspo-exp sandbox`` (:mod:`.hostile` runs them and checks
containment). ``{...}`` fields in a cell come from :meth:`.hostile.Bait.fields` (e.g. ``{syscall_numbers}``,
libseccomp's numbers of the denied calls on this architecture, so the probes need no table of their own).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from sspo_exp.sandbox.config import Limits

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

BASIC: tuple[Case, ...] = (
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

#: Prepended to the system-call probes: ``call(label, nr, *args)`` prints ``label ERRNO_NAME`` or ``label returned R``.
_SYSCALL = (
    _code(
        """
    import ctypes, errno
    libc = ctypes.CDLL(None, use_errno=True)
    def call(label, nr, *args):
        ctypes.set_errno(0)
        r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
        e = ctypes.get_errno()
        print(label, errno.errorcode.get(e, e) if r == -1 else f"returned {{r}}", flush=True)
    """
    )
    + "\n"
)

BUDGET: tuple[Case, ...] = (
    Case(
        "memfd bomb (64 memfd files x 7 MiB, never mapped)",
        ("import os\nfds = [os.memfd_create('m') for _ in range(64)]\n"
         "for fd in fds:\n    for _ in range(7):\n        os.write(fd, b'x' * 2**20)",),
        "memory_mb=256 (cgroup)",
        "killed (memory)",
    ),
    Case(
        "SysV shared memory (20 segments x 100 MiB, touched, detached)",
        (
            _code(
                """
                import ctypes
                libc = ctypes.CDLL(None, use_errno=True)
                libc.shmat.restype = ctypes.c_void_p
                for _ in range(20):
                    sid = libc.shmget(0, 100 * 2**20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
                    addr = libc.shmat(sid, None, 0)
                    ctypes.memset(addr, 1, 100 * 2**20)
                    libc.shmdt(ctypes.c_void_p(addr))  # unmapped: no process's memory any more, still the sandbox's
                """
            ),
        ),
        "memory_mb=256 (cgroup)",
        "killed (memory)",
    ),
    Case(
        "POSIX shared memory (/dev/shm, 1 GiB)",
        ("with open('/dev/shm/big', 'wb') as f:\n    for _ in range(1024):\n        f.write(b'x' * 2**20)",),
        "memory_mb=256 (cgroup; disk_mb=1024)",
        "killed (memory)",
        limits={"disk_mb": 1024},
    ),
    Case(
        "fill /tmp beyond the memory budget",
        ("with open('big', 'wb') as f:  # the working directory: /tmp inside\n"
         "    for _ in range(1024):\n        f.write(b'x' * 2**20)",),
        "memory_mb=256 (cgroup; disk_mb=1024)",
        "killed (memory)",
        limits={"disk_mb": 1024},
    ),
    Case(
        "memory bomb across processes (8 children x 100 MiB)",
        (
            _code(
                """
                import os, time
                kids = []
                for _ in range(8):
                    pid = os.fork()
                    if pid == 0:
                        b = bytearray(100 * 2**20)  # each child fits its own RLIMIT_AS; together 800 MiB
                        time.sleep(1)
                        os._exit(0)
                    kids.append(pid)
                status = [os.waitpid(p, 0)[1] for p in kids]
                print('children killed by the kernel:', sum(os.WIFSIGNALED(s) and os.WTERMSIG(s) == 9 for s in status))
                """
            ),
        ),
        "memory_mb=256 (cgroup)",
        "ok",
        output=r"^children killed by the kernel: [1-8]\n$",
    ),
    Case(
        "detached daemon (double fork + setsid, outlives the cell)",
        (
            _code(
                """
                import os, time
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        time.sleep(600)
                    os._exit(0)
                os.wait()
                print('daemon started')
                """
            ),
        ),
        "close kills the cgroup",
        "ok",
        output=r"^daemon started\n$",  # and Bait.breaches finds no process and no cgroup left after close
    ),
)

KERNEL: tuple[Case, ...] = (
    Case(
        "namespace tricks (unshare -Urm + mount, unshare -n)",
        (
            _code(
                """
                import subprocess
                for argv in (['unshare', '-Urm', 'sh', '-c', 'mount -t tmpfs none /tmp && echo MOUNTED'],
                             ['unshare', '-n', 'true']):
                    r = subprocess.run(argv, capture_output=True, text=True)
                    print(argv[1], r.returncode, (r.stdout + r.stderr).strip())
                """
            ),
        ),
        "seccomp",
        "ok",
        output=r"^-Urm 1 unshare: unshare failed: Operation not permitted\n-n 1 unshare: unshare failed: Operation",
        forbid="MOUNTED",
    ),
    Case(
        "file handles (name_to_handle_at, open_by_handle_at on /usr)",
        (
            _code(
                """
                import ctypes, errno, os
                libc = ctypes.CDLL(None, use_errno=True)
                handle = ctypes.create_string_buffer(8 + 128)
                ctypes.c_uint.from_buffer(handle).value = 128
                mount_id = ctypes.c_int()
                r = libc.name_to_handle_at(-100, b'/usr', handle, ctypes.byref(mount_id), 0)
                print('name_to_handle_at', errno.errorcode.get(ctypes.get_errno()) if r else 'SUCCEEDED')
                r = libc.open_by_handle_at(os.open('/usr', os.O_RDONLY), handle, 0)
                print('open_by_handle_at', errno.errorcode.get(ctypes.get_errno()) if r < 0 else 'SUCCEEDED')
                """
            ),
        ),
        "seccomp",
        "ok",
        output=r"^name_to_handle_at EPERM\nopen_by_handle_at EPERM\n$",
    ),
    Case(
        "every denied system call, called directly",
        (
            _SYSCALL
            + _code(
                """
                nrs = {syscall_numbers}
                clone, clone3 = nrs.pop('clone'), nrs.pop('clone3')
                for name, nr in sorted(nrs.items()):
                    call(name, nr, 0, 0, 0, 0, 0, 0)
                for flag, value in sorted({clone_flags}.items()):
                    call('clone ' + flag, clone, value | 17, 0, 0, 0, 0)  # | SIGCHLD
                call('clone3', clone3, 0, 0)
                """
            ),
        ),
        "seccomp",
        "ok",
        output=r"^unshare EPERM$(.|\n)*^clone CLONE_NEWUSER EPERM$(.|\n)*^clone3 ENOSYS$",
        forbid=r"^(?!clone3 ENOSYS$)(?!.* EPERM$).+$",  # every other line: EPERM
    ),
)

CASES: tuple[Case, ...] = BASIC + BUDGET + KERNEL

