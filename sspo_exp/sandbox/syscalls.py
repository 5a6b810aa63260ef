"""The sandbox's seccomp filter: system calls model code never needs fail with EPERM.

bubblewrap installs it (``--seccomp FD``: a compiled classic-BPF program) just before it execs the REPL, so it
holds for the REPL and every process it starts. The program is compiled by **libseccomp** (Debian's
``libseccomp2``, the library systemd, Docker/runc and Flatpak compile their filters with), driven through
``pyseccomp`` — a small ctypes binding with the API of libseccomp's own Python module, which is built for the
system interpreter only (Debian's ``python3-seccomp``) and is not on PyPI. libseccomp does the hard parts:
syscall numbers per architecture, and a filter that kills a call made through another ABI (32-bit ``int 0x80``
or x32 on x86-64) instead of letting it bypass the table.

Default action: allow (a deny-list, as Docker's and Flatpak's profiles are in effect for these calls); each entry
of :data:`DENIED` says why it is there. Namespace creation through ``clone`` is refused by its flag argument;
``clone3`` passes its flags in memory, which seccomp cannot read, so it fails with ENOSYS and the C library falls
back to ``clone`` (what Flatpak and Docker do).
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile

#: Denied system calls (EPERM) and why model code must not have them.
DENIED: dict[str, str] = {
    # namespaces and mounts: inside its own namespace a process could remap uids, mount tmpfs, bind-mount /
    "unshare": "creates namespaces (user, mount, net...): the door to uid maps and mounts inside the sandbox",
    "setns": "joins another namespace",
    "mount": "mounts filesystems (a tmpfs, a bind of / within its view)",
    "umount2": "unmounts (could uncover what a bind hides)",
    "pivot_root": "changes the root mount",
    "chroot": "changes the root directory (a classic step in escapes)",
    "open_tree": "new mount API: clones a mount tree",
    "move_mount": "new mount API: attaches a mount",
    "fsopen": "new mount API: opens a filesystem context",
    "fsconfig": "new mount API: configures a filesystem context",
    "fsmount": "new mount API: creates a mount",
    "fspick": "new mount API: reconfigures a mount",
    "mount_setattr": "new mount API: changes mount flags",
    # file handles: bypass path-based checks (the 'shocker' container escape)
    "open_by_handle_at": "opens a file by handle, skipping path lookup and its permission checks",
    "name_to_handle_at": "makes the file handles open_by_handle_at would use",
    # other processes' memory
    "ptrace": "reads and writes other processes (and inspects the sandbox's own init)",
    "process_vm_readv": "reads another process's memory",
    "process_vm_writev": "writes another process's memory",
    "kcmp": "compares kernel objects of other processes (an information leak)",
    "pidfd_getfd": "steals a file descriptor from another process",
    # kernel attack surface no Python program needs
    "bpf": "loads eBPF programs (a large, often-exploited kernel surface)",
    "perf_event_open": "performance counters: kernel address leaks and side channels",
    "userfaultfd": "lets a program stall kernel page faults at will (turns kernel races into exploits)",
    "io_uring_setup": "io_uring: a second syscall interface that seccomp cannot see into",
    "io_uring_enter": "io_uring (see io_uring_setup)",
    "io_uring_register": "io_uring (see io_uring_setup)",
    "keyctl": "the kernel keyring (not namespaced: keys of the host's users)",
    "add_key": "the kernel keyring",
    "request_key": "the kernel keyring",
    "kexec_load": "loads a new kernel",
    "kexec_file_load": "loads a new kernel",
    "init_module": "loads a kernel module",
    "finit_module": "loads a kernel module",
    "delete_module": "unloads a kernel module",
    "reboot": "reboots the machine",
    "swapon": "enables swap",
    "swapoff": "disables swap",
    "acct": "process accounting to a file",
    "syslog": "reads the kernel log (kernel addresses)",
    "quotactl": "filesystem quotas",
    "lookup_dcookie": "kernel profiling interface",
    "uselib": "legacy library loading",
    "vhangup": "hangs up the terminal",
    "iopl": "raw I/O port privilege",
    "ioperm": "raw I/O port access",
    "fanotify_init": "filesystem-wide event monitoring",
    "settimeofday": "sets the host's clock",
    "clock_settime": "sets the host's clock",
    "clock_adjtime": "adjusts the host's clock",
    "adjtimex": "adjusts the host's clock",
}

#: ``clone`` flags that create a namespace: a ``clone`` with any of them fails with EPERM.
CLONE_NEW = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    "CLONE_NEWTIME": 0x00000080,
}


class SeccompUnavailable(RuntimeError):
    """No libseccomp (or binding) to compile the filter with; the message says what to install."""


def _binding():
    try:
        import pyseccomp
    except (ImportError, OSError, AttributeError) as e:  # the binding is there, libseccomp.so.2 is not
        raise SeccompUnavailable(
            f"cannot load libseccomp ({type(e).__name__}: {e}): `pip install pyseccomp` and "
            "`apt-get install libseccomp2`"
        ) from e
    return pyseccomp


@functools.lru_cache(maxsize=None)
def program() -> bytes:
    """The compiled BPF program (built once per process; raises SeccompUnavailable)."""
    sc = _binding()
    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            f.add_rule(deny, name)
        except (OSError, ValueError, RuntimeError):  # not a call on this architecture (e.g. iopl on arm64)
            continue
    for flag in CLONE_NEW.values():
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def program_fd() -> int:
    """A fresh, inheritable descriptor holding :func:`program` at offset 0, for ``bwrap --seccomp FD``."""
    fd = os.memfd_create("sspo-sandbox-seccomp", 0)
    data = memoryview(program())
    while data:
        data = data[os.write(fd, data) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def numbers() -> dict[str, int]:
    """libseccomp's number of each denied call (and ``clone``, ``clone3``) on this architecture; the hostile
    probes call them by number. Calls this architecture lacks are left out."""
    sc = _binding()
    arch = sc.system_arch()
    found = {name: sc.resolve_syscall(arch, name) for name in [*DENIED, "clone", "clone3"]}
    return {name: nr for name, nr in found.items() if nr >= 0}

