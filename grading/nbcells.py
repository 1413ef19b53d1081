"""The kinds of cell in a lab notebook, by their nbgrader metadata (see grading/labs.py for
the conventions every lab follows)."""
from __future__ import annotations

import re

_SOLUTION_RE = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)
_HIDDEN_RE = re.compile(r"^[ \t]*### (BEGIN|END) HIDDEN TESTS[ \t]*\n?", re.M)


def nbmeta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_answer(cell) -> bool:
    """A code cell the student writes (nbgrader: solution, not graded itself)."""
    m = nbmeta(cell)
    return cell.cell_type == "code" and m.get("solution", False) and not m.get("grade", False)


def is_test(cell) -> bool:
    """An autograded test cell (nbgrader: grade, not solution)."""
    m = nbmeta(cell)
    return cell.cell_type == "code" and m.get("grade", False) and not m.get("solution", False)


def is_experiment(cell) -> bool:
    return "experiment" in cell.get("metadata", {}).get("tags", [])


def strip_markers(source: str) -> str:
    """The instructor's code without nbgrader's solution / hidden-test markers."""
    return _HIDDEN_RE.sub("", _SOLUTION_RE.sub("", source))
