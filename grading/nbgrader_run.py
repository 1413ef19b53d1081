"""nbgrader's command line, run without paying for its imports each time.

``run(args, cwd, env, log)`` executes ``nbgrader <args>`` in a process forked from a
*forkserver* that imported nbgrader once (about 3 s of imports per submission otherwise). The
child starts its own session (so a timeout can kill its whole process group), takes ``env`` as
its environment and ``cwd`` as its directory, writes its output to ``log``, and dies with the
forkserver, which dies with the grader: an interrupted class run leaves nothing behind.

nbgrader also checks the gradebook's schema by running ``alembic heads`` each time it opens the
gradebook; the child uses the version in ``COURSE_ALEMBIC_VERSION`` instead when it is set.
``python -m grading.nbgrader_run <args>`` is plain nbgrader with that shortcut.
"""
from __future__ import annotations

import contextlib
import ctypes
import io
import multiprocessing
import os
import signal
import sys
import tempfile
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util

import nbgrader.api
from nbgrader.apps.nbgraderapp import NbGraderApp
from nbgrader.apps.nbgraderapp import main as nbgrader_main

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload([__name__, "grading.sandbox"])


# The names CPython's own ``_launch`` uses (read off CPython 3.11, the version tested here). On a
# Python whose launch differs, the copy below falls back to the standard launch: correct, only
# slower (tests/test_grading_units.py then fails on the speed-up, not on grades).
_LAUNCH_NAMES = frozenset({
    "BytesIO", "Finalize", "_fds", "_name", "close_fds", "connect_to_new_process", "dump", "dup",
    "finalizer", "forkserver", "get_preparation_data", "getbuffer", "io", "open", "os", "pid",
    "read_signed", "reduction", "sentinel", "set_spawning_popen", "spawn", "util", "write"})
FAST_LAUNCH = (sys.implementation.name == "cpython"
               and frozenset(popen_forkserver.Popen._launch.__code__.co_names) == _LAUNCH_NAMES)


class _Popen(popen_forkserver.Popen):
    """multiprocessing's forkserver start, except that the child does not import the parent's
    ``__main__`` again. multiprocessing runs a main *script* (the benchmark, a test runner, any
    script calling :func:`grading.grade.grade_one`) once more in every child, and the forkserver
    cannot preload it (CPython 3.11 passes it under a key the server does not read): that cost
    a second or more per submission (torch and the rest of the grader imported anew). The child
    needs nothing from ``__main__``: its target lives in this module, which the server preloaded."""

    def _launch(self, process_obj):  # as popen_forkserver.Popen._launch, without the main module
        if not FAST_LAUNCH:
            return super()._launch(process_obj)
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        popen_forkserver.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            popen_forkserver.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Process(_CONTEXT.Process):
    @staticmethod
    def _Popen(process_obj):
        return _Popen(process_obj)


def _child(args: list[str], cwd: str, env: dict[str, str], log: str) -> None:
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the forkserver
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None  # TMPDIR changed: connection files go where the sandbox can see them
    if env.get("COURSE_ALEMBIC_VERSION"):
        nbgrader.api.get_alembic_version = lambda: env["COURSE_ALEMBIC_VERSION"]
    NbGraderApp.launch_instance(["nbgrader", *args][1:])


def start(args: list[str], cwd: str, env: dict[str, str], log: str) -> multiprocessing.Process:
    """Start ``nbgrader <args>``; the returned process has ``pid`` (= its process group),
    ``join(timeout)`` and ``exitcode``."""
    proc = _Process(target=_child, args=(list(args), str(cwd), dict(env), str(log)), daemon=False)
    proc.start()
    return proc


if __name__ == "__main__":
    if os.environ.get("COURSE_ALEMBIC_VERSION"):
        nbgrader.api.get_alembic_version = lambda: os.environ["COURSE_ALEMBIC_VERSION"]
    sys.exit(nbgrader_main())
