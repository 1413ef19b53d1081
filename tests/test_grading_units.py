"""The grader's pieces that need no sandbox: static reading, notebook repair, feedback pages."""
import copy

import nbformat
import pytest

from grading import feedback, labs, repair, static
from grading.trusted import Verdict
from support import COURSE, catalogue


def with_answer(nb, gid, code):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if labs.nbmeta(cell).get("grade_id") == gid:
            cell.source = code
    return nb


@pytest.mark.parametrize("lab", COURSE.labs())
def test_reference_and_honest_mistakes_read_clean(lab):
    source = labs.read(COURSE.source_path(lab))
    assert static.scan(source, source) == []
    mistakes = catalogue(lab)
    flagged = {name for name, (gid, code, _) in mistakes.MISTAKES.items()
               if static.scan(with_answer(source, gid, code), source)}
    # exactly the mistakes that use the built-in routine the lab forbids are flagged
    assert flagged == mistakes.FORBIDDEN


@pytest.mark.parametrize("code, kind, word", [
    ("get_ipython().input_transformers_cleanup.append(lambda l: ['pass\\n'])", "tampering", "rewrites"),
    ("import builtins\nbuiltins.abs = lambda x: 0", "tampering", "builtins"),
    ("import sys\nsys.modules['torch'].allclose = lambda *a, **k: True", "tampering", "sys.modules"),
    ("class T:\n    def __eq__(self, o):\n        return True", "tampering", "__eq__"),
    ("import os\nos.kill(os.getppid(), 9)", "tampering", "signals"),
    ("from torch.nn.functional import conv2d as c", "forbidden", "torch.nn.functional.conv2d"),
    ("def conv2d(x, w):\n    return F.conv2d(x, w)", "forbidden", "F.conv2d"),
    ("def f(:", "syntax", "does not parse"),
])
def test_tampering_and_forbidden_calls_are_found(code, kind, word):
    source = labs.read(COURSE.source_path("lab3-conv"))
    found = static.scan(with_answer(source, "conv2d", code), source)
    assert any(f.kind == kind and word in f.detail for f in found), found


def test_tensor_unfold_is_allowed_in_lab3():
    source = labs.read(COURSE.source_path("lab3-conv"))
    code = "def conv2d(x, w):\n    return x.unfold(2, 3, 1).unfold(3, 3, 1)"
    assert static.scan(with_answer(source, "conv2d", code), source) == []


def test_repair_restores_metadata_and_deleted_cells_and_keeps_answers_and_added_cells():
    release = labs.read(COURSE.student_path("lab1-init"))
    nb = copy.deepcopy(release)
    tests = [c for c in nb.cells if labs.is_test(c)]
    answer = next(c for c in nb.cells if labs.is_answer(c))
    answer.source = "def compute_fans(w):\n    return 1, 2"
    answer.metadata.nbgrader["grade_id"] = "renamed"
    tests[0].metadata.nbgrader["points"] = 100
    tests[1].metadata.pop("nbgrader")
    nb.cells.remove(tests[2])
    helper = nbformat.v4.new_code_cell("def helper():\n    return 3")
    helper.metadata["nbgrader"] = {"grade": True, "grade_id": "mine", "points": 50, "solution": False, "locked": True}
    nb.cells.insert(3, helper)
    fixed, notes = repair.repair(nb, release)
    assert len(notes) == 5, notes
    ids = [labs.nbmeta(c).get("grade_id") for c in fixed.cells]
    assert [i for i in ids if i] == [labs.nbmeta(c).get("grade_id") for c in release.cells
                                     if labs.nbmeta(c).get("grade_id")]
    assert labs.tests(fixed) == labs.tests(release)
    assert labs.answers(fixed)["compute_fans"] == "def compute_fans(w):\n    return 1, 2"
    assert any(c.source.startswith("def helper") and not labs.nbmeta(c) for c in fixed.cells)
    assert repair.repair(release, release)[1] == []


def test_feedback_escapes_and_totals():
    verdicts = [Verdict("test_a", 2, True, ""), Verdict("test_b", 1, False, "<script>alert(1)</script> got 3")]
    page = feedback.render("lab9", "stu<dent>", verdicts, ["Your notebook <b>stopped</b>."])
    assert "<script>" not in page and "&lt;script&gt;" in page and "stu&lt;dent&gt;" in page
    assert "2 / 3" in page and page.count('class="fail"') == 1


def test_template_gradebook_is_kept_until_the_lab_changes(tmp_path):
    from grading import grade
    from grading.course import Course

    course = Course.load().scratch(tmp_path, ("lab3-conv",))
    first = grade.template(course, "lab3-conv")
    made = first.stat().st_mtime_ns
    assert grade.template(course, "lab3-conv") == first and first.stat().st_mtime_ns == made  # kept
    source = course / "solutions" / "lab3-conv" / "lab3-conv.ipynb"
    source.write_text(source.read_text() + "\n")
    assert grade.template(course, "lab3-conv").stat().st_mtime_ns != made  # the lab changed: made again
    assert grade.template(course, "lab3-conv") == first


@pytest.mark.parametrize("fast", [True, False], ids=["fast-launch", "standard-launch-fallback"])
def test_nbgrader_children_do_not_import_the_main_script_again(tmp_path, fast):
    """multiprocessing re-runs a __main__ *script* in every forkserver child (seconds of imports per
    submission when the grader is driven from a script): grading.nbgrader_run leaves it out. On a
    Python whose forkserver launch differs, it falls back to the standard one, which still works."""
    import subprocess
    import sys

    from grading import nbgrader_run

    assert nbgrader_run.FAST_LAUNCH, "this Python's forkserver launch changed: update _LAUNCH_NAMES"
    marks = tmp_path / "imports.txt"
    script = tmp_path / "driver.py"
    script.write_text(
        "import os, sys\n"
        f"open({str(marks)!r}, 'a').write(__name__ + '\\n')\n"
        "if __name__ == '__main__':\n"
        "    from grading import nbgrader_run\n"
        f"    nbgrader_run.FAST_LAUNCH = {fast}\n"
        f"    proc = nbgrader_run.start(['--version'], {str(tmp_path)!r}, dict(os.environ), "
        f"{str(tmp_path / 'log')!r})\n"
        "    proc.join(120)\n"
        "    sys.exit(proc.exitcode)\n")
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "log").read_text().strip()  # nbgrader printed its version
    assert marks.read_text().split() == (["__main__"] if fast else ["__main__", "__mp_main__"])
