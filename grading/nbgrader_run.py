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

import ctypes
import multiprocessing
import os
import signal
import sys
import tempfile

import nbgrader.api
from nbgrader.apps.nbgraderapp import NbGraderApp, main as nbgrader_main

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload([__name__, "grading.sandbox"])


def _child(args: list[str], cwd: str, env: dict[str, str], log: str) -> None:
    os.setsid()
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the forkserver
    except (OSError, AttributeError):
        pass
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
    proc = _CONTEXT.Process(target=_child, args=(list(args), str(cwd), dict(env), str(log)), daemon=False)
    proc.start()
    return proc


if __name__ == "__main__":
    if os.environ.get("COURSE_ALEMBIC_VERSION"):
        nbgrader.api.get_alembic_version = lambda: os.environ["COURSE_ALEMBIC_VERSION"]
    sys.exit(nbgrader_main())
