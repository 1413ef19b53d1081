"""Read the labs' nbgrader notebooks: answer cells, test cells, points; run them in-process.

Conventions every lab follows (checked by tests/test_labs.py):

* ``solutions/<lab>/<lab>.ipynb`` is the nbgrader source notebook.
* An *answer cell* has nbgrader metadata ``solution: true, grade: false`` and a
  ``grade_id`` naming what it implements (e.g. ``kaiming_normal_``).
* A *test cell* has ``grade: true, solution: false, locked: true``, ``points`` and a
  ``grade_id`` starting with ``test_``; visible asserts first, then the hidden ones
  between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``.
* Cells tagged ``experiment`` (plots, timing, training) are skipped by the fast
  in-process checks; no test cell may depend on them.
* Written answers are markdown cells with ``solution: true, grade: true`` (manually graded).

Used by the tests, the benchmarks and ``tools/generate_labs.py``; never by students.
"""
from __future__ import annotations

import contextlib
import io
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import nbformat

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from grading.nbcells import is_answer, is_experiment, is_test, nbmeta, strip_markers  # noqa: E402

LABS = ("lab1-init", "lab2-adamw", "lab3-conv")


def source_path(lab: str) -> Path:
    return ROOT / "solutions" / lab / f"{lab}.ipynb"


def student_path(lab: str) -> Path:
    return ROOT / "labs" / lab / f"{lab}.ipynb"


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def answers(nb) -> dict[str, str]:
    """grade_id -> solution source (markers stripped) of every answer cell."""
    return {nbmeta(c)["grade_id"]: strip_markers(c.source) for c in nb.cells if is_answer(c)}


def tests(nb) -> dict[str, int | float]:
    """grade_id -> points of every autograded test cell, in notebook order."""
    return {nbmeta(c)["grade_id"]: nbmeta(c).get("points", 0) for c in nb.cells if is_test(c)}


def max_auto_score(nb) -> float:
    return float(sum(tests(nb).values()))


@dataclass
class CellRun:
    grade_id: str | None
    ok: bool
    stderr: str = ""
    error: str = ""


def run_inprocess(nb, replacements: dict[str, str] | None = None, skip_experiments: bool = True,
                  ) -> dict[str, CellRun]:
    """Execute the notebook's code cells in one fresh namespace, in order.

    ``replacements`` maps answer grade_ids to the source to use instead (a student's
    attempt). Returns grade_id -> CellRun for every test cell. As in nbgrader, a test
    cell passes only if it raises nothing *and* writes nothing to stderr.
    """
    replacements = replacements or {}
    unknown = set(replacements) - set(answers(nb))
    if unknown:
        raise KeyError(f"no answer cell with grade_id {sorted(unknown)}")
    namespace: dict = {"__name__": "__lab__"}
    results: dict[str, CellRun] = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or (skip_experiments and is_experiment(cell)):
            continue
        gid = nbmeta(cell).get("grade_id")
        src = replacements.get(gid, strip_markers(cell.source)) if is_answer(cell) else strip_markers(cell.source)
        if src.lstrip().startswith(("%", "!")):
            continue
        err, out = io.StringIO(), io.StringIO()
        ok, error = True, ""
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                exec(compile(src, f"<cell {gid or '?'}>", "exec"), namespace)
            except BaseException as e:  # noqa: BLE001 - a student's cell may raise anything
                if isinstance(e, KeyboardInterrupt):
                    raise
                ok, error = False, "".join(traceback.format_exception_only(type(e), e)).strip()
        if is_test(cell):
            results[gid] = CellRun(gid, ok and not err.getvalue(), err.getvalue(), error)
    return results


def solution_module(lab: str, name: str | None = None) -> ModuleType:
    """The reference solution executed as a module (for benchmarks): every code cell the
    test cells rely on (imports, helpers, answers), i.e. all but test and experiment cells."""
    nb = read(source_path(lab))
    mod = ModuleType(name or lab.replace("-", "_") + "_solution")
    for cell in nb.cells:
        if cell.cell_type == "code" and not is_test(cell) and not is_experiment(cell):
            exec(compile(strip_markers(cell.source), f"<{lab}:{nbmeta(cell).get('grade_id', '?')}>", "exec"),
                 mod.__dict__)
    sys.modules[mod.__name__] = mod
    return mod
