"""Grading as an instructor who is not root, as on a university server.

The same small class (lab 3: correct, typical mistakes, blank, and a submission that snoops) is
graded by ``python -m grading`` once as root and once as an ordinary user. Without root the
sandbox runs in an unprivileged user namespace: the kernel keeps the instructor's uid, yet it
must still see none of the instructor's files (their home, the course's gradebook and
solutions, this repository's solutions) and reach no network, and every score must be the one
root's run gives. A machine where that sandbox cannot start says so before grading anything.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from grading import labs, sandbox
from grading.course import Course
from support import COURSE, LAB, REF, catalogue, snoop_code, student_notebook

pytestmark = pytest.mark.pipeline
if os.geteuid() != 0 or shutil.which("bwrap") is None:
    pytestmark = [pytestmark, pytest.mark.skip(reason="needs root (to create the unprivileged user) and bubblewrap")]

USER = "course-grader"
FULL = float(sum(labs.tests(labs.read(COURSE.source_path(LAB))).values()))


def instructor() -> pwd.struct_passwd:
    """An ordinary user to grade as (created, without a home or a login shell, if missing)."""
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        return pwd.getpwnam(USER)


@pytest.fixture(scope="module")
def reachable() -> Iterator[None]:
    """Let others traverse (not list) the folders above this repository and the Python it runs,
    e.g. /root for a Python under /root/.pyenv, for the duration of the tests."""
    changed: dict[Path, int] = {}
    tops = {labs.ROOT, Path(sys.executable).resolve(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    for top in tops:
        for folder in [top, *top.parents] if top.is_dir() else top.parents:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH and folder not in changed:
                changed[folder] = stat.S_IMODE(mode)
                folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    try:
        yield
    finally:
        for folder, mode in changed.items():
            folder.chmod(mode)


def snoop(course: Path, home: Path, port: int) -> str:
    secrets = [home / "secret.txt", home, course / "gradebook.db", course / "solutions" / LAB / f"{LAB}.ipynb",
               course / "submitted" / "honest-ref" / LAB / f"{LAB}.ipynb",
               labs.ROOT / "solutions" / LAB / f"{LAB}.ipynb", Path("/etc/shadow")]
    return snoop_code(secrets, port) + REF["conv2d_naive"]


def the_class(course: Path, home: Path, port: int) -> dict[str, tuple[dict, float]]:
    mistakes = catalogue(LAB)
    return {"honest-ref": (REF, FULL),
            "honest-mistakes": (mistakes.COMBINED, float(mistakes.COMBINED_EXPECTED_SCORE)),
            "honest-blank": ({}, 0.0),
            "snoop": ({**REF, "conv2d_naive": snoop(course, home, port)}, FULL)}


def grade_as(user: pwd.struct_passwd | None, where: Path, port: int, bwrap_dir: Path | None = None
             ) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """A course in ``where`` with the class submitted, graded by ``python -m grading`` as
    ``user`` (None: root); returns the run, the course and the instructor's home."""
    home = where / "home"
    home.mkdir(parents=True)
    (home / "secret.txt").write_text("the instructor's own file\n")
    course = Course.load().scratch(where, (LAB,))
    for sid, (answers, _) in the_class(course, home, port).items():
        folder = course / "submitted" / sid / LAB
        folder.mkdir(parents=True)
        nbformat.write(student_notebook(answers), folder / f"{LAB}.ipynb")
    if user is not None:  # the instructor's folders are their own
        for path in [where, *where.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    path = os.pathsep.join(filter(None, [str(bwrap_dir or ""), str(Path(sys.executable).parent), "/usr/bin", "/bin"]))
    env = {"PATH": path, "HOME": str(home), "USER": user.pw_name if user else "root", "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": "1"}
    ids = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    run = subprocess.run([sys.executable, "-m", "grading", LAB, "--no-collect", "--workers=2", "--cell-timeout=30"],
                         cwd=course, env=env, capture_output=True, text=True, timeout=900, **ids)
    return run, course, home


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[int, list]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.2)
    connections: list = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connections.append(srv.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield srv.getsockname()[1], connections
    stop.set()
    thread.join()
    srv.close()


def snoop_outputs(course: Path) -> str:
    notebook = course / "autograded" / "snoop" / LAB / f"{LAB}.ipynb"
    return "".join(json.dumps(c.get("outputs", [])) for c in nbformat.read(notebook, as_version=4).cells)


def flags(course: Path) -> dict[str, list[str]]:
    return {r["student"]: r["flags"] for r in json.loads((course / "reports" / LAB / "report.json").read_text())}


def scores(course: Path) -> dict[str, tuple[float, str]]:
    report = json.loads((course / "reports" / LAB / "report.json").read_text())
    return {r["student"]: (r["score"], r["status"]) for r in report}


def test_a_normal_user_grades_the_class_as_root_does_and_the_kernel_sees_none_of_their_files(
        reachable, listener):
    port, connections = listener
    user = instructor()
    where = Path(tempfile.mkdtemp(prefix="course-as-user-", dir="/tmp"))
    root_where = Path(tempfile.mkdtemp(prefix="course-as-root-", dir="/tmp"))
    try:
        as_user, course, home = grade_as(user, where, port)
        assert as_user.returncode == 0, as_user.stdout[-3000:] + as_user.stderr[-3000:]
        as_root, root_course, _ = grade_as(None, root_where, port)
        assert as_root.returncode == 0, as_root.stdout[-3000:] + as_root.stderr[-3000:]

        expected = {sid: score for sid, (_, score) in the_class(course, home, port).items()}
        by_user, by_root = scores(course), scores(root_course)
        assert {s: v[0] for s, v in by_user.items()} == expected, by_user
        assert by_user == by_root, flags(course)
        # everything the run wrote belongs to the instructor
        assert {p.stat().st_uid for p in (course / "reports").rglob("*")} == {user.pw_uid}

        outputs = snoop_outputs(course)
        assert "LEAKED" not in outputs and "NETWORK" not in outputs, outputs[:2000]
        # the unprivileged sandbox keeps the instructor's uid; root's drops the kernel to a sandbox user
        assert f"UID {user.pw_uid}\\n" in outputs, outputs[:2000]
        root_uid = int(re.search(r"UID (\d+)", snoop_outputs(root_course)).group(1))
        assert root_uid in sandbox.UID_POOL
        assert (home / "secret.txt").read_text() == "the instructor's own file\n"
        assert not connections
    finally:
        shutil.rmtree(where, ignore_errors=True)
        shutil.rmtree(root_where, ignore_errors=True)


def test_without_user_namespaces_the_command_says_so_before_grading_anything(reachable, listener):
    """bwrap refusing to make a user namespace (as where unprivileged ones are disabled)."""
    user = instructor()
    fake = Path(tempfile.mkdtemp(prefix="fake-bwrap-", dir="/tmp"))
    fake.chmod(0o755)
    (fake / "bwrap").write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    where = Path(tempfile.mkdtemp(prefix="course-no-userns-", dir="/tmp"))
    try:
        run, course, _ = grade_as(user, where, listener[0], bwrap_dir=fake)
        assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
        assert "bubblewrap cannot start a sandbox here (bwrap: setting up uid map: Permission denied)" in run.stderr
        assert "unprivileged user namespaces" in run.stderr and "or run the grading as root" in run.stderr
        assert not (course / "reports").exists() and not (course / "records").exists()
    finally:
        shutil.rmtree(where, ignore_errors=True)
        shutil.rmtree(fake, ignore_errors=True)
