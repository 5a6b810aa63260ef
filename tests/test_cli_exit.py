"""``sspo-exp`` ends its process as soon as a command returns (``sspo_exp.cli.entry``: the exit handlers run, the
streams are flushed, then ``os._exit``), skipping ~1.5 s of interpreter teardown after a run. What must survive it:
the exit status, everything written to a pipe, every ``atexit`` handler, and a thread that is not a daemon."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _entry(argv: list[str], before: str = "") -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import atexit, sys
        from sspo_exp import cli
        {before}
        atexit.register(print, "exit handler ran")
        sys.argv = ["sspo-exp", *{argv!r}]
        cli.entry()
        print("not reached")
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_the_status_the_output_and_the_exit_handlers_survive_the_fast_exit():
    done = _entry(["--version"])
    assert done.returncode == 0, done.stderr
    # stdout is a pipe here (block-buffered): both lines arrive, in order, and nothing after entry() runs
    assert done.stdout.splitlines() == [f"sspo-exp {_version()}", "exit handler ran"]


def test_a_failing_command_keeps_its_exit_status():
    done = _entry(["no-such-command"])
    assert done.returncode == 2
    assert "unknown command 'no-such-command'" in done.stderr and done.stdout.splitlines() == ["exit handler ran"]


def test_a_running_thread_that_is_not_a_daemon_is_waited_for():
    thread = """
        import threading, time
        threading.Thread(target=lambda: (time.sleep(0.5), print("thread finished", flush=True))).start()
    """
    done = _entry(["--version"], before=textwrap.indent(textwrap.dedent(thread), "        ").strip())
    assert done.returncode == 0, done.stderr
    assert "thread finished" in done.stdout.splitlines() and "exit handler ran" in done.stdout.splitlines()


def _version() -> str:
    from sspo_exp import __version__

    return __version__
