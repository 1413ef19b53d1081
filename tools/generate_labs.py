"""Generate the student labs (labs/<lab>/) from the instructor notebooks (solutions/<lab>/)
with nbgrader, in a scratch course directory so the repository gets no gradebook.

    python -m tools.generate_labs            # regenerate every lab into labs/
    python -m tools.generate_labs --check    # exit 1 if labs/ differs from what nbgrader makes
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib
import nbformat

from grading import labs
from grading.course import Course
from tools import setup_cell

matplotlib.use("Agg")  # the experiment cells of the blank labs run in this process
RAISES = "raises-exception"  # nbval's tag: the cell is expected to raise
HIDE = "hide-input"  # Jupyter Book's tag: the cell's source starts collapsed
HELPER_LINES = 40  # a read-only helper cell longer than this starts collapsed


def nbgrader(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("nbgrader")
    # nbgrader's gradebook shells out to `alembic`, found through PATH: the venv's bin first.
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")
    return run


def generate(labs: tuple[str, ...], dest: Path) -> None:
    """The student versions of ``labs``, as nbgrader generates them (plus :func:`add_student_marks`),
    into ``dest``/<lab>/."""
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Course.load(Course.load().scratch(Path(tmp), labs))
        for lab in labs:
            nbgrader("generate_assignment", lab, "--force", "--log-level=WARN", cwd=scratch.root)
            add_student_marks(scratch.student_path(lab))
            if (dest / lab).exists():
                shutil.rmtree(dest / lab)
            shutil.copytree(scratch.release_dir(lab), dest / lab)


def add_student_marks(student: Path) -> None:
    """What `make labs` adds to the student lab nbgrader generated: nbval's expected errors and
    the collapsed helper cells, and the notebook metadata JupyterLab would otherwise rewrite on open."""
    mark_expected_errors(student)
    collapse_helpers(student)
    record_kernel(student)


def mark_expected_errors(student: Path) -> None:
    """Tag ``raises-exception`` the cells of the student lab that raise while it is blank (the
    stubs' ``NotImplementedError`` and the test cells that call them; see
    :func:`labs.expected_errors`), so that nbval runs it and fails on any other error. The
    instructor notebooks carry no such tag: there a failing test cell is a failure."""
    nb = nbformat.read(student, as_version=4)
    expected = labs.expected_errors(nb)
    for index, cell in enumerate(nb.cells):
        tags = [t for t in cell.metadata.get("tags", []) if t != RAISES]
        if index in expected:
            tags.append(RAISES)
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    nbformat.write(nb, student)


def is_long_helper(cell, lines: int = HELPER_LINES) -> bool:
    """A read-only code cell of helpers (locked, neither a test nor an answer) of more than
    ``lines`` lines."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return (cell.cell_type == "code" and meta.get("locked", False) and not meta.get("grade", False)
            and not meta.get("solution", False) and len(cell.source.splitlines()) > lines)


def collapse_helpers(student: Path) -> None:
    """Show each long read-only helper cell of the student lab collapsed, its first line (what it
    provides) in view: on the website (the ``hide-input`` tag: a "Show code cell source" toggle),
    in JupyterLab (``jupyter.source_hidden``: a click on the cell's left bar opens it) and on
    Colab (``cellView: form``: the cell's ``#@title`` line is shown, a click shows the code)."""
    nb = nbformat.read(student, as_version=4)
    for cell in nb.cells:
        if is_long_helper(cell):
            cell.metadata["tags"] = [*[t for t in cell.metadata.get("tags", []) if t != HIDE], HIDE]
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
            if cell.source.startswith("#@title"):
                cell.metadata["cellView"] = "form"
    nbformat.write(nb, student)


def record_kernel(student: Path) -> None:
    """Write :func:`tools.setup_cell.kernel_metadata` into the student lab, so that opening it in JupyterLab
    changes nothing."""
    nb = nbformat.read(student, as_version=4)
    nb.metadata.update(setup_cell.kernel_metadata())
    nbformat.write(nb, student)


def _same_but_python_version(a: Path, b: Path) -> bool:
    """Two notebooks that differ only in ``language_info.version`` (the Python that generated
    them: :func:`tools.setup_cell.kernel_metadata`), which is not drift of the lab."""
    if a.suffix != ".ipynb":
        return False
    x, y = (json.loads(p.read_text()) for p in (a, b))
    for nb in (x, y):
        nb.get("metadata", {}).get("language_info", {}).pop("version", None)
    return x == y


def differences(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b)
    out = [f"only in {a.name}: {x}" for x in cmp.left_only] + [f"only in generated: {x}" for x in cmp.right_only]
    out += [f"differs: {x}" for x in cmp.diff_files if not _same_but_python_version(a / x, b / x)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("labs", nargs="*", help="the labs to generate (default: every lab in solutions/)")
    args = ap.parse_args()
    course = Course.load()
    labs = tuple(course.check_lab(lab) for lab in args.labs) or tuple(course.labs())
    release = course.release_dir()
    if not args.check:
        generate(labs, release)
        print("regenerated: " + ", ".join(f"{course.release}/{lab}" for lab in labs))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(labs, Path(tmp))
        problems = [f"{course.release}/{lab}: {d}" for lab in labs
                    for d in differences(release / lab, Path(tmp) / lab)]
    print("\n".join(problems) or f"{course.release}/ matches {course.source}/")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
