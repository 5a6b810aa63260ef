"""The REPL server that runs INSIDE the sandbox: one persistent interpreter per episode.

Stdlib only: this one file is bound read-only into the sandbox and run by the host's interpreter with ``-I -S``
(isolated: no user site, no ``PYTHON*`` variables, no ``site``), so it must not import anything from sspo_exp.
The host side (:mod:`sspo_exp.sandbox.box`) imports :func:`write_frame` / :func:`read_frame` from here, so the
framing has one owner.

Protocol (over the process's stdin/stdout pipes, which the server moves to private descriptors at start-up):
a frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.

* server -> host, once: ``{"ready": true, "uid": int, "python": str}`` after the limits are in place.
* host -> server: ``{"code": str}`` — one cell.
* server -> host: ``{"output": str, "error": str | null, "truncated": bool}`` — the cell's merged stdout and
  stderr (of the interpreter and any child process) capped at ``output_bytes``, and the formatted exception.

Start-up (argv: ``repl.py CONFIG_JSON``): set the rlimits (address space, processes, open files, file size, no
core dumps), drop to ``uid``/``gid`` when started as root, refuse to go on if any capability is left, then
serve. Per cell: a fresh pipe becomes fds 1 and 2 (a reader thread keeps the first ``output_bytes`` and then
closes its end, so any further write fails with EPIPE / SIGPIPE at once instead of streaming gigabytes), and the
soft CPU limit is set to the CPU used so far plus ``cpu_seconds`` (SIGXCPU's default action then kills the
interpreter; the host reports that as a CPU kill). As in a Jupyter cell, a final expression's repr is printed.
"""

from __future__ import annotations

import ast
import io
import json
import linecache
import math
import os
import resource
import select
import struct
import sys
import threading
import traceback

_HEADER = struct.Struct(">I")


def write_frame(fd: int, obj: dict) -> None:
    """Write one length-prefixed JSON frame to ``fd`` (blocking, all bytes)."""
    data = json.dumps(obj).encode("utf-8")
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> dict | None:
    """Read one frame from ``fd`` (blocking); None at end of file."""
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    data = _read_exact(fd, _HEADER.unpack(header)[0])
    return None if data is None else json.loads(data)


class _Capture:
    """Fds 1 and 2 -> a fresh pipe for one cell; a thread keeps the first ``cap`` bytes, then closes the pipe."""

    def __init__(self, cap: int) -> None:
        self.cap, self.buf, self.truncated = cap, bytearray(), False
        self._r, w = os.pipe()
        os.dup2(w, 1)
        os.dup2(w, 2)
        os.close(w)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _take(self, chunk: bytes) -> bool:
        room = self.cap - len(self.buf)
        self.buf += chunk[:room]
        if len(chunk) > room:
            self.truncated = True
        return not self.truncated

    def _pump(self) -> None:
        r = self._r
        try:
            while not self._stop.is_set():
                if select.select([r], [], [], 0.05)[0]:
                    chunk = os.read(r, 65536)
                    if not chunk or not self._take(chunk):
                        return
            os.set_blocking(r, False)  # the cell is over: take what is already in the pipe, no more
            while True:
                try:
                    chunk = os.read(r, 65536)
                except BlockingIOError:
                    return
                if not chunk or not self._take(chunk):
                    return
        finally:
            os.close(r)  # writers still holding the pipe (over the cap, or left in the background) get EPIPE

    def finish(self, devnull: int) -> str:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        self._stop.set()
        self._thread.join()
        return self.buf.decode("utf-8", errors="replace")


def _limit(cfg: dict) -> None:
    mb = 1024 * 1024
    limits = [
        ("RLIMIT_AS", cfg["memory_mb"] * mb),
        ("RLIMIT_NOFILE", 256),
        ("RLIMIT_FSIZE", cfg["disk_mb"] * mb),
        ("RLIMIT_CORE", 0),
    ]
    if cfg["processes"] is not None:  # None: the weak mode as a non-root user (see isolation.weak_launch)
        limits.append(("RLIMIT_NPROC", cfg["processes"]))
    for name, value in limits:
        resource.setrlimit(getattr(resource, name), (value, value))


def _drop_privileges(uid: int | None, gid: int | None) -> None:
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # all ids non-zero: the kernel clears the permitted and effective capabilities
    with open("/proc/self/status") as f:
        caps = {k: v.strip() for k, v in (line.split(":", 1) for line in f if line.startswith("Cap"))}
    if int(caps.get("CapEff", "0"), 16) or int(caps.get("CapPrm", "0"), 16) or os.getuid() == 0:
        raise SystemExit(f"sandbox repl: refusing to run as uid {os.getuid()} with capabilities {caps}")


class Repl:
    """Executes cells in one persistent namespace (``__name__ == "__main__"``)."""

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.pid = os.getpid()
        self.ns: dict = {"__name__": "__main__", "__builtins__": __builtins__}
        self.cells = 0
        self.devnull = os.open(os.devnull, os.O_RDWR)
        fd_stdout = io.FileIO(1, "w", closefd=False)
        fd_stderr = io.FileIO(2, "w", closefd=False)
        enc = dict(encoding="utf-8", errors="backslashreplace", write_through=True)
        self.stdout, self.stderr = io.TextIOWrapper(fd_stdout, **enc), io.TextIOWrapper(fd_stderr, **enc)

    def _cpu_limit(self) -> None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = math.ceil(used.ru_utime + used.ru_stime + self.cfg["cpu_seconds"])
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))

    def _exec(self, code: str, name: str) -> None:
        tree = ast.parse(code, name, "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, name, "exec"), self.ns)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), name, "eval"), self.ns)
            if value is not None:
                print(repr(value))

    def run(self, code: str) -> dict:
        self.cells += 1
        name = f"<cell {self.cells}>"
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)  # tracebacks show the cell's lines
        sys.stdout, sys.stderr = self.stdout, self.stderr
        capture = _Capture(self.cfg["output_bytes"])
        error = None
        try:
            self._cpu_limit()
            self._exec(code, name)
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt end the cell, not the episode
            if os.getpid() != self.pid:
                os._exit(1)  # a child forked by the cell must never answer the host
            tb = traceback.TracebackException.from_exception(exc)
            frames = [f for f in tb.stack if f.filename == name or not f.filename.endswith("repl.py")]
            tb.stack = traceback.StackSummary.from_list(frames)
            error = "".join(tb.format())
        if os.getpid() != self.pid:
            os._exit(0)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        output = capture.finish(self.devnull)
        if error is not None and len(error) > self.cfg["output_bytes"]:
            error = error[: self.cfg["output_bytes"]] + "\n[traceback truncated]\n"
        if capture.truncated:  # after the cut: the note must survive it (a write that hit the closed pipe raises)
            kept = self.cfg["output_bytes"]
            note = f"[output limit reached: only the first {kept} bytes were kept; later writes failed]"
            error = f"{error or ''}{note}\n"
        return {"output": output, "error": error, "truncated": capture.truncated}


def _install_seccomp(ctypes, program_b64: str) -> None:
    """The weak mode's seccomp filter (bwrap installs it otherwise): no_new_privs, then the BPF program."""
    import base64

    prog = base64.b64decode(program_b64)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0):  # NO_NEW_PRIVS; SECCOMP FILTER
        raise SystemExit(f"sandbox repl: cannot install the seccomp filter (errno {ctypes.get_errno()})")


def main(argv: list[str]) -> None:
    cfg = json.loads(argv[1])
    proto_in, proto_out = os.dup(0), os.dup(1)  # the protocol pipes move to private, non-inherited descriptors
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    _limit(cfg)
    _drop_privileges(cfg.get("uid"), cfg.get("gid"))
    if cfg.get("host_pid"):  # the weak mode has no bwrap --die-with-parent: die with the host all the same
        import ctypes

        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG = SIGKILL (after the uid switch, which would clear it)
        if cfg.get("seccomp"):
            _install_seccomp(ctypes, cfg["seccomp"])
        if os.getppid() != cfg["host_pid"]:
            raise SystemExit("sandbox repl: the host is gone")
    if cfg.get("site_dirs"):
        import site

        for d in cfg["site_dirs"]:
            site.addsitedir(d)  # also runs the dir's .pth files
    repl = Repl(cfg)
    write_frame(proto_out, {"ready": True, "uid": os.getuid(), "python": sys.version.split()[0]})
    while True:
        request = read_frame(proto_in)
        if request is None:
            return
        write_frame(proto_out, repl.run(request["code"]))


if __name__ == "__main__":
    main(sys.argv)
