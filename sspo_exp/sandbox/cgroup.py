"""A memory and process budget per sandbox: one control group per sandbox, created and removed by the sandbox.

An rlimit counts one process's address space; a cgroup counts every page the sandbox's processes are charged
for — anonymous memory, page cache, and shared memory: ``memfd_create`` files, ``/dev/shm``, the private tmpfs
``/tmp`` (measured on a cgroup v1 host: a 200 MiB memfd, /dev/shm or tmpfs write under a 64 MiB limit was
OOM-killed at 64 MiB, ``docs/sandbox.md``). Two backends behind one small interface (:class:`Group`):

* **cgroup v2** (cluster nodes, current distributions): ``memory.max`` (+ ``memory.swap.max`` = 0),
  ``pids.max``; OOM kills read from ``memory.events``; the whole group killed by ``cgroup.kill`` (Linux 5.14+).
* **cgroup v1** (hybrid hosts, older containers): ``memory.limit_in_bytes`` (+ ``memory.memsw.limit_in_bytes``
  when swap accounting is on, so swap cannot extend the budget) in the memory hierarchy, ``pids.max`` in the pids
  hierarchy; OOM kills read from ``memory.oom_control``.

Each sandbox's group is a child of the group this process is in (per hierarchy, from ``/proc/self/cgroup``), or
of a delegated subtree named by ``SSPO_SANDBOX_CGROUP`` (a cgroup path as in ``/proc/self/cgroup``, e.g. one
``systemd-run --user -p Delegate=yes`` created, or a path relative to this process's own group), or of a pool's
group (:meth:`Backend.create_parent`: the pool's budget bounds its sandboxes together). Under cgroup v2 a group
with processes cannot hand controllers to children ("no internal processes"); when this process is alone in its
group it moves itself into a leaf ``sspo-host`` first (what nsjail does), else it refuses, saying so. Processes
enter a group through a ``sh`` wrapper that writes its own pid to ``cgroup.procs`` and then execs the sandbox,
so nothing runs outside it.
"""

from __future__ import annotations

import errno
import functools
import os
import secrets
import shlex
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ENV_PARENT = "SSPO_SANDBOX_CGROUP"


class CgroupUnavailable(RuntimeError):
    """No cgroup backend can give this process a per-sandbox budget; the message says why."""


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of every cgroup mount, from /proc/self/mountinfo."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _source, opts = (right.split() + ["", "", ""])[:3]
        if fstype in ("cgroup", "cgroup2"):
            found.append((left.split()[4], fstype, set(opts.split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per hierarchy: ``{"": v2 path, "memory": ..., "pids": ...}``."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path
    return paths


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _field(path: Path, key: str) -> int:
    """``key N`` from a flat-keyed cgroup file (memory.events, memory.oom_control); 0 if absent."""
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except OSError:
        pass
    return 0


@dataclass
class Group:
    """One sandbox's group: ``dirs`` holds one directory (v2) or the memory and pids directories (v1)."""

    version: int
    dirs: tuple[Path, ...]
    last_peak: int | None = None
    """The peak memory charge, read just before :meth:`remove` removed the group."""

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this group: a shell writes its pid to each ``cgroup.procs``, then execs argv."""
        files = " ".join(shlex.quote(str(d / "cgroup.procs")) for d in self.dirs)
        script = f'for f in {files}; do echo $$ > "$f" || exit 125; done; exec "$@"'
        return ["/bin/sh", "-c", script, "sspo-sandbox"] + argv

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            try:
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return found

    def oom_kills(self) -> int:
        """Processes the kernel's OOM killer killed in this group because the group hit its memory budget."""
        if self.version == 2:
            return _field(self.dirs[0] / "memory.events", "oom_kill")
        return _field(self.dirs[0] / "memory.oom_control", "oom_kill")

    def peak_bytes(self) -> int | None:
        """The group's peak memory charge (v2: ``memory.peak``, Linux 5.19+; v1: ``memory.max_usage_in_bytes``)."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.dirs[0] / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self, timeout: float = 60.0) -> None:
        """SIGKILL every process in the group and wait until it is empty (v2 ``cgroup.kill``, else one by one:
        ``pids.max`` bounds what a fork race can add)."""
        kill_file = self.dirs[0] / "cgroup.kill"
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            if self.version == 2 and kill_file.exists():
                _write(kill_file, "1")
            else:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.005)

    def remove(self) -> None:
        """Kill what is left and remove the group's directories (a group is removable once it has no process)."""
        self.kill()
        self.last_peak = self.peak_bytes() if self.last_peak is None else self.last_peak
        for d in self.dirs:
            for _ in range(200):
                try:
                    _rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:  # EBUSY for a moment while the last exits are accounted
                    if e.errno != errno.EBUSY:
                        raise
                    time.sleep(0.01)


def _rmdir(path: Path) -> None:
    os.rmdir(path)


class Backend:
    """Creates groups under one parent per hierarchy (``parents``: one dir for v2, memory + pids dirs for v1)."""

    def __init__(self, version: int, parents: tuple[Path, ...]):
        self.version, self.parents = version, parents

    def describe(self) -> str:
        what = "memory.max, pids.max" if self.version == 2 else "memory.limit_in_bytes (+memsw), pids.max"
        return f"cgroup v{self.version} ({what}) under {', '.join(map(str, self.parents))}"

    def create(self, memory_bytes: int, pids: int | None, parent: Group | None = None) -> Group:
        """A new group under this backend's parents, or nested in ``parent`` (a pool's group, whose budget then
        bounds all its children together); ``pids=None``: no process limit of its own."""
        name = f"sspo-sandbox-{os.getpid()}-{secrets.token_hex(4)}"
        group = Group(self.version, tuple(p / name for p in (parent.dirs if parent else self.parents)))
        made = []
        try:
            for d in group.dirs:
                d.mkdir()
                made.append(d)
            self._limit(group, memory_bytes, "max" if pids is None else str(pids))
        except OSError as e:
            for d in reversed(made):
                _rmdir(d)
            raise CgroupUnavailable(f"could not create or limit a cgroup under {group.dirs[0].parent}: {e}") from e
        return group

    def create_parent(self, memory_bytes: int) -> Group:
        """A group for a pool: its sandboxes' groups nest in it and share its memory budget."""
        group = self.create(memory_bytes, None)
        if self.version == 2:  # no process lives in it, so it may hand its controllers down
            try:
                _write(group.dirs[0] / "cgroup.subtree_control", "+memory +pids")
            except OSError as e:
                group.remove()
                raise CgroupUnavailable(f"cannot enable memory+pids below {group.dirs[0]}: {e}") from e
        return group

    def _limit(self, group: Group, memory_bytes: int, pids: str) -> None:
        if self.version == 2:
            d = group.dirs[0]
            _write(d / "memory.max", str(memory_bytes))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", pids)
            return
        mem, pid_dir = group.dirs
        _write(mem / "memory.limit_in_bytes", str(memory_bytes))
        if (mem / "memory.memsw.limit_in_bytes").exists():  # after the RAM limit: memsw must be >= it
            _write(mem / "memory.memsw.limit_in_bytes", str(memory_bytes))
        _write(pid_dir / "pids.max", pids)


def _parent_path(own: str) -> str:
    """The parent group's path: ``SSPO_SANDBOX_CGROUP`` if set (absolute, as in /proc/self/cgroup; or relative to
    this process's own group, which names the same place in every v1 hierarchy), else this process's group."""
    chosen = os.environ.get(ENV_PARENT, "")
    return chosen if chosen.startswith("/") else f"{own.rstrip('/')}/{chosen}" if chosen else own


def _v2(mounts, own) -> Backend:
    mount = next((Path(m) for m, t, _ in mounts if t == "cgroup2"), None)
    if mount is None or "" not in own:
        raise CgroupUnavailable("no cgroup2 mount")
    parent = mount / _parent_path(own[""]).lstrip("/")
    controllers = set((parent / "cgroup.controllers").read_text().split()) if parent.exists() else set()
    if not {"memory", "pids"} <= controllers:
        raise CgroupUnavailable(f"cgroup v2 at {parent} offers controllers {sorted(controllers) or 'none'}, "
                                "not memory and pids (a v1/hybrid host, or not delegated)")
    _enable_subtree(parent)
    return Backend(2, (parent,))


def _enable_subtree(parent: Path) -> None:
    """Let children of ``parent`` use memory and pids; move this process into a leaf if it is alone there."""
    control = parent / "cgroup.subtree_control"
    if {"memory", "pids"} <= set(control.read_text().split()):
        return
    try:
        _write(control, "+memory +pids")
        return
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise CgroupUnavailable(f"cannot enable memory+pids for children of {parent}: {e}") from e
    others = {int(p) for p in (parent / "cgroup.procs").read_text().split()} - {os.getpid()}
    if others:
        raise CgroupUnavailable(
            f"{parent} holds other processes ({sorted(others)[:5]}), so it cannot give controllers to children: "
            f"run in a delegated subtree and name it in {ENV_PARENT}"
        )
    leaf = parent / "sspo-host"
    leaf.mkdir(exist_ok=True)
    _write(leaf / "cgroup.procs", str(os.getpid()))  # the whole process, every thread
    _write(control, "+memory +pids")


def _v1(mounts, own) -> Backend:
    parents = []
    for controller, limit_file in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max")):
        mount = next((Path(m) for m, t, o in mounts if t == "cgroup" and controller in o), None)
        if mount is None or controller not in own:
            raise CgroupUnavailable(f"no cgroup v1 {controller} hierarchy")
        parent = mount / _parent_path(own[controller]).lstrip("/")
        if not os.access(parent, os.W_OK):
            raise CgroupUnavailable(f"cgroup v1 {parent} is not writable by uid {os.geteuid()}: "
                                    f"name a delegated subtree in {ENV_PARENT}")
        parents.append(parent)
    return Backend(1, tuple(parents))


@functools.lru_cache(maxsize=None)
def backend() -> Backend:
    """The cgroup backend this process can use (v2, else v1), or CgroupUnavailable naming why neither works.
    Found once per process, which also removes the empty groups of hosts that died without closing theirs."""
    mounts, own = _mounts(), _own_paths()
    reasons = []
    for make in (_v2, _v1):
        try:
            b = make(mounts, own)
            b.create(64 << 20, 8).remove()  # prove it: create, limit and remove one group
            sweep_stale(b)
            return b
        except (CgroupUnavailable, OSError) as e:
            reasons.append(str(e))
    raise CgroupUnavailable("; ".join(reasons))


def leftovers() -> list[str]:
    """Sandbox groups this process created that still exist (should be none once every sandbox is closed)."""
    try:
        parents = backend().parents
    except CgroupUnavailable:
        return []
    return sorted(str(d) for p in parents for d in p.glob(f"sspo-sandbox-{os.getpid()}-*"))


def sweep_stale(b: Backend) -> list[str]:
    """Remove the empty ``sspo-sandbox-<pid>-*`` groups under ``b``'s parents whose host process is gone (a host
    killed by SIGKILL cannot remove its groups; bwrap's --die-with-parent has emptied them). Returns them."""
    removed = []
    for parent in b.parents:
        for d in parent.glob("sspo-sandbox-*-*"):
            try:
                pid = int(d.name.split("-")[2])
                os.kill(pid, 0)
                continue  # the host lives (or its pid was reused): not ours to judge
            except ProcessLookupError:
                pass
            except (ValueError, PermissionError):
                continue
            for inner in [*d.glob("sspo-sandbox-*-*"), d]:  # a pool's group: its sandboxes' groups first
                try:
                    if not (inner / "cgroup.procs").read_text().split():
                        _rmdir(inner)
                        removed.append(str(inner))
                except OSError:
                    continue  # busy or not ours to remove
    return removed

