"""Data parallelism on the CPU for the tiny cold start: one process per shard of each batch.

The tiny model's operations are small (a batch of 28 sequences of ~37 tokens, width 128), so two intra-op threads
meet at an OpenMP barrier hundreds of times a step: they speed a step up only ~1.6x on 2 idle cores, and when other
processes keep the cores busy every barrier waits for a thread the scheduler has not run yet (a step of 28 measured
121-210 ms with two passive threads against two busy processes, 62 ms on idle cores). Two processes of one thread
each meet once a step, to exchange gradients (~3.5 MB): 57-59 ms idle, 118-132 ms under the same load.

**The weights do not depend on the process count.** A step's batch is split into ``shards`` fixed parts; a part's
gradient is the same wherever it is computed, and the parts' gradients are added in shard order, ``g0 + g1 + ...``,
whether one process computes them in turn (gradient accumulation) or each of ``shards`` processes computes one
(:func:`sum_in_order`: every rank's part in a shared buffer, then the same sum). ``tests/test_tiny_shards.py``
compares the weights bit for bit.

**The parts meet in shared memory** (:class:`SharedSum`), not through gloo: each rank writes its part into its row of
a file-backed buffer (in ``/dev/shm`` where it has room) that every rank maps, and gloo carries only a barrier.
gloo's all-gather sends the 3.5 MB over local TCP sockets, 5.7-7.6 ms a step on this 2-core machine; the buffer and
the barrier take 1.4-1.6 ms (measured, 200 exchanges of 870,000 floats between two processes), ~3 s of a 600-step
cold start. torch has no shared-memory collective on the CPU, hence this class.

:func:`run_ranks` forks the extra processes (the parent's model, data and random state are theirs at no cost; no
re-import), each with an equal share of the caller's torch threads (one each on 2 cores), and joins them in a gloo
group whose rendezvous is a file store in a temporary directory (no address or port to configure; gloo then talks
over local TCP sockets). A child dies with its parent (``PR_SET_PDEATHSIG``) and ignores Ctrl-C (the parent's to
handle); a child that fails, before or during the loop, fails the parent at once with its rank and exit status, and
the parent's own failure kills the children.
"""

from __future__ import annotations

import ctypes
import errno
import multiprocessing
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
#: How long a process waits for the others at a gradient exchange before it gives up (a busy machine's slowest step
#: is seconds; an exchange that takes this long means a process is gone)
TIMEOUT = timedelta(minutes=5)
#: Where :class:`SharedSum`'s buffers live when it has room for them (memory); else the system's temporary directory
SHARED_MEMORY = "/dev/shm"
#: The room that must be free in :data:`SHARED_MEMORY` to use it (bytes): several times what the tiny cold start's
#: buffers take (2 x processes x 3.5 MB: 14 MB for 2 processes, 56 MB for 8), so a container's default /dev/shm of
#: 64 MB, or one that other work is filling, sends them to the temporary directory instead
SHARED_MEMORY_ROOM = 256 * 2**20


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ``world`` processes of one data-parallel loop (rank 0: the caller's process)."""

    rank: int = 0
    world: int = 1
    exchange: SharedSum | None = field(default=None, repr=False, compare=False)  #: set by run_ranks when world > 1


def available() -> bool:
    """Whether this process may fork data-parallel workers: on Linux (macOS and Windows start processes by spawning,
    which would import everything again; the shards then run in turn, to the same weights), and not inside a
    distributed launch (its group is taken)."""
    return (sys.platform.startswith("linux") and dist.is_available() and not dist.is_initialized()
            and int(os.environ.get("WORLD_SIZE", "1")) == 1)  # fmt: skip


def run_ranks(world: int, fn: Callable[[Ranks], T]) -> T:
    """``fn(Ranks(rank, world))`` in this process (rank 0) and in ``world - 1`` forked ones, each with an equal share
    of this process's torch threads (at least one) and a gloo group of all of them; rank 0's result. ``world == 1``:
    ``fn(Ranks())`` here, as it is."""
    if world == 1:
        return fn(Ranks())
    if not available():
        raise RuntimeError("run_ranks: data-parallel workers are forked on Linux only, outside a distributed launch; "
                           "use world=1")
    threads = torch.get_num_threads()
    per = max(1, threads // world)
    with tempfile.TemporaryDirectory(prefix="sspo-dp-", dir=_exchange_root()) as tmp:
        path = os.path.join(tmp, "store")
        fork = multiprocessing.get_context("fork")
        children = [fork.Process(target=_child, args=(fn, Ranks(r, world), path, os.getpid(), per), daemon=True)
                    for r in range(1, world)]  # fmt: skip
        try:
            for child in children:
                child.start()
            torch.set_num_threads(per)
            store = dist.FileStore(path, world)
            _wait_for_workers(store, children)
            result = _in_group(fn, Ranks(0, world), store)
        except BaseException as err:
            if isinstance(err, Exception):  # a worker's failure shows here as gloo's closed connection: say whose
                for child in children:
                    child.join(timeout=2)
            dead = _failed(children)
            for child in children:
                if child.is_alive():
                    child.kill()
            if dead and isinstance(err, Exception):
                raise RuntimeError(f"data-parallel worker(s) failed (rank, exit status): {dead}") from err
            raise
        finally:
            torch.set_num_threads(threads)
            for child in children:
                if child.pid is not None:
                    child.join()
    failed = _failed(children)
    if failed:
        raise RuntimeError(f"data-parallel worker(s) failed (rank, exit status): {failed}")
    return result


def _failed(children) -> list[tuple[int, int]]:
    """(rank, exit status) of each worker that has ended with a failure (still running: not listed)."""
    return [(r, c.exitcode) for r, c in enumerate(children, 1) if c.exitcode not in (None, 0)]


def _wait_for_workers(store, children) -> None:
    """Until every worker has announced itself in the store (a worker gone before that fails this at once, not at
    the group's timeout)."""
    keys, waited = [f"ready{r}" for r in range(1, len(children) + 1)], 0.0
    while True:
        try:
            store.wait(keys, timedelta(seconds=0.5))
            return
        except RuntimeError:
            waited += 0.5
        dead = [(r, c.exitcode) for r, c in enumerate(children, 1) if c.exitcode is not None]
        if dead or waited >= TIMEOUT.total_seconds():
            raise RuntimeError(f"data-parallel worker(s) did not start (rank, exit status): {dead or 'timed out'}")


def _in_group(fn: Callable[[Ranks], T], ranks: Ranks, store) -> T:
    dist.init_process_group("gloo", store=store, rank=ranks.rank, world_size=ranks.world, timeout=TIMEOUT)
    try:
        return fn(replace(ranks, exchange=SharedSum(os.path.dirname(store.path), ranks.rank, ranks.world)))
    finally:
        dist.destroy_process_group()


def _exchange_root() -> str | None:
    """The directory for :func:`run_ranks`' temporary one: :data:`SHARED_MEMORY` when it has
    :data:`SHARED_MEMORY_ROOM` free, else None (the system's temporary directory: the same buffers, in the page
    cache)."""
    try:
        room = os.statvfs(SHARED_MEMORY)
    except OSError:
        return None
    free = room.f_bavail * room.f_frsize
    return SHARED_MEMORY if free >= SHARED_MEMORY_ROOM and os.access(SHARED_MEMORY, os.W_OK) else None


def _child(fn: Callable[[Ranks], object], ranks: Ranks, path: str, parent: int, threads: int) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    store = dist.FileStore(path, ranks.world)
    store.set(f"ready{ranks.rank}", "1")
    _in_group(fn, ranks, store)


def _die_with_parent(parent: int) -> None:
    """The kernel kills this process when its parent exits (workers are forked on Linux only, :func:`available`; a
    killed run leaves no worker waiting; best effort: where prctl fails, a worker whose parent is gone gives up at
    the group's timeout)."""
    ctypes.CDLL(None, use_errno=True).prctl(ctypes.c_int(1), ctypes.c_ulong(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent was gone before the line above
        os._exit(1)


def sum_in_order(part: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The sum over ranks of each rank's ``part`` (same shape and dtype everywhere), added in rank order on every
    rank: ``part_0 + part_1 + ...``, the order in which one process accumulating them in turn adds them."""
    if ranks.world == 1:
        return part
    if ranks.exchange is None:
        raise RuntimeError("sum_in_order: a rank of a world > 1 comes from run_ranks, which gives it its exchange")
    return ranks.exchange(part)


class SharedSum:
    """One rank's side of :func:`sum_in_order` (see the module docstring): a call writes ``part`` into this rank's row
    of a ``[world, numel]`` buffer that every rank maps from one file in ``directory``, waits at a gloo barrier for
    every rank's row, and adds the rows in rank order. Two buffers alternate from call to call: a rank that has
    summed call t may write call t+1 while a slower one still reads t's rows, and no rank passes call t+1's barrier
    before every rank has finished reading call t, so call t+2 may overwrite them. One pair per size and dtype.
    Once every rank has mapped a pair (the barrier of its first call), rank 0 removes its files: the mappings stay, and
    a run killed later leaves no buffer in ``/dev/shm``, whose memory nothing would free before a reboot."""

    def __init__(self, directory: str, rank: int, world: int):
        self.directory, self.rank, self.world = directory, rank, world
        self.buffers: dict[tuple[int, torch.dtype], tuple[torch.Tensor, ...]] = {}  # () for an empty part
        self.calls = 0

    def __call__(self, part: torch.Tensor) -> torch.Tensor:
        flat = part.reshape(-1)
        key = (flat.numel(), flat.dtype)
        new = key not in self.buffers
        if new:  # every rank must sum the same size (another's row would read as zeros): checked once per size
            self._check_same(key)
            self.buffers[key] = (self._map(key, 0), self._map(key, 1)) if flat.numel() else ()
        if not flat.numel():  # nothing to add (and posix_fallocate refuses 0 bytes)
            return part.clone()
        rows = self.buffers[key][self.calls % 2]
        self.calls += 1
        rows[self.rank].copy_(flat)
        dist.barrier()
        if new and self.rank == 0:  # every rank has mapped the pair before the barrier
            for i in range(2):
                os.unlink(self._path(key, i))
        total = rows[0] + rows[1]
        for r in range(2, self.world):
            total += rows[r]
        return total.view(part.shape)

    def _check_same(self, key: tuple[int, torch.dtype]) -> None:
        mine = torch.tensor([key[0], key[1].itemsize, int(key[1].is_floating_point)])
        every = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(every, mine)
        if any(not torch.equal(e, mine) for e in every):
            raise RuntimeError(f"sum_in_order: the ranks' parts differ in size or dtype ({[e.tolist() for e in every]}: "
                               "numel, bytes per element, floating point); every rank must sum the same")

    def _path(self, key: tuple[int, torch.dtype], i: int) -> str:
        numel, dtype = key
        return os.path.join(self.directory, f"sum-{numel}-{str(dtype).removeprefix('torch.')}-{i}")

    def _map(self, key: tuple[int, torch.dtype], i: int) -> torch.Tensor:
        """Buffer ``i`` of size and dtype ``key``, ``[world, numel]``, its room reserved first: a full ``/dev/shm`` is
        an error here, not a SIGBUS at the first write into a page it could not give."""
        numel, dtype = key
        path = self._path(key, i)
        size = self.world * numel
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, size * dtype.itemsize)
        except OSError as err:
            room = "no room for" if err.errno in (errno.ENOSPC, errno.EFBIG) else "cannot reserve"
            raise RuntimeError(f"data-parallel gradient exchange: {room} {size * dtype.itemsize / 2**20:.1f} MB "
                               f"in {self.directory} ({err.strerror})") from err
        finally:
            os.close(fd)
        return torch.from_file(path, shared=True, size=size, dtype=dtype).view(self.world, numel)
