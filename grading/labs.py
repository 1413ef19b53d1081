"""Read the labs' nbgrader notebooks: answer cells, test cells, points, policy; run them in-process.

Conventions every lab follows (docs/writing-a-lab.md; checked by tests/test_lab_structure.py):

* ``solutions/<lab>/<lab>.ipynb`` is the nbgrader source notebook (the folder *is* the lab:
  :meth:`grading.course.Course.labs` finds it).
* An *answer cell* has nbgrader metadata ``solution: true, grade: false`` and a
  ``grade_id`` naming what it implements (e.g. ``kaiming_normal_``).
* A *test cell* has ``grade: true, solution: false, locked: true``, ``points`` and a
  ``grade_id`` starting with ``test_``; its first statement is ``checks.cell("<grade_id>")``;
  visible asserts first, then the hidden ones between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS``.
* The read-only helper cell declares the lab's ``POLICY`` (a literal dict: the built-in routines
  the answers may not use) which the notebook's checks, the static scan and the tests all read.
* Cells tagged ``experiment`` (plots, timing, training) are skipped by the fast
  in-process checks; no test cell may depend on them.
* Written answers are markdown cells with ``solution: true, grade: true`` (manually graded).

Used by the tests, the benchmarks, ``tools/generate_labs.py`` and the grader; never by students.
"""
from __future__ import annotations

import ast
import contextlib
import io
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import nbformat

from .course import ROOT, Course
from .nbcells import is_answer, is_experiment, is_test, nbmeta, strip_markers

__all__ = ["ROOT", "Course", "is_answer", "is_experiment", "is_test", "nbmeta", "strip_markers", "read", "answers",
           "tests", "max_auto_score", "policy", "CellRun", "execute", "run_inprocess", "expected_errors",
           "solution_module"]


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


def policy(nb) -> dict:
    """The lab's ``POLICY``: the literal dict assigned at the top level of one of its read-only
    code cells, e.g. ``{"forbidden": r"(^|\\.)init\\.\\w+$"}`` ({} when the lab has none).
    ``forbidden``: a regular expression over dotted names the answers may not use;
    ``forbidden_ops`` (optional): one over the ATen operations they may not run."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code" or is_answer(cell) or is_test(cell):
            continue
        try:
            tree = ast.parse(strip_markers(cell.source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "POLICY" for t in node.targets):
                try:
                    found.append(ast.literal_eval(node.value))
                except ValueError as e:
                    raise ValueError("POLICY must be a literal dict (strings only), so that the grader can read it "
                                     f"without running the notebook: {e}") from None
    if len(found) > 1:
        raise ValueError(f"the lab assigns POLICY {len(found)} times: declare it once, in the helper cell")
    value = found[0] if found else {}
    if not isinstance(value, dict) or not set(value) <= {"forbidden", "forbidden_ops"}:
        raise ValueError(f"POLICY must be a dict with the key 'forbidden' (and optionally 'forbidden_ops'), "
                         f"got {value!r}")
    return value


@dataclass
class CellRun:
    grade_id: str | None
    ok: bool
    stderr: str = ""
    error: str = ""
    shown: str | None = None  # repr of the value the cell ends with (Jupyter shows it as Out[n]), if not None


def _run_cell(src: str, name: str, namespace: dict) -> str | None:
    """Run ``src`` as Jupyter does: a cell that ends with an expression shows its value (unless
    it is None or the line ends with ";"); returns that value's repr, or None."""
    tree = ast.parse(src, name)
    silenced = src.rstrip().endswith(";")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) and not silenced else None
    exec(compile(tree, name, "exec"), namespace)
    if last is None:
        return None
    value = eval(compile(ast.Expression(last.value), name, "eval"), namespace)
    return None if value is None else repr(value)[:200]


def execute(nb, replacements: dict[str, str] | None = None, skip_experiments: bool = True,
            ) -> list[tuple[int, CellRun]]:
    """Execute the notebook's code cells in one fresh namespace, in order (shell magics and
    ``!`` commands skipped); returns (cell index, CellRun) for every cell executed.

    ``replacements`` maps answer grade_ids to the source to use instead (a student's attempt).
    A cell's run is ``ok`` when it raised nothing; ``error`` names what it raised."""
    replacements = replacements or {}
    unknown = set(replacements) - set(answers(nb))
    if unknown:
        raise KeyError(f"no answer cell with grade_id {sorted(unknown)}")
    namespace: dict = {"__name__": "__lab__"}
    runs: list[tuple[int, CellRun]] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or (skip_experiments and is_experiment(cell)):
            continue
        gid = nbmeta(cell).get("grade_id")
        src = replacements.get(gid, strip_markers(cell.source)) if is_answer(cell) else strip_markers(cell.source)
        if src.lstrip().startswith(("%", "!")):
            continue
        err, out = io.StringIO(), io.StringIO()
        ok, error, shown = True, "", None
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                shown = _run_cell(src, f"<cell {gid or index}>", namespace)
            except BaseException as e:
                if isinstance(e, KeyboardInterrupt):
                    raise
                ok, error = False, "".join(traceback.format_exception_only(type(e), e)).strip()
        runs.append((index, CellRun(gid, ok, err.getvalue(), error, shown)))
    return runs


def run_inprocess(nb, replacements: dict[str, str] | None = None, skip_experiments: bool = True,
                  ) -> dict[str, CellRun]:
    """grade_id -> CellRun for every test cell of :func:`execute`'s run. As in nbgrader, a test
    cell passes only if it raises nothing *and* writes nothing to stderr."""
    return {run.grade_id: CellRun(run.grade_id, run.ok and not run.stderr, run.stderr, run.error, run.shown)
            for index, run in execute(nb, replacements, skip_experiments) if is_test(nb.cells[index])}


def expected_errors(student_nb) -> dict[int, str]:
    """The cells of a blank student lab that raise when it is run top to bottom, as
    {cell index: what it raised}: nbval is told to expect exactly these (``raises-exception``).

    Allowed are test cells (they call the unanswered stubs), cells that raise the stubs'
    ``NotImplementedError``, and experiment cells after an experiment cell that raised (they use
    what it did not make). Any other error is a bug of the lab: ``ValueError`` says which."""
    expected: dict[int, str] = {}
    experiment_failed = False
    for index, run in execute(student_nb, skip_experiments=False):
        if run.ok:
            continue
        cell = student_nb.cells[index]
        allowed = (is_test(cell) or run.error.startswith("NotImplementedError")
                   or (is_experiment(cell) and experiment_failed))
        if not allowed:
            first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            raise ValueError(f"cell {index} ({run.grade_id or first!r}) of the blank student lab raises "
                             f"{run.error!r}: only test cells, the stubs' NotImplementedError and experiments "
                             "after a failed experiment may raise there")
        experiment_failed = experiment_failed or is_experiment(cell)
        expected[index] = run.error
    return expected


def solution_module(lab: str, name: str | None = None) -> ModuleType:
    """The reference solution executed as a module (for benchmarks): every code cell the
    test cells rely on (imports, helpers, answers), i.e. all but test and experiment cells."""
    nb = read(Course.load().source_path(lab))
    mod = ModuleType(name or lab.replace("-", "_") + "_solution")
    for cell in nb.cells:
        if cell.cell_type == "code" and not is_test(cell) and not is_experiment(cell):
            exec(compile(strip_markers(cell.source), f"<{lab}:{nbmeta(cell).get('grade_id', '?')}>", "exec"),
                 mod.__dict__)
    sys.modules[mod.__name__] = mod
    return mod
