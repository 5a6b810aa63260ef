"""The sandbox for model-written code: hostile programs are stopped by their limit and stay contained; normal
code works and keeps its state across cells. Needs bubblewrap (skips, saying why, without it) except the weak-mode
tests, which force the weak mode. Every wait is on an event with a generous ceiling, never a guessed duration."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sspo_exp.sandbox import (
    Limits, Sandbox, SandboxConfig, SandboxConfigError, SandboxUnavailable, cgroup, hostile, isolation,
)

pytestmark = pytest.mark.sandbox

CASES = {c.name: c for c in hostile.CASES}
SLACK = 60.0  # ceiling over a wall limit for the host to notice and kill (a loaded 2-core CI box is slow)


@pytest.fixture(scope="module")
def bwrap():
    try:
        return Sandbox.check()
    except SandboxUnavailable as e:
        pytest.skip(f"bubblewrap cannot run here ({e}); CI installs it via .ci/install_bubblewrap.sh")


@pytest.fixture(scope="module")
def bait():
    with hostile.Bait() as b:
        yield b


@pytest.fixture
def weak():
    isolation.force_weak()
    yield
    isolation.force_weak(False)


def _assert_row(row: hostile.Row, case: hostile.Case) -> None:
    obs = row.observation
    assert row.outcome == case.expect, obs
    assert row.output_ok, obs.output
    assert not row.breaches, row.breaches
    limits = dataclasses.replace(hostile.TABLE_LIMITS, **case.limits)
    if obs.killed == "wall":
        assert obs.timed_out and limits.wall_seconds <= obs.seconds < limits.wall_seconds + SLACK
    if obs.killed == "cpu":
        assert obs.timed_out and obs.seconds < limits.wall_seconds


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_program_is_stopped_and_contained(bwrap, bait, name):
    _assert_row(hostile.run_case(CASES[name], bait), CASES[name])
    assert os.getppid() > 1  # the test process and its parent are alive (the case tried to kill them)


WEAK_CASES = [
    "normal code: stdlib, state across cells, final expression",
    "infinite loop",
    "fork bomb (forks until refused, children wait)",
    "memory bomb (one 4 GiB allocation)",
    "1 GiB of output (print)",
    "every denied system call, called directly",  # the REPL installs the seccomp filter itself
    "namespace tricks (unshare -Urm + mount, unshare -n)",
]


@pytest.mark.parametrize("name", WEAK_CASES)
def test_weak_mode_enforces_the_rlimits(weak, bait, name):
    if name.startswith("fork bomb") and os.geteuid() != 0:
        pytest.skip("weak mode counts RLIMIT_NPROC over all of this user's processes unless run as root")
    try:
        with pytest.warns(RuntimeWarning, match="SANDBOX IS WEAK"):
            row = hostile.run_case(CASES[name], bait, allow_weak=True)
    except SandboxUnavailable as e:  # as root, only with a Python a private uid can read
        pytest.skip(f"the weak mode cannot run here: {e}")
    _assert_row(row, CASES[name])


def test_without_bubblewrap_it_refuses_unless_opted_in(weak):
    with pytest.raises(SandboxUnavailable, match="allow_weak=true"):
        Sandbox().start()
    with pytest.raises(SandboxUnavailable):
        Sandbox.check()


def test_missing_bwrap_says_how_to_install(monkeypatch):
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        isolation.bwrap_launch(Limits())


def test_a_bwrap_that_fails_is_reported_with_its_own_message(bwrap, monkeypatch):
    real = isolation.bwrap_launch

    def broken(*args, **kwargs):
        launch = real(*args, **kwargs)
        launch.argv.insert(1, "--no-such-option")
        return launch

    monkeypatch.setattr(isolation, "bwrap_launch", broken)
    with pytest.raises(SandboxUnavailable, match="bwrap: Unknown option --no-such-option.*allow_weak=true"):
        Sandbox().start()


def test_cells_share_state_and_report_errors(bwrap):
    with Sandbox(Limits(wall_seconds=60)) as box:
        assert box.run("x = 2\nprint(x + 1)").output == "3\n"
        assert box.run("def f(n):\n    return n * x\nf(21)").output == "42\n"
        obs = box.run("import sys\nprint('out')\nprint('err', file=sys.stderr)\n1 / 0")
        assert obs.output == "out\nerr\n" and obs.killed is None
        assert obs.error.endswith("ZeroDivisionError: division by zero\n") and '"<cell 3>", line 4' in obs.error
        assert "repl.py" not in obs.error  # the traceback shows the model's frames only
        assert "SystemExit" in box.run("raise SystemExit(3)").error  # ends the cell, not the episode
        assert box.run("x").output == "2\n" and box.alive


def test_a_kill_ends_the_episode_and_restart_starts_fresh(bwrap):
    with Sandbox(Limits(wall_seconds=1)) as box:
        box.run("x = 1")
        first = box.run("import time\ntime.sleep(600)")
        assert first.killed == "wall" and first.timed_out
        later = box.run("print(x)")
        assert later.killed == "wall" and not later.timed_out and "state is gone" in later.error and not box.alive
        box.restart()
        assert box.alive and "NameError" in box.run("x").error
        assert box.run("print('fresh')").output == "fresh\n"


def test_output_limit_resets_for_the_next_cell(bwrap):
    with Sandbox(Limits(output_bytes=100, wall_seconds=60)) as box:
        obs = box.run("print('y' * 1000)")
        assert obs.truncated and obs.output == "y" * 100 and "output limit reached" in obs.error
        assert box.run("print('ok')").output == "ok\n"
        # the cell's own write then fails (BrokenPipeError): its traceback is cut to the limit, the note is kept
        obs = box.run("import sys\nfor _ in range(100): sys.stdout.write('z' * 1000); sys.stdout.flush()")
        assert obs.truncated and "Traceback" in obs.error and obs.error.rstrip().endswith("later writes failed]")


def test_process_limit_is_per_episode(bwrap):
    """Two live episodes: one filled to its process limit does not stop the other from forking."""
    hold = "import subprocess\nkids = [subprocess.Popen(['sleep', '600']) for _ in range({n})]"
    with Sandbox(Limits(processes=8, wall_seconds=60)) as a, Sandbox(Limits(processes=8, wall_seconds=60)) as b:
        assert "BlockingIOError" in a.run(hold.format(n=8)).error  # the REPL is one of the 8
        obs = b.run(hold.format(n=6) + "\nprint(len(kids))")
        assert obs.output == "6\n", obs
        assert a.run("print(1)").output == "1\n"  # a is at its limit but alive
        if a.uid is not None:
            assert a.uid != b.uid


def test_site_packages_are_opt_in(bwrap):
    probe = "import importlib.util\nprint(importlib.util.find_spec('pytest') is not None)"
    with Sandbox(Limits(wall_seconds=60)) as box:
        assert box.run(probe).output == "False\n"
    with Sandbox(Limits(wall_seconds=60), site_packages=True) as box:
        assert box.run(probe).output == "True\n"


def test_close_kills_everything_inside(bwrap):
    with Sandbox(Limits(wall_seconds=60)) as box:
        box.run("import subprocess\nkid = subprocess.Popen(['sleep', '600'])")
        uid, pid = box.uid, box._proc.pid
    assert box._proc.poll() is not None
    if uid is not None:
        assert isolation.processes_of(uid) == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.fixture
def delegated_v1_cgroup():
    """A cgroup v1 subtree (memory + pids) below this process's groups, handed to uid 65534 as systemd would
    delegate one; yields its name relative to this process's group (for SSPO_SANDBOX_CGROUP)."""
    from sspo_exp.sandbox import cgroup

    try:
        backend = cgroup.backend()
    except cgroup.CgroupUnavailable as e:
        pytest.skip(f"no cgroup here: {e}")
    if backend.version != 1:
        pytest.skip("this test delegates a cgroup v1 subtree (the v2 delegation needs a process-free parent)")
    name = f"sspo-test-delegated-{os.getpid()}"
    dirs = [p / name for p in backend.parents]
    for d in dirs:
        d.mkdir()
        for f in (d, d / "cgroup.procs", d / "tasks"):
            os.chown(f, 65534, 65534)
    yield name, dirs
    for d in dirs:
        assert [c.name for c in d.iterdir() if c.is_dir()] == []  # the sandboxes' groups were removed
        d.rmdir()


def test_unprivileged_host_user_variant(bwrap, delegated_v1_cgroup):
    """The non-root variant (a user namespace per episode, in a delegated cgroup subtree) runs the whole hostile
    table as an ordinary user."""
    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    repo = Path(__file__).resolve().parents[1]
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(python):
        pytest.skip(f"needs root, setpriv and {python} to act as an unprivileged user")
    if not isolation._world_readable(str(repo / "sspo_exp" / "sandbox" / "cli.py")):
        pytest.skip(f"{repo} is not readable by other users")
    import importlib.util

    binding = os.path.dirname(importlib.util.find_spec("pyseccomp").origin)  # the venv's, for the system python
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{repo}:{binding}", "LANG": "C.UTF-8",
           "SSPO_SANDBOX_CGROUP": delegated_v1_cgroup[0]}
    if not isolation._world_readable(os.path.join(binding, "pyseccomp.py")):
        pytest.skip(f"{binding} is not readable by other users")
    proc = subprocess.run(
        nobody + [python, "-m", "sspo_exp.sandbox.cli"], cwd="/", env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "unprivileged user namespace" in proc.stdout and "| NO" not in proc.stdout
    assert "cgroup v1" in proc.stdout and "seccomp" in proc.stdout


def test_cli_exits_2_with_the_reason_when_no_sandbox_can_run(weak, capsys):
    from sspo_exp.cli import main

    assert main(["sandbox"]) == 2
    assert "force_weak" in capsys.readouterr().err


def test_a_sandbox_outlives_the_thread_that_started_it(bwrap):
    """bwrap's --die-with-parent follows the forking thread; rollout workers may start sandboxes and exit."""
    box = Sandbox(Limits(wall_seconds=60))
    starter = threading.Thread(target=box.start)
    starter.start()
    starter.join()
    try:
        assert box.run("print('alive')").output == "alive\n"
    finally:
        box.close()


def test_the_sandbox_dies_with_the_host(bwrap, tmp_path):
    """A host killed mid-cell (SIGKILL, no cleanup) leaves no process of the sandbox behind."""
    script = tmp_path / "host.py"
    script.write_text(
        "import os, sys, threading\nfrom sspo_exp.sandbox import Sandbox, Limits\n"
        "box = Sandbox(Limits(wall_seconds=600)).__enter__()\n"
        "box.run(\"import subprocess\\nkid = subprocess.Popen(['sleep', '600'])\")\n"
        "print(box.uid, flush=True)\n"
        "threading.Thread(target=box.run, args=('import time\\ntime.sleep(600)',)).start()\n"
        "sys.stdin.read()\n"
    )
    host = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    uid = host.stdout.readline().strip()
    if uid == "None":
        host.kill()
        pytest.skip("not root: the sandbox has no private uid to look for on the host")
    assert isolation.processes_of(int(uid))  # the REPL and its child are running
    host.kill()
    host.wait()
    deadline = time.monotonic() + 60
    while isolation.processes_of(int(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert isolation.processes_of(int(uid)) == []
    # its cgroup, which the dead host could not remove, is swept by the next host's first sandbox (here: this one)
    b = cgroup.backend()
    stale = [d for p in b.parents for d in p.glob(f"sspo-sandbox-{host.pid}-*")]
    assert stale and set(map(str, stale)) <= set(cgroup.sweep_stale(b))
    assert not any(d.exists() for d in stale)


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ({"cpu_seconds": 0}, r"sandbox\.cpu_seconds=0: must be a positive"),
        ({"wall_seconds": "10"}, r"sandbox\.wall_seconds='10'"),
        ({"processes": 1}, r"sandbox\.processes=1: must be >= 2"),
        ({"memory_mb": 2.5}, r"sandbox\.memory_mb=2\.5: must be a positive integer"),
        ({"allow_weak": "yes"}, r"sandbox\.allow_weak='yes': must be true or false"),
        ({"cpu_second": 5}, r"sandbox\.cpu_second: unknown field; allowed: cpu_seconds, wall_seconds"),
        ({"pool_size": 0}, r"sandbox\.pool_size=0: must be an integer >= 1"),
        ({"pool_size": True}, r"sandbox\.pool_size=True: must be an integer >= 1"),
    ],
)
def test_bad_config_names_the_field(block, match):
    with pytest.raises(SandboxConfigError, match=match):
        SandboxConfig.from_mapping(block)


def test_config_block_builds_the_sandbox():
    assert SandboxConfig.from_mapping({"pool_size": 8}).pool_size == 8 and SandboxConfig().pool_size == 32
    cfg = SandboxConfig.from_mapping({"cpu_seconds": 3, "allow_weak": True})
    box = Sandbox.from_config(cfg)
    assert box.limits == Limits(cpu_seconds=3) and box.allow_weak and not box.site_packages
    assert SandboxConfig.from_mapping(None) == SandboxConfig()
