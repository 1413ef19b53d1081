"""Put a submitted notebook back into the shape nbgrader expects before it is graded.

Students edit what they should not: cell types, nbgrader metadata (points, grade ids), test cells
deleted or duplicated. nbgrader refuses such a notebook outright ("the nbgrader metadata may be
corrupted") and the student gets nothing, even for correct answers. Here every cell that came
from the released notebook (matched by cell id, else by grade id) gets its type and nbgrader
metadata back, graded cells that were deleted are put back where they were, and metadata the
student invented is removed. The student's own sources of answer cells and the cells they added
are kept; nbgrader then restores the source of test and locked cells from its gradebook.
"""
from __future__ import annotations

import copy

import nbformat

from . import nbcells


def _match(cell, by_id: dict, by_grade: dict):
    found = by_id.get(cell.get("id"))
    if found is None:
        found = by_grade.get(nbcells.nbmeta(cell).get("grade_id"))
    return found


def repair(submitted: nbformat.NotebookNode, release: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[str]]:
    """The submission with the release's cell types and nbgrader metadata restored; and what was
    changed, in words (empty if nothing was)."""
    by_id = {c.get("id"): i for i, c in enumerate(release.cells) if c.get("id")}
    by_grade = {nbcells.nbmeta(c)["grade_id"]: i for i, c in enumerate(release.cells)
                if nbcells.nbmeta(c).get("grade_id")}
    notes: list[str] = []
    out, used = [], set()
    last_release = -1
    placed: list[tuple[int, int]] = []  # (release index, position in out)
    for cell in submitted.cells:
        i = _match(cell, by_id, by_grade)
        if i is not None and i in used:
            i = None  # a copy of a cell already placed: it is the student's own cell
        if i is None:
            if nbcells.nbmeta(cell):
                gid = nbcells.nbmeta(cell).get("grade_id", "?")
                notes.append(f"removed nbgrader metadata from a cell the student added ({gid})")
                cell = copy.deepcopy(cell)
                cell.metadata.pop("nbgrader", None)
            out.append(cell)
            continue
        used.add(i)
        last_release = max(last_release, i)
        original = release.cells[i]
        meta = nbcells.nbmeta(original)
        if cell.cell_type != original.cell_type or nbcells.nbmeta(cell) != meta:
            label = meta.get("grade_id") or f"cell {i + 1}"
            notes.append(f"restored the cell type and nbgrader metadata of {label}")
            fixed = copy.deepcopy(original)
            if nbcells.nbmeta(original).get("solution"):
                fixed.source = cell.source  # the student's answer stays theirs
            cell = fixed
        placed.append((i, len(out)))
        out.append(cell)
    missing = [i for i, c in enumerate(release.cells) if nbcells.nbmeta(c).get("grade_id") and i not in used]
    for i in sorted(missing, reverse=True):  # put each back after the release cell that preceded it
        before = [pos for j, pos in placed if j < i]
        position = (max(before) + 1) if before else 0
        out.insert(position, copy.deepcopy(release.cells[i]))
        placed = [(j, pos + 1 if pos >= position else pos) for j, pos in placed] + [(i, position)]
        notes.append(f"put back the deleted cell {nbcells.nbmeta(release.cells[i])['grade_id']}")
    fixed_nb = copy.deepcopy(submitted)
    fixed_nb.cells = out
    return fixed_nb, notes
