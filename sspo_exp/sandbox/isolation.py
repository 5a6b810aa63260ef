"""How a sandbox process is launched: bubblewrap (the default) or the opt-in weak mode.

bubblewrap (Debian's ``bubblewrap`` package, the tool Flatpak uses) gives every episode fresh namespaces — no
network (``--unshare-net``: only the namespace's own loopback, up, reaching nothing of the host), its own PIDs
(``--unshare-pid``; the host kills them all by killing bwrap, ``--die-with-parent``), IPC, UTS and cgroup
namespaces, a new session (no TIOCSTI into the host's terminal) — and a filesystem built from scratch: read-only ``/usr`` (+ the ``/bin``, ``/lib*`` links), the
interpreter's own prefix read-only if it lives elsewhere (e.g. pyenv's), an empty read-only ``/``, a private
size-limited tmpfs ``/tmp`` as the working directory and ``$HOME``, minimal ``/dev`` and ``/proc``. Nothing else
of the host — no ``$HOME``, ``/root``, ``/work``, ``/etc`` (but ``ld.so.cache``) — exists inside. bwrap also sets
``no_new_privs``, so set-uid binaries do not elevate, and installs the seccomp filter (:mod:`.syscalls`). Its options
reach it through ``--args FD``, so the sandbox's ``/proc/1/cmdline`` (bwrap's own) names no host path. rlimits
come from the REPL at start-up (see repl.py); the sandbox's memory and process budget is a cgroup (:mod:`.cgroup`),
which the host process (:mod:`.box`) creates and wraps the launch in.

Two launch variants, chosen by who runs the host:

* **root** (CI, containers): bwrap runs as real root without a user namespace (as root, ``--unshare-user`` maps
  the sandbox's uid to host uid 0, and the kernel never enforces ``RLIMIT_NPROC`` on uid 0); bwrap drops every
  capability but CAP_SETUID/CAP_SETGID, and the REPL then switches to a random unprivileged uid/gid
  (2e9 + random, used by no account), which clears the rest. The process limit then counts only this episode.
* **non-root**: bwrap makes an unprivileged user namespace (``--unshare-user --disable-userns``: the code cannot
  nest another) with every capability dropped; ``RLIMIT_NPROC`` is counted per user namespace.

The weak mode (``allow_weak=True``, only when bwrap is missing or does not work) runs the same REPL, rlimits and
uid switch as a plain child process in a new session with a temporary working directory and a clean environment:
no filesystem, network or PID isolation.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from sspo_exp.sandbox.config import Limits

REPL = Path(__file__).with_name("repl.py")
REPL_INSIDE = "/opt/sspo-sandbox/repl.py"
INSTALL_HINT = "install it with `apt-get install bubblewrap` (Debian/Ubuntu) or `dnf install bubblewrap`"
WEAK_HINT = (
    "or, knowing that model code will then run WITHOUT filesystem, network or PID isolation "
    "(rlimits and a separate process only), opt in with sandbox.allow_weak=true"
)


class SandboxUnavailable(RuntimeError):
    """No sandbox of the required strength can run on this machine; the message says why and what to do."""


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one episode's REPL: the argv, its environment, working dir and the REPL's config."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    repl_cfg: dict
    weak: bool
    fds: tuple[int, ...] = ()
    """Descriptors the launched process inherits (bwrap's ``--args`` and ``--seccomp``); the caller closes them
    once the process has started."""


def _interpreter() -> tuple[str, list[str]]:
    """The host's base interpreter (a venv's, even a ``--copies`` one, is the base one plus a site-packages dir)
    and the host dirs it needs beyond /usr."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    return exe, sorted(p for p in prefixes if not (p + "/").startswith("/usr/"))


def _site_packages() -> list[str]:
    import site

    dirs = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    return sorted({os.path.realpath(d) for d in dirs if os.path.isdir(d)})


def _env(home: str) -> dict[str, str]:
    one = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}  # thread pools vs RLIMIT_AS
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", **one}


def _repl_cfg(limits: Limits, site_packages: bool) -> dict:
    cfg = {f: getattr(limits, f) for f in ("cpu_seconds", "memory_mb", "processes", "output_bytes", "disk_mb")}
    if os.geteuid() == 0:
        cfg["uid"] = cfg["gid"] = 2_000_000_000 + secrets.randbelow(100_000_000)
    cfg["site_dirs"] = _site_packages() if site_packages else []
    return cfg


def _outermost(dirs: list[str]) -> list[str]:
    """The dirs to bind: none under /usr (bound whole) or under another one of them."""
    keep: list[str] = []
    for d in sorted(set(dirs), key=len):
        if not any((d + "/").startswith(k + "/") for k in keep + ["/usr"]):
            keep.append(d)
    return keep


def processes_of(uid: int) -> list[int]:
    """Live (not zombie) processes on this host whose real uid is ``uid``."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if re.search(rf"^Uid:\s+{uid}\s", text, re.M) and not re.search(r"^State:\s+[ZX]", text, re.M):
            pids.append(int(status.parent.name))
    return pids


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def bwrap_launch(
    limits: Limits, site_packages: bool = False, info_fd: int | None = None, seccomp_fd: int | None = None
) -> Launch:
    """The bubblewrap command line for one episode (see the module docstring for each choice); bwrap writes the
    sandbox's first process id to ``info_fd`` (the host waits for that process to vanish after a kill) and
    installs the BPF program read from ``seccomp_fd``. The options go through a descriptor (``--args``)."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(f"bubblewrap (bwrap) is not on PATH: {INSTALL_HINT}")
    exe, prefixes = _interpreter()
    cfg = _repl_cfg(limits, site_packages)
    opts = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    opts += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if info_fd is not None:
        opts += ["--info-fd", str(info_fd)]
    if seccomp_fd is not None:
        opts += ["--seccomp", str(seccomp_fd)]
    if os.geteuid() == 0:
        opts += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]  # for the REPL's one switch to cfg["uid"]
    else:
        opts += ["--unshare-user", "--disable-userns"]
    opts += _filesystem(limits, prefixes + cfg["site_dirs"])
    for k, v in _env("/tmp").items():
        opts += ["--setenv", k, v]
    args_fd = os.memfd_create("sspo-sandbox-args", 0)
    os.write(args_fd, b"".join(o.encode() + b"\0" for o in opts))
    os.lseek(args_fd, 0, os.SEEK_SET)
    fds = (args_fd,) + (() if seccomp_fd is None else (seccomp_fd,))
    return Launch([bwrap, "--args", str(args_fd), exe, "-I", "-S", REPL_INSIDE], {}, "/", cfg, False, fds)


def _filesystem(limits: Limits, binds: list[str]) -> list[str]:
    """bwrap's mount options: read-only /usr and links, private tmpfs /tmp, the interpreter and site dirs."""
    opts = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/", name)
        if host.is_symlink():
            opts += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            opts += ["--ro-bind", str(host), str(host)]
    opts += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    opts += ["--perms", "1777", "--size", str(limits.disk_mb * 1024 * 1024), "--tmpfs", "/tmp"]  # before binds in /tmp
    made: set[str] = {"/usr", "/tmp"}
    for d in _outermost(binds):
        for parent in map(str, reversed(Path(d).parents[:-1])):  # bwrap would copy the host's modes (/root: 0700)
            if parent not in made and not parent.startswith("/usr/"):
                opts += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        opts += ["--ro-bind", d, d]
    opts += ["--ro-bind", str(REPL), REPL_INSIDE, "--proc", "/proc", "--dev", "/dev"]
    opts += ["--perms", "1777", "--size", str(limits.disk_mb * 1024 * 1024), "--tmpfs", "/dev/shm"]  # POSIX semaphores
    return opts + ["--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]


def _world_readable(path: str) -> bool:
    """Can any user reach ``path`` (every directory on the way searchable by others, the file readable)?"""
    p = Path(path)
    return all(os.stat(d).st_mode & 0o001 for d in p.parents) and bool(os.stat(p).st_mode & 0o004)


def _weak_interpreter(exe: str) -> str:
    """As root the weak mode switches to a private uid, which cannot read an interpreter under /root (0700):
    fall back to the system's interpreter of the same version (same ABI for site-packages), or refuse."""
    if os.geteuid() != 0 or _world_readable(exe):
        return exe
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if os.path.exists(system) and _world_readable(system):
        return system
    raise SandboxUnavailable(
        f"the weak mode runs model code as an unprivileged uid, which cannot read this interpreter ({exe}); "
        f"install {system} or a world-readable Python of this version, or install bubblewrap: "
        f"`apt-get install bubblewrap`"
    )


def weak_launch(limits: Limits, workdir: str, site_packages: bool = False, seccomp: bytes | None = None) -> Launch:
    """The weak mode: the REPL as a plain child process in ``workdir`` (no namespaces); it installs the seccomp
    program ``seccomp`` itself, if given (there is no bwrap to do it)."""
    exe = _weak_interpreter(_interpreter()[0])
    cfg = _repl_cfg(limits, site_packages)
    if "uid" in cfg:
        os.chown(workdir, cfg["uid"], cfg["gid"])
        cfg["site_dirs"] = [d for d in cfg["site_dirs"] if _world_readable(d)]
    else:  # RLIMIT_NPROC would count every process and thread of this user (the trainer's too): not a per-episode
        cfg["processes"] = None  # limit, and fatal to the host's own threads; the weak mode then has none
    cfg["host_pid"] = os.getpid()
    if seccomp is not None:
        cfg["seccomp"] = base64.b64encode(seccomp).decode()
    return Launch([exe, "-I", "-S", str(REPL)], _env(workdir), workdir, cfg, weak=True)


_forced_weak = False


def force_weak(on: bool = True) -> None:
    """Act as if bubblewrap were unusable (``sspo-exp sandbox --weak`` and the weak-mode tests)."""
    global _forced_weak
    _forced_weak = on


def forced_weak() -> bool:
    """True after :func:`force_weak` (then no bubblewrap sandbox is started)."""
    return _forced_weak
