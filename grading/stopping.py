"""Ctrl-C (SIGINT) and SIGTERM stop a class run, always, at a point where stopping is safe.

Python's own handling turns SIGINT into a ``KeyboardInterrupt`` raised at whatever the main
thread runs next. A grading run cannot rely on that. The main thread writes the gradebook
through SQLAlchemy, whose weak-reference callbacks (and the cyclic garbage collector's
finalisers) run in the main thread at unpredictable moments. When the pending signal is
handled inside one of them, the ``KeyboardInterrupt`` is raised inside the callback, reported
as "Exception ignored in ..." and lost: the run carries on to the end and exits 0 (seen once
in CI; ``tests/test_grading_units.py`` shows the mechanism). Raised elsewhere, it can cut a
gradebook write or a result file in half.

Here the handler only sets a flag, which nothing can lose. The run checks the flag between
steps (:func:`check`) and while it waits (:func:`wait_for` for the sandboxes' results,
:func:`run` for nbgrader's command line), then stops with exit status 130 (143 for SIGTERM).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested = threading.Event()
_signum = 0
POLL = 0.1  # seconds between looks at the flag while waiting


class Stopped(KeyboardInterrupt):
    """The run was asked to stop (Ctrl-C or SIGTERM); ``exit_status`` is 128 + the signal."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_status = 128 + signum


def _handler(signum: int, frame: object) -> None:
    global _signum
    _signum = signum
    _requested.set()


def requested() -> bool:
    """Whether Ctrl-C or SIGTERM arrived since :func:`handling` began."""
    return _requested.is_set()


def check() -> None:
    """Raise :class:`Stopped` if the run was asked to stop."""
    if _requested.is_set():
        raise Stopped(_signum or signal.SIGINT)


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM only set the stop flag (main thread only; elsewhere,
    or nested in another ``handling()``, the handlers already in place stay). The block ends
    with :class:`Stopped` if a signal came, also when it ended with another error then."""
    global _signum
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is _handler:
        yield
        return
    _requested.clear()
    _signum = 0
    old = {s: signal.signal(s, _handler) for s in _SIGNALS}
    try:
        yield
    except Exception as e:  # e.g. a tool outside our control that died of the terminal's Ctrl-C
        if _requested.is_set():
            raise Stopped(_signum or signal.SIGINT) from e
        raise
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        came, signum = _requested.is_set(), _signum
        _requested.clear()  # outside the block, Python's own handling again
    if came:  # a signal that came during the block's last step still stops the caller
        raise Stopped(signum or signal.SIGINT)


def wait_for(futures: set[Future]) -> tuple[set[Future], set[Future]]:
    """(done, not done): waits until at least one of ``futures`` is done, checking the flag."""
    while True:
        check()
        done, pending = wait(futures, timeout=POLL, return_when=FIRST_COMPLETED)
        if done:
            return done, pending


def run(cmd: list[str], *, cwd: os.PathLike | str, timeout: float,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` in a session of its own (a
    terminal's Ctrl-C reaches the grader only), killed with its children when the run is asked
    to stop (then :class:`Stopped`) or after ``timeout`` seconds (then ``TimeoutExpired``)."""
    check()
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        deadline = time.monotonic() + timeout
        while True:
            try:
                out, err = proc.communicate(timeout=POLL)
                return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
            except subprocess.TimeoutExpired:
                if _requested.is_set() or time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
                    check()
                    raise subprocess.TimeoutExpired(cmd, timeout) from None
