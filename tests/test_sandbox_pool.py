"""The bounded sandbox pool, alone and under a batch of hostile episodes run at once.

The batch: concurrent cells of memory, memfd, shared-memory, /tmp, fork and output bombs in a pool of 4 (the
machine has 2 cores), asserting each is stopped by its own limit, no sandbox's cgroup ever held more than its
budget, the host's MemAvailable stayed above a floor, and nothing is left (processes, cgroups, temp dirs). A
16-episode version with a pool of 8 is marked slow."""

from __future__ import annotations

import dataclasses
import glob
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sspo_exp.sandbox import Sandbox, SandboxConfig, SandboxPool, SandboxUnavailable, SetupFailed, cgroup, hostile
from sspo_exp.sandbox.isolation import processes_of

pytestmark = pytest.mark.sandbox

SLACK = 60.0  # ceiling over a wall limit for the host to notice and kill (a loaded 2-core CI box is slow)
CASES = {c.name: c for c in hostile.CASES}
#: The hostile batch: each a different way to exhaust the host, with the outcome its own limit gives.
BOMBS = [
    "memory bomb (grow a list by 10 MB)",
    "memfd bomb (64 memfd files x 7 MiB, never mapped)",
    "SysV shared memory (20 segments x 100 MiB, touched, detached)",
    "fill /tmp beyond the memory budget",
    "memory bomb across processes (8 children x 100 MiB)",
    "fork bomb (infinite, ignores refusals)",
    "1 GiB of output (child process: head -c 1G /dev/zero)",
    "detached daemon (double fork + setsid, outlives the cell)",
]


@pytest.fixture(scope="module")
def full_strength():
    try:
        return Sandbox.check()
    except SandboxUnavailable as e:
        pytest.skip(f"no full-strength sandbox here ({e}); CI installs bubblewrap via .ci/install_bubblewrap.sh")


def _config(size: int, pool_memory_mb: int = 4096, **limits) -> SandboxConfig:
    limits = dataclasses.replace(hostile.TABLE_LIMITS, **limits)
    return SandboxConfig(limits, pool_size=size, pool_memory_mb=pool_memory_mb)


def test_pool_never_holds_more_than_its_size(full_strength):
    """Six episodes from six threads through a pool of two: at most two sandboxes alive, all released."""
    pool = SandboxPool(_config(2, wall_seconds=60))
    peak, lock = [0], threading.Lock()

    def episode(i: int) -> str:
        box = pool.open()
        assert box._group.dirs[0].parent == pool.group.dirs[0]  # nested in the pool's group: one shared budget
        with lock:
            peak[0] = max(peak[0], pool.live)
        try:
            return box.run(f"import time\ntime.sleep(0.2)\nprint({i})").output
        finally:
            pool.release(box)

    with pool, ThreadPoolExecutor(6) as threads:
        outputs = list(threads.map(episode, range(6)))
    assert outputs == [f"{i}\n" for i in range(6)] and peak[0] == 2 and pool.live == 0
    assert cgroup.leftovers() == []


def test_each_episode_gets_a_fresh_sandbox_and_setup_failure_frees_the_slot(full_strength):
    with SandboxPool(_config(1, wall_seconds=60)) as pool:
        box = pool.open("secret = 1")
        assert box.run("print(secret)").output == "1\n"
        pool.release(box)
        assert "NameError" in pool.open().run("secret").error  # a new episode sees nothing of the last
        pool.release(pool._out.copy().pop())
        with pytest.raises(SetupFailed, match="ZeroDivisionError"):
            pool.open("1 / 0")
        assert pool.live == 0
        box = pool.open()  # the slot of the failed setup was freed (size 1: this would block otherwise)
    assert not box.alive and pool.live == 0  # closing the pool closed the sandbox still out
    with pytest.raises(RuntimeError, match="after close"):
        pool.open()


class _MemAvailable:
    """Samples the host's MemAvailable every 10 ms in a thread; ``low`` is the lowest seen (MiB)."""

    def __enter__(self):
        self.low, self._stop = self.read(), threading.Event()
        self.start = self.low
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def read() -> int:
        text = Path("/proc/meminfo").read_text()
        return int(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("MemAvailable:"))) // 1024

    def _watch(self):
        while not self._stop.wait(0.01):
            self.low = min(self.low, self.read())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _run_batch(names: list[str], size: int, pool_mb: int) -> None:
    """Run ``names`` at once through a pool of ``size`` with ``pool_mb`` for all of them (256 MiB each)."""
    cfg = _config(size, pool_mb, wall_seconds=5, memory_mb=256, disk_mb=1024)  # /tmp and memfd may reach 256 MiB
    before_tmp = set(glob.glob(f"{tempfile.gettempdir()}/sspo-sandbox-*"))
    uids, results = [], {}

    def episode(k: int):
        case = CASES[names[k]]
        box = pool.open()
        uids.append(box.uid)
        try:
            for cell in case.cells:
                obs = box.run(cell.format(**bait.fields()))
        finally:
            pool.release(box)
        results[k] = (case, obs, box.peak_bytes)

    t0 = time.monotonic()
    with hostile.Bait() as bait, _MemAvailable() as mem, SandboxPool(cfg) as pool:
        with ThreadPoolExecutor(len(names)) as threads:
            list(threads.map(episode, range(len(names))))
    seconds = time.monotonic() - t0
    budget = cfg.limits.memory_mb
    for case, obs, peak in results.values():
        # stopped by its own limit, or killed by the kernel when the pool's shared budget ran out (the largest goes)
        assert hostile.outcome(obs) in (case.expect, "killed (memory)"), (case.name, obs)
        if obs.killed == "wall":
            assert cfg.limits.wall_seconds <= obs.seconds < cfg.limits.wall_seconds + SLACK
        assert peak is None or peak <= budget << 20, (case.name, peak >> 20)  # the group never held more
    assert pool.group is None or pool.group.last_peak <= pool_mb << 20  # all sandboxes together
    # the pool bounds the batch at pool_mb; 1 GiB of margin for the other jobs on this shared machine
    assert mem.low >= mem.start - min(pool_mb, size * budget) - 1024, (mem.start, mem.low)
    assert cgroup.leftovers() == []
    assert all(processes_of(u) == [] for u in uids if u is not None)
    assert set(glob.glob(f"{tempfile.gettempdir()}/sspo-sandbox-*")) == before_tmp
    peak = pool.group.last_peak >> 20 if pool.group else None
    print(f"{len(names)} hostile episodes, pool {size} x 256 MiB in {pool_mb} MiB: {seconds:.1f} s, pool peak "
          f"{peak} MiB, MemAvailable {mem.start} -> low {mem.low} MiB")


def test_a_hostile_batch_is_stopped_and_leaves_nothing(full_strength):
    """8 bombs at once, 256 MiB each, 768 MiB for all: the pool's budget binds before the sandboxes' sum."""
    _run_batch(BOMBS, size=8, pool_mb=768)


@pytest.mark.slow
def test_a_larger_hostile_batch(full_strength):
    _run_batch(BOMBS * 2, size=8, pool_mb=1024)


class _ByteTokenizer:
    """Just enough tokenizer for the episode loop: one id per byte, id 0 is EOS, no chat template."""

    eos_token_id, chat_template = 0, None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(text.encode())}

    def decode(self, ids, skip_special_tokens=True):
        return bytes(i for i in ids if i).decode(errors="replace")


def test_codeact_episodes_of_a_step_share_a_bounded_pool(full_strength, monkeypatch):
    """Five episodes with pool_size 2: every episode runs its cells (state kept across turns), at most two
    sandboxes are alive at any time, and none is left after the call."""
    from sspo_exp.codeact import episode as episode_mod

    peak = [0]

    class Spy(SandboxPool):
        def open(self, setup=None):
            box = super().open(setup)
            peak[0] = max(peak[0], self.live)
            return box

    monkeypatch.setattr(episode_mod, "SandboxPool", Spy)
    tok = _ByteTokenizer()
    turns = ["<execute>x = {k} * 10</execute>", "<execute>print(x + 1)</execute>", "<solution>done</solution>"]

    def policy(contexts, budgets):
        out = []
        for ctx in contexts:
            text = tok.decode(ctx)
            k, done = text.split("\n", 1)[0], text.count("</execute>")
            out.append(tok(turns[done].format(k=k))["input_ids"])
        return out

    cfg = episode_mod.EnvConfig(max_turns=3, max_completion_tokens=400,
                                sandbox=SandboxConfig(hostile.TABLE_LIMITS, pool_size=2))
    episodes = episode_mod.run_episodes([tok(f"{k}\n")["input_ids"] for k in range(5)], policy, tok, cfg)
    assert [e.observations[1] for e in episodes] == [f"{k * 10 + 1}" for k in range(5)]  # state kept across turns
    assert all(e.solution == "done" for e in episodes) and peak[0] == 2 and cgroup.leftovers() == []
