"""nbgrader's side of grading: its command line, the gradebook, collecting submissions, and the
template gradebook every sandboxed autograde starts from.

nbgrader needs its own executables (``nbgrader``, and ``alembic``, which its Gradebook runs to
learn the schema version of a new database) from this environment: :func:`environment` puts
them first on PATH for the commands run here, and :func:`connect` opens a Gradebook with the
schema version looked up once per process.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import nbgrader.api as nbgrader_api
from nbgrader import __version__ as nbgrader_version
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from . import stopping, trusted
from .course import CONFIG, Course

_BIN = str(Path(sys.executable).parent)
_CONNECT = threading.Lock()


def environment() -> dict[str, str]:
    """``os.environ`` with this environment's executables first on PATH (nbgrader, alembic)."""
    path = os.environ.get("PATH", "")
    return {**os.environ, "PATH": path if path.split(os.pathsep)[:1] == [_BIN] else f"{_BIN}{os.pathsep}{path}"}


@functools.cache
def alembic_version() -> str:
    """The gradebook schema version nbgrader expects (``alembic heads``, run once per process)."""
    with _CONNECT:
        original = os.environ.get("PATH")
        os.environ["PATH"] = environment()["PATH"]  # nbgrader runs `alembic` through PATH
        try:
            return nbgrader_api.get_alembic_version()
        finally:
            if original is None:
                os.environ.pop("PATH", None)
            else:
                os.environ["PATH"] = original


def connect(url: str, course_id: str) -> Gradebook:
    """nbgrader's ``Gradebook(url, course_id)``; a new database gets the schema version of
    :func:`alembic_version` instead of nbgrader asking ``alembic`` again (seconds) each time."""
    version = alembic_version()
    with _CONNECT, _known_schema(version):
        return Gradebook(url, course_id)


@contextlib.contextmanager
def _known_schema(version: str):
    saved = nbgrader_api.get_alembic_version
    nbgrader_api.get_alembic_version = lambda: version
    try:
        yield
    finally:
        nbgrader_api.get_alembic_version = saved


class GradingError(RuntimeError):
    """The class cannot be graded (gradebook unreachable, nbgrader failed): the message says why."""

def nbgrader(*args: str, course: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """``nbgrader <args>`` in ``course``; killed, and :class:`stopping.Stopped` raised, on Ctrl-C."""
    exe = Path(sys.executable).with_name("nbgrader")
    return stopping.run([str(exe), *args], cwd=course, timeout=timeout, env=environment())

def sqlite(folder: Path) -> str:
    """The SQLite gradebook in ``folder`` (the template and every worker's private copy)."""
    return f"sqlite:///{Path(folder).resolve() / 'gradebook.db'}"

def gradebook_url(course: Path) -> str:
    """The course's gradebook, as nbgrader itself finds it: ``CourseDirectory.db_url`` from
    nbgrader's configuration (system-wide, the user's, the course's ``nbgrader_config.py``),
    else ``sqlite:///<course>/gradebook.db``. A PostgreSQL gradebook
    (``postgresql+psycopg://user:password@host/db``) needs ``pip install -e ".[postgres]"``."""
    from nbgrader.apps import NbGraderApp
    from nbgrader.coursedir import CourseDirectory

    app = NbGraderApp()
    with contextlib.chdir(course):  # nbgrader reads nbgrader_config.py from the working directory (main thread only)
        app.load_config_file()
    return CourseDirectory(config=app.config, root=str(Path(course).resolve())).db_url

def open_gradebook(course: Path) -> Gradebook:
    """nbgrader's Gradebook of ``course`` (see :func:`gradebook_url`), with a clear error when its
    database cannot be reached."""
    url = gradebook_url(course)
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        return connect(url, Course.load(course).course_id)
    except ModuleNotFoundError as e:
        raise GradingError(f"the gradebook {shown} (CourseDirectory.db_url) needs the database driver "
                           f"{e.name!r}, which is not installed. `pip install -e \".[postgres]\"` installs psycopg, "
                           "which URLs of the form postgresql+psycopg://user:password@host/db use") from e
    except OperationalError as e:
        raise GradingError(f"cannot open the gradebook {shown} (CourseDirectory.db_url): "
                           f"{str(e.orig).strip() or e}") from e

def prepare(course: Path, lab: str) -> None:
    """Make sure the gradebook knows the lab (its test cells are restored from there)."""
    try:
        with open_gradebook(course) as gb:
            gb.find_notebook(lab, lab)
            return
    except MissingEntry:
        pass
    run = nbgrader("generate_assignment", lab, "--force", course=course)
    if run.returncode != 0:
        raise GradingError(f"nbgrader generate_assignment {lab} failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")

def collect(course: Path, lab: str, uploads: Path | None) -> str:
    """Bring submissions into submitted/: uploaded files via zip_collect, else the exchange."""
    if uploads is not None:
        archive = course / "downloaded" / lab / "archive"
        if archive.exists():
            shutil.rmtree(archive)
        archive.mkdir(parents=True)
        for item in sorted(Path(uploads).iterdir()):
            if item.is_file() and not item.is_symlink():
                shutil.copy(item, archive / item.name)
        run = nbgrader("zip_collect", lab, "--force", course=course)
    else:
        run = nbgrader("collect", lab, "--update", course=course)
    log = (run.stdout + run.stderr).strip()
    if run.returncode != 0:
        return f"collect failed (grading what is already in submitted/): {log.splitlines()[-1] if log else ''}"
    return ""

def students(course: Path, lab: str) -> list[str]:
    root = Path(course) / "submitted"
    return sorted(p.name for p in root.iterdir() if (p / lab).exists()) if root.is_dir() else []

def digest(folder: Path) -> str:
    """A fingerprint of a submission folder (names and bytes of its regular files)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()

def _template_key(course: Path, lab: str) -> str:
    """What the template gradebook is made from: nbgrader's version and configuration, the lab's source."""
    h = hashlib.sha256(f"nbgrader {nbgrader_version}\0".encode())
    h.update((Path(course) / CONFIG).read_bytes() + b"\0")
    h.update(digest(Course.load(course).source_dir(lab)).encode())
    return h.hexdigest()

def template(course: Path, lab: str) -> Path:
    """A gradebook that knows the lab and nothing else. Every submission is autograded in a private
    copy of the course with a copy of it, so nbgrader's writes never meet, and a submission never
    touches the real gradebook. Made once (``nbgrader generate_assignment``, seconds) and kept
    under ``records/.template/<lab>/`` until the lab's source or nbgrader's configuration changes;
    nothing ever writes to it but this function."""
    root = Path(course) / "records" / ".template" / lab
    key = _template_key(course, lab)
    stamp = root / "fingerprint"
    if (root / "gradebook.db").is_file() and stamp.is_file() and stamp.read_text() == key:
        return root / "gradebook.db"
    building = root.parent / f".{lab}.building"
    for old in (root, building):
        if old.exists():
            shutil.rmtree(old)
    Course.load(course).scratch(building, [lab]).rename(root)
    shutil.rmtree(building)
    run = nbgrader("generate_assignment", lab, "--force", f"--CourseDirectory.db_url={sqlite(root)}", course=root)
    if run.returncode != 0:
        raise GradingError(f"nbgrader generate_assignment {lab} failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    stamp.write_text(key)  # last: an interrupted build is made again next time
    return root / "gradebook.db"

def record(gb: Gradebook, lab: str, student: str, verdicts: dict[str, trusted.Verdict],
            flags: list[str], own: dict[str, float | None]) -> None:
    """Put the trusted scores into the gradebook. Adds to ``flags`` every test cell where the
    notebook's own run (``own``) claimed more than the trusted check gives, and flags the
    notebook for formgrader if there is any flag."""
    gb.update_or_create_student(student)
    try:
        gb.find_submission(lab, student)
    except MissingEntry:
        with warnings.catch_warnings():
            # nbgrader builds the submission's rows before adding them to the session, and
            # SQLAlchemy's autoflush warns about each one ("... not in session"); they are
            # added right after, and tests/test_class_grading.py checks every score is there.
            warnings.filterwarnings("ignore", message=r"Object of type <Submitted\w+> not in session")
            gb.add_submission(lab, student)
    nb = gb.find_submission_notebook(lab, lab, student)
    for grade in nb.grades:
        if grade.name in verdicts and grade.cell_type == "code":
            grade.auto_score = verdicts[grade.name].score
            grade.needs_manual_grade = False
    for gid, score in own.items():  # the notebook claimed more than its code earns: look at it
        if gid in verdicts and score is not None and score > verdicts[gid].score:
            flags.append(f"{gid}: the notebook's own tests gave {score:g} points, the trusted check "
                         f"{verdicts[gid].score:g} ({verdicts[gid].message})")
    nb.flagged = bool(flags)
    gb.db.commit()
