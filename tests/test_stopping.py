"""Ctrl-C stops a class run however it lands (grading/stopping.py). The class-scale proof, at
three moments of a real run, is in tests/test_class_grading.py."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from grading import stopping

# A SIGINT that is handled while the main thread runs a weak-reference callback, as SQLAlchemy's
# (the gradebook) and the garbage collector's run at any moment.
FINALISER = textwrap.dedent("""
    import os, signal, sys, weakref
    from grading import stopping

    class Row: pass

    def callback(ref):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives while the callback runs
        sum(range(10))                       # ... and Python handles it here

    def step():
        row = Row()
        ref = weakref.ref(row, callback)
        del row
        for _ in range(3):
            pass

    if sys.argv[1] == "python":
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
        try:
            step()
            print("carried on")
        except KeyboardInterrupt:
            print("stopped")
    else:
        try:
            with stopping.handling():
                step()
                stopping.check()
                print("carried on")
        except stopping.Stopped as e:
            print("stopped", e.exit_status)
""")


def run_finaliser(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", FINALISER, mode], capture_output=True, text=True, timeout=60,
                          cwd=stopping.__file__.rsplit("/grading/", 1)[0])


def test_python_loses_a_ctrl_c_handled_in_a_finaliser_and_the_stop_flag_does_not():
    plain = run_finaliser("python")
    assert plain.stdout.strip() == "carried on", plain  # the root cause of the run that did not stop
    assert "Exception ignored" in plain.stderr and "KeyboardInterrupt" in plain.stderr
    flagged = run_finaliser("stopping")
    assert flagged.stdout.strip() == "stopped 130", flagged
    assert "Exception ignored" not in flagged.stderr


@contextlib.contextmanager
def expect_stop(status: int = 130):
    """pytest.raises would not do: Stopped is a KeyboardInterrupt, which pytest keeps for itself."""
    try:
        with stopping.handling():
            yield
    except stopping.Stopped as e:
        assert e.exit_status == status
    else:
        pytest.fail("the run was not stopped")


def signal_self_after(seconds: float, sig: int = signal.SIGINT) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), sig))
    timer.start()
    return timer


def test_a_command_is_killed_with_its_children_when_the_run_is_stopped(tmp_path):
    pidfile = tmp_path / "child.pid"
    cmd = ["/bin/sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"]
    start = time.monotonic()
    with expect_stop():
        signal_self_after(1.0)
        stopping.run(cmd, cwd=tmp_path, timeout=120)
    assert time.monotonic() - start < 10
    child = int(pidfile.read_text())
    time.sleep(0.2)
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # gone, or a zombie


def test_sigterm_stops_with_its_own_status_and_the_handlers_are_restored(tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with expect_stop(143):
        signal_self_after(0.2, signal.SIGTERM).join()
        time.sleep(0.1)
        stopping.check()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    # a signal in the block's last step still stops the caller when the block ends
    with expect_stop():
        signal_self_after(0.0).join()
        time.sleep(0.1)
    # and a finished command, not stopped, gives its output
    done = stopping.run(["/bin/echo", "fine"], cwd=tmp_path, timeout=30)
    assert (done.returncode, done.stdout) == (0, "fine\n")


def test_waiting_for_results_stops_at_once():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(time.sleep, 3)
        start = time.monotonic()
        with expect_stop():
            signal_self_after(0.3)
            stopping.wait_for({slow})
        assert time.monotonic() - start < 1.5


def test_an_error_caused_by_the_stop_ends_the_block_as_a_stop():
    """A child killed by the terminal's Ctrl-C makes its caller fail: that failure is the stop."""
    with expect_stop():
        signal_self_after(0.0).join()
        time.sleep(0.1)
        raise subprocess.CalledProcessError(-2, ["alembic", "heads"])
    with pytest.raises(ValueError), stopping.handling():  # without a signal, an error is only an error
        raise ValueError("not a stop")
