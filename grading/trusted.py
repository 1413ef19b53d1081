"""The verdict that goes into the gradebook: the instructor's test cells, run again in the
grader's own process against the record of the student's run (courselib.checking, replay mode).

No student code runs here. What the student's process could do to its own interpreter (patch
builtins or torch, install IPython hooks, rewrite or skip cells) cannot reach these checks: it
can only change the recorded data, which is judged against inputs this process makes itself.
"""
from __future__ import annotations

import contextlib
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import nbformat
import torch

from courselib import checking

from . import nbcells

# One replay at a time per process: replays set torch's global random state, grad mode and
# sys.stdout, and courselib.checking's replay stack is per process.
_LOCK = threading.Lock()


@dataclass
class Verdict:
    grade_id: str
    points: float          # what the cell is worth
    passed: bool
    message: str           # first line of the failure, for the student ("" when passed)

    @property
    def score(self) -> float:
        return self.points if self.passed else 0.0


def _failure(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    name = type(e).__name__
    message = first if isinstance(e, AssertionError) and first else f"{name}: {first}".rstrip(": ")
    return message[:500] + ("..." if len(message) > 500 else "")


def replay(source: nbformat.NotebookNode, record: Path) -> tuple[dict[str, Verdict], str]:
    """Run the source notebook's setup and test cells in replay mode against ``record``.

    Returns the verdict of every autograded test cell, in notebook order, and the problem found
    while reading the record ("" if none)."""
    log = checking.read_log(record)
    with _LOCK:
        return _replay(source, log), log.problem


def _replay(source: nbformat.NotebookNode, log: checking.Log) -> dict[str, Verdict]:
    namespace: dict = {"__name__": "__main__"}
    verdicts: dict[str, Verdict] = {}
    threads = torch.get_num_threads()
    sink = io.StringIO()
    try:
        torch.set_num_threads(1)
        with checking.replaying(log), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            for cell in source.cells:
                if cell.cell_type != "code" or nbcells.is_answer(cell) or nbcells.is_experiment(cell):
                    continue
                code = nbcells.strip_markers(cell.source)
                if code.lstrip().startswith(("%", "!")):
                    continue
                if not nbcells.is_test(cell):
                    exec(compile(code, "<setup cell>", "exec"), namespace)  # instructor code: must work
                    continue
                gid = nbcells.nbmeta(cell)["grade_id"]
                try:
                    exec(compile(code, f"<{gid}>", "exec"), namespace)
                    verdicts[gid] = Verdict(gid, float(nbcells.nbmeta(cell).get("points", 0)), True, "")
                except Exception as e:  # noqa: BLE001 - a failed check, whatever it raised
                    verdicts[gid] = Verdict(gid, float(nbcells.nbmeta(cell).get("points", 0)), False, _failure(e))
                finally:
                    torch.set_grad_enabled(True)
    finally:
        torch.set_num_threads(threads)
    return verdicts
