"""``sspo-exp`` ends its process as soon as a command returns (``sspo_exp.cli.entry``: the exit handlers run, the
streams are flushed, then ``os._exit``), skipping ~1.5 s of interpreter teardown after a run. What must survive it:
the exit status, everything written to a pipe, every ``atexit`` handler, and a thread that is not a daemon."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


#: Code for ``_entry(before=...)``: an object that prints "torn down" when the interpreter tears its module down.
FINALISED_AT_TEARDOWN = textwrap.indent(textwrap.dedent("""
    import os
    class Noisy:
        def __del__(self):
            os.write(1, b"torn down\\n")
    keep = Noisy()
"""), "        ").strip()


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


def test_the_interpreters_teardown_is_skipped():
    # an object finalised at teardown says so; after the fast exit nothing is torn down (sys.exit(main()) would print)
    done = _entry(["--version"], before=FINALISED_AT_TEARDOWN)
    assert done.returncode == 0, done.stderr
    assert "exit handler ran" in done.stdout.splitlines() and "torn down" not in done.stdout


def test_a_command_started_with_stdout_closed_still_ends_cleanly():
    done = subprocess.run([sys.executable, "-m", "sspo_exp.cli", "--version"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=120,
                          preexec_fn=lambda: os.close(1))  # fmt: skip  # sys.stdout is None in the child
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_a_failing_command_keeps_its_exit_status_and_exits_the_usual_way():
    # a failure is not hurried: under torchrun the launcher kills the other processes at the first exit, and they must
    # have had time to say why they fail too (tests/test_cold_start.py's two-process launch)
    done = _entry(["no-such-command"], before=FINALISED_AT_TEARDOWN)
    assert done.returncode == 2 and "torn down" in done.stdout
    assert "unknown command 'no-such-command'" in done.stderr and "exit handler ran" in done.stdout.splitlines()


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
