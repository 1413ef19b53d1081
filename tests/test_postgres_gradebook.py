"""The grading command with nbgrader's gradebook in PostgreSQL (``CourseDirectory.db_url``), as
on a JupyterHub where several graders use formgrader at once: a real PostgreSQL server started
here, a class graded in parallel and graded again (nothing twice), nbgrader's own export reading
the same database; and clear errors when the database cannot be used."""
from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from grading import grade
from grading.course import Course
from support import LAB, results_on_file, student_notebook, the_class

pytestmark = pytest.mark.pipeline
# correct, typical mistakes, blank, a kernel that exits, a notebook whose own tests were patched to pass
CLASS = ["s00-correct", "s01-correct", "s12-mistake", "s13-mistake", "s22-blank", "s28-exit", "s26-patch"]


def pg_bin() -> Path | None:
    """The directory of PostgreSQL's server programs (Debian keeps them off PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> str:
    """A throwaway PostgreSQL server on 127.0.0.1 with an empty database; its SQLAlchemy URL.
    PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` user."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("needs a PostgreSQL server: apt-get install postgresql (make test installs it)")
    base = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))  # not under pytest's 0700 tmp dirs
    as_user: dict = {}
    if os.geteuid() == 0:
        import pwd
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    port = free_port()
    data = base / "data"

    def run(*cmd: str) -> None:
        done = subprocess.run(cmd, cwd=base, capture_output=True, text=True, timeout=120, **as_user)
        assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"

    run(str(bindir / "initdb"), "-D", str(data), "-U", "grader", "-A", "trust", "-E", "UTF8", "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60", "start",
        "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off")
    try:
        import psycopg
        with psycopg.connect(f"postgresql://grader@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE gradebook")
        yield f"postgresql+psycopg://grader@127.0.0.1:{port}/gradebook"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def use_gradebook(course: Path, url: str) -> None:
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write(f"\nc.CourseDirectory.db_url = {url!r}\n")


def grade_command(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grading", LAB, "--workers=2", "--cell-timeout=30", *args],
                          cwd=course,
                          capture_output=True, text=True, timeout=900)


def test_a_class_graded_into_postgresql(postgres, tmp_path):
    course = Course.load().scratch(tmp_path, (LAB,))
    use_gradebook(course, postgres)
    assert grade.gradebook_url(course) == postgres
    everyone = the_class()
    students = {sid: everyone[sid] for sid in CLASS}
    expected = {sid: score for sid, (_, score) in students.items()}
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for sid, (answers, _) in students.items():
        nbformat.write(student_notebook(answers), uploads / f"{sid}_{LAB}.ipynb")

    first = grade_command(course, f"--from={uploads}")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert f"{len(students)} submissions:" in first.stdout
    # the course's gradebook is the PostgreSQL one; the workers' private SQLite copies are gone
    assert not (course / "gradebook.db").exists()
    assert not list((course / "records" / LAB).glob("*/course"))

    def scores() -> dict[str, float]:
        with Gradebook(postgres, Course.load(course).course_id) as gb:
            return {s.student_id: s.code_score for s in gb.assignment_submissions(LAB)}

    assert scores() == pytest.approx(expected)
    with open(course / "reports" / LAB / "grades.csv", newline="") as fh:  # nbgrader export, from PostgreSQL
        rows = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(fh) if r["assignment"] == LAB}
    assert rows == expected
    # each worker's nbgrader wrote to its private SQLite copy, which the trusted writer compared
    # with the trusted checks: the patched notebook claimed points it did not earn
    report = {r["student"]: r for r in json.loads((course / "reports" / LAB / "report.json").read_text())}
    assert any("the notebook's own tests gave" in f for f in report["s26-patch"]["flags"]), report["s26-patch"]

    # run again: nothing is graded twice, the gradebook is unchanged
    before = results_on_file(course)
    again = grade_command(course, "--no-collect")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert results_on_file(course) == before
    assert scores() == pytest.approx(expected)


def test_an_unreachable_gradebook_is_a_clear_error(tmp_path):
    course = Course.load().scratch(tmp_path, (LAB,))
    use_gradebook(course, f"postgresql+psycopg://grader:s3cret@127.0.0.1:{free_port()}/gradebook")
    run = grade_command(course, "--no-collect")
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert "cannot open the gradebook postgresql+psycopg://grader:***@127.0.0.1" in run.stderr
    assert "s3cret" not in run.stderr and "Traceback" not in run.stderr


def test_a_missing_database_driver_says_what_to_install(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.db_url = "
                                                 "'postgresql+pg8000://grader@127.0.0.1/gradebook'\n")
    with pytest.raises(grade.GradingError, match=r"driver 'pg8000'.*pip install -e \"\.\[postgres\]\""):
        grade.open_gradebook(tmp_path)


def test_the_default_gradebook_is_the_course_sqlite(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    assert grade.gradebook_url(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'gradebook.db'}"
