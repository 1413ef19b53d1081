"""Submissions that attack the grader, graded in one class run with honest ones (lab 3).

Each attack gets the exact score its code earns on its own merits, is flagged for the
instructor where it did something a correct answer never needs, and leaves everyone else's
grades, files and feedback untouched. Resource-hungry cases are bounded by the sandbox's limits
(cell timeout 10 s here, 4 GiB address space, process count) so they cannot hurt this machine.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import socket
import threading
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from grading import grade, labs, sandbox
from grading.course import Course
from support import COURSE, HIDDEN_PRINT, LAB, LIAR, PATCH, REF, WRONG, catalogue, snoop_code, student_notebook

pytestmark = pytest.mark.pipeline
FULL = 14.0



def replace(base: dict, **changes) -> dict:
    return {**base, **changes}


def attacks(course: Path, port: int) -> dict[str, tuple[dict, float, str]]:
    """student id -> (answer sources, exact expected score, expected status)."""
    secrets = [course / "solutions" / LAB / f"{LAB}.ipynb", course / "gradebook.db",
               course / "submitted" / "honest-ref" / LAB / f"{LAB}.ipynb", Path.home() / ".bashrc", Path("/etc/shadow"),
               Path(labs.ROOT) / "solutions" / LAB / f"{LAB}.ipynb"]
    snoop = snoop_code(secrets, port, writes=[course / "gradebook.db",
                                              course / "submitted" / "honest-ref" / LAB / f"{LAB}.ipynb"])
    pool_first = lambda code: replace(REF, max_pool2d=code + REF["max_pool2d"])  # noqa: E731
    return {
        # honest submissions, graded alongside: their grades must be untouched
        "honest-ref": (REF, FULL, "graded"),
        "honest-mistakes": (catalogue(LAB).COMBINED, float(catalogue(LAB).COMBINED_EXPECTED_SCORE), "graded"),
        "honest-blank": ({}, 0.0, "graded"),
        # monkeypatching what the tests use, with wrong answers: the wrong answers' score (0)
        "patch-comparisons": (replace(WRONG, conv2d_naive=PATCH + WRONG["conv2d_naive"]), 0.0, "flagged"),
        # results that lie in comparisons: plain data has no opinions
        "lying-objects": (replace(WRONG, conv2d_naive=LIAR + WRONG["conv2d_naive"].replace(
            "return x.new_zeros(_shape(x, weight, stride, padding))",
            "return x.new_zeros(_shape(x, weight, stride, padding)).as_subclass(Agreeable)")), 0.0, "flagged"),
        # an input transformer that turns every later cell into `pass`: no checks ran, nothing earned
        "transformer-first": (replace(REF, conv2d_naive=REF["conv2d_naive"]
                                      + '\nget_ipython().input_transformers_cleanup'
                                      '.append(lambda lines: ["pass\\n"])\n'), 0.0, "flagged"),
        # ... installed after the convolutions were tested: those points stand, the pooling ones do not
        "transformer-last": (replace(REF, max_pool2d=REF["max_pool2d"] + '\nget_ipython().input_transformers_cleanup'
                                     '.append(lambda lines: ["pass\\n"])\n'), 11.0, "flagged"),
        # a hook that prints each hidden test's source: correct answers keep their points; the
        # feedback carries none of it (checked below)
        "hook-prints-tests": (replace(REF, conv2d_naive=HIDDEN_PRINT + REF["conv2d_naive"]), FULL, "flagged"),
        # reading solutions, the gradebook, other students, root's home; writing and deleting them;
        # the network: nothing is there to read or write
        "snoop": (replace(REF, conv2d_naive=snoop + REF["conv2d_naive"]), FULL, "flagged"),
        # killing the grader (the sandbox's init ignores it) and everything it can see (itself)
        # (the kill is refused: the answer cell stops there, so conv2d_naive is not defined)
        "kill-parent": (replace(REF, conv2d_naive="import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                                + REF["conv2d_naive"]), FULL - 5, "flagged"),
        # kill(-1) reaches nothing else (the pid namespace holds root's init and the kernel): it raises
        "kill-everything": (pool_first("import os, signal\nos.kill(-1, signal.SIGKILL)\n"), 11.0, "flagged"),
        "exit-kernel": (pool_first("import os\nos._exit(0)\n"), 11.0, "flagged"),
        "endless-loop": (pool_first("while True:\n    pass\n"), 11.0, "flagged"),
        # ... that ignores the interrupt sent at the cell's time limit: killed after a short grace,
        # and the checks that ran before it keep their points (the trusted replay of its record)
        "deaf-loop": (pool_first("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n"
                                 "    pass\n"), 11.0, "flagged"),
        "output-flood": (pool_first("while True:\n    print('x' * 1_000_000)\n"), 11.0, "flagged"),
        "memory-hog": (pool_first("hog = bytearray(16 * 2**30)\n"), 11.0, "flagged"),
        # a fork bomb stops at the process limit of its own sandbox user (the sleepers die with the
        # sandbox): the rest of its notebook runs, and sandboxes graded at the same time, which run
        # as other users, are not starved
        "fork-bomb": (pool_first("import os, time\ntry:\n    while True:\n        if os.fork() == 0:\n"
                                 "            time.sleep(20)\n            os._exit(0)\nexcept OSError:\n    pass\n"),
                      FULL, "flagged"),
        # deleting the grader's record: the checks' data is gone, so are their points
        "delete-record": (replace(REF, conv2d_naive="import os\nos.remove(os.environ['COURSELIB_RECORD'])\n"
                                  + REF["conv2d_naive"]), 0.0, "flagged"),
        # hard-coded answers to the visible by-hand case: the hidden cases (other data) fail
        "hardcoded-visible": (replace(REF, max_pool2d='''
def max_pool2d(x, kernel_size, stride=None):
    if tuple(x.shape) == (1, 1, 4, 4):
        return torch.tensor([[[[4.0, -1.0], [9.0, 6.0]]]])
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    rows = x[:, :, : (x.shape[2] - kh) // (stride or kh) * (stride or kh) + 1 : (stride or kh), :1]
    return rows.expand(-1, -1, -1, 1)
'''), 11.0, "graded"),
    }


def edited_tests_notebook() -> nbformat.NotebookNode:
    """Correct answers; one test cell emptied and its points raised to 100, another stripped of its
    nbgrader metadata and emptied, an answer cell's grade_id renamed."""
    nb = student_notebook(REF)
    for cell in nb.cells:
        meta = labs.nbmeta(cell)
        if meta.get("grade_id") == "test_max_pool2d":
            cell.source = "pass"
            meta["points"] = 100
        elif meta.get("grade_id") == "test_max_pool2d_stride_pairs":
            cell.source = "pass"
            cell.metadata.pop("nbgrader")
        elif meta.get("grade_id") == "conv2d":
            meta["grade_id"] = "renamed"
    return nb


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adversarial")
    course = Course.load().scratch(tmp, (LAB,))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    connections = []

    def accept():
        while not stop.is_set():
            try:
                connections.append(listener.accept())
            except OSError:
                continue

    stop = threading.Event()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    cases = attacks(course, listener.getsockname()[1])
    uploads = tmp / "uploads"
    uploads.mkdir()
    for sid, (answers, _, _) in cases.items():
        nbformat.write(student_notebook(answers), uploads / f"{sid}_{LAB}.ipynb")
    nbformat.write(edited_tests_notebook(), uploads / f"edited-tests_{LAB}.ipynb")
    grade.prepare(course, LAB)
    assert grade.collect(course, LAB, uploads) == ""
    # a submission collected with a symbolic link in it (nbgrader would follow it)
    linked = course / "submitted" / "symlink" / LAB
    linked.mkdir(parents=True)
    nbformat.write(student_notebook(REF), linked / f"{LAB}.ipynb")
    (linked / "data.csv").symlink_to("/etc/passwd")
    protected = {p: sha(p) for p in [course / "solutions" / LAB / f"{LAB}.ipynb",
                                     course / "submitted" / "honest-ref" / LAB / f"{LAB}.ipynb"]}
    limits = sandbox.Limits(cell_timeout=10, submission_timeout=180, processes=96)
    results = grade.grade_class(course, LAB, limits=limits, collect_first=False)
    stop.set()
    thread.join()
    listener.close()
    (tmp / "summary.txt").write_text("\n".join(f"{r.student}: {r.score} {r.status} {r.flags} {r.messages}"
                                               for r in results))
    print(tmp / "summary.txt")
    yield {"course": course, "results": {r.student: r for r in results}, "cases": cases, "limits": limits,
           "protected": protected, "connections": connections, "paths": grade.export(course, LAB, results)}


def test_every_submission_is_graded_once(graded):
    expected = set(graded["cases"]) | {"edited-tests", "symlink"}
    assert set(graded["results"]) == expected
    with open(graded["paths"]["grades"], newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["assignment"] == LAB]
    assert sorted(r["student_id"] for r in rows) == sorted(expected)


@pytest.mark.parametrize("student", sorted(attacks(Path("/nonexistent"), 0)))
def test_exact_score_and_status(graded, student):
    _, score, status = graded["cases"][student]
    result = graded["results"][student]
    assert (result.score, result.status) == (score, status), (result.flags, result.messages)
    with Gradebook(f"sqlite:///{graded['course'] / 'gradebook.db'}") as gb:
        assert gb.find_submission(LAB, student).code_score == pytest.approx(score)
        assert gb.find_submission_notebook(LAB, LAB, student).flagged == (status != "graded")


def test_edited_tests_and_metadata_cost_only_the_cells_involved(graded):
    result = graded["results"]["edited-tests"]
    # The metadata is restored from the release (nbgrader would refuse the notebook as corrupted),
    # then nbgrader restores both emptied test cells from its gradebook: the correct answers keep
    # every point, and the instructor sees what was repaired.
    assert result.score == FULL, (result.flags, result.messages)
    assert result.status == "flagged"
    assert sum("notebook repaired" in f for f in result.flags) == 3, result.flags


def test_symlinked_submission_is_refused_with_a_reason(graded):
    result = graded["results"]["symlink"]
    assert result.status == "failed" and result.score == 0
    assert any("symbolic link" in f or "symlink" in f for f in result.flags), result.flags


def test_attacks_that_need_more_than_an_answer_are_flagged_with_reasons(graded):
    flags = {sid: " | ".join(r.flags) for sid, r in graded["results"].items()}
    assert "input_transformers_cleanup" in flags["transformer-first"]
    assert "the notebook's own tests gave" in flags["patch-comparisons"]
    assert "builtins" in flags["patch-comparisons"]
    assert "__torch_function__" in flags["lying-objects"] or "__eq__" in flags["lying-objects"]
    assert "events" in flags["hook-prints-tests"] or "get_ipython" in flags["hook-prints-tests"]
    assert "time limit" in flags["endless-loop"] or "kernel died" in flags["endless-loop"], flags["endless-loop"]
    assert "did not answer the interrupt" in flags["deaf-loop"], flags["deaf-loop"]
    # ipykernel buffers the unflushed flood in the kernel: by timing it hits the cell's time limit,
    # or the kernel's memory limit in the cell (MemoryError) or in ipykernel's threads (the kernel
    # dies or garbles its messages: nbgrader's autograde fails; tests/test_sandbox.py has all three)
    assert any(w in flags["output-flood"] for w in ("time limit", "out of memory", "autograde error")), \
        flags["output-flood"]
    assert "kernel died" in flags["exit-kernel"]
    assert "memory" in flags["memory-hog"]
    assert "sends signals" in flags["kill-everything"] and "sends signals" in flags["kill-parent"]
    assert not any(graded["results"][s].flags for s in ("honest-ref", "honest-mistakes", "honest-blank"))


def test_nothing_outside_the_sandbox_was_read_written_or_reached(graded):
    course = graded["course"]
    assert (Path.home() / ".bashrc").is_file()  # so that reading it would have been a leak
    for path, digest in graded["protected"].items():
        assert sha(path) == digest, f"{path} changed"
    notebook = course / "autograded" / "snoop" / LAB / f"{LAB}.ipynb"
    outputs = "".join(json.dumps(c.get("outputs", [])) for c in nbformat.read(notebook, as_version=4).cells)
    for word in ("LEAKED", "WROTE", "REMOVED", "NETWORK"):
        assert word not in outputs, outputs[:2000]
    assert not graded["connections"]


def test_a_kernel_that_ignores_interrupts_costs_about_its_cell_time_limit(graded):
    """Not the submission's limit (180 s here, 600 s by default): the cell's 10 s, the 5 s grace
    for the interrupt, and what the honest part of the notebook takes (a few seconds)."""
    limits = graded["limits"]
    deaf, honest = graded["results"]["deaf-loop"], graded["results"]["honest-ref"]
    assert deaf.seconds < limits.cell_timeout + limits.interrupt_grace + honest.seconds + 20, deaf
    assert deaf.seconds < limits.submission_timeout / 3


def test_output_flood_is_capped(graded):
    path = graded["course"] / "autograded" / "output-flood" / LAB / f"{LAB}.ipynb"
    if path.exists():  # nbgrader keeps the autograded notebook unless the kernel died
        assert path.stat().st_size < 20 << 20


def test_feedback_says_what_failed_and_never_shows_test_code(graded):
    course = graded["course"]
    source = labs.read(COURSE.source_path(LAB))
    test_lines = {line.strip() for c in source.cells if labs.is_test(c)
                  for line in labs.strip_markers(c.source).splitlines()
                  if line.strip().startswith(("check_", "assert ", "cases = ", "for ", "expect_", "out = ", "x = "))}
    assert len(test_lines) > 20
    for sid in graded["results"]:
        page = (course / "feedback" / sid / LAB / f"{LAB}.html").read_text()
        for line in test_lines:
            assert line not in page, (sid, line)
        assert "SOURCE:" not in page
    mistakes = (course / "feedback" / "honest-mistakes" / LAB / f"{LAB}.html").read_text()
    assert "failed" in mistakes and "passed" in mistakes and "9 / 14" in mistakes
    timeout = (course / "feedback" / "endless-loop" / LAB / f"{LAB}.html").read_text()
    assert "time limit" in timeout


def test_a_class_run_can_be_repeated_without_changing_anything(graded):
    """Grading again (as after an interruption) gives the same scores for the same submissions."""
    course = graded["course"]
    again = grade.grade_one(course, LAB, "honest-mistakes", limits=sandbox.Limits(cell_timeout=10))
    assert again.score == graded["results"]["honest-mistakes"].score
    shutil.rmtree(course / "records" / LAB / "honest-mistakes")
    assert os.listdir(course / "records" / LAB)
