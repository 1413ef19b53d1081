"""A class of 30 submissions graded in parallel, stopped twice (Ctrl-C, then a killed process) and
resumed: at the end every student has exactly the expected score, recorded once, and nothing
was graded twice or left running."""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

import labtools
from generate_labs import make_course
from grading import grade
from test_adversarial import PATCH, REF, WRONG, student_notebook
from test_labs import catalogue

pytestmark = pytest.mark.pipeline
LAB = "lab3-conv"


def the_class() -> dict[str, tuple[dict, float]]:
    """30 students: correct, one typical mistake, blank, and a few that cheat; expected scores."""
    points = labtools.tests(labtools.read(labtools.source_path(LAB)))
    full = float(sum(points.values()))
    mistakes = catalogue(LAB).MISTAKES
    rng = random.Random(7)
    names = sorted(mistakes)
    students: dict[str, tuple[dict, float]] = {}
    for i in range(12):
        students[f"s{i:02d}-correct"] = (REF, full)
    for i, name in enumerate(rng.sample(names, 10)):
        gid, source, failing = mistakes[name]
        students[f"s{12 + i:02d}-mistake"] = ({**REF, gid: source}, full - sum(points[g] for g in failing))
    for i in range(4):
        students[f"s{22 + i:02d}-blank"] = ({}, 0.0)
    students["s26-patch"] = ({**WRONG, "conv2d_naive": PATCH + WRONG["conv2d_naive"]}, 0.0)
    students["s27-transformer"] = ({**REF, "conv2d_naive": REF["conv2d_naive"] + "\nget_ipython()"
                                    ".input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n"}, 0.0)
    students["s28-exit"] = ({**REF, "max_pool2d": "import os\nos._exit(1)\n" + REF["max_pool2d"]}, full - 3)
    students["s29-correct"] = (REF, full)
    return students


def results_on_file(course: Path) -> dict[str, float]:
    folder = course / "reports" / LAB / "results"
    return {p.stem: p.stat().st_mtime for p in folder.glob("*.json")} if folder.is_dir() else {}


def start(course: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grading", LAB, "--no-collect", "--workers=2", "--cell-timeout=30"],
                            cwd=course, env={**os.environ, "PYTHONPATH": str(labtools.ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_after(proc: subprocess.Popen, course: Path, count: int, sig: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while len(results_on_file(course)) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "grading made no progress"
        time.sleep(0.5)
    proc.send_signal(sig)
    proc.communicate(timeout=120)


def leftovers(course: Path) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(course) in cmd and ("nbgrader" in cmd or "bwrap" in cmd or "grading" in cmd):
            found.append(cmd[:200])
    return found


def test_interrupted_and_resumed_class_run_grades_everyone_exactly_once(tmp_path):
    course = make_course(tmp_path, (LAB,))
    students = the_class()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for sid, (answers, _) in students.items():
        nbformat.write(student_notebook(answers), uploads / f"{sid}_{LAB}.ipynb")
    grade.prepare(course, LAB)
    assert grade.collect(course, LAB, uploads) == ""

    # 1. Ctrl-C after a few submissions: the run says how far it got and stops its sandboxes
    first = start(course)
    stop_after(first, course, 4, signal.SIGINT)
    assert first.returncode == 130
    time.sleep(1)
    assert not leftovers(course)
    after_first = results_on_file(course)
    assert 4 <= len(after_first) < len(students)

    # 2. resumed, then killed outright: its autograde children die with it
    second = start(course)
    stop_after(second, course, len(after_first) + 6, signal.SIGKILL)
    time.sleep(2)
    assert not leftovers(course), leftovers(course)
    after_second = results_on_file(course)
    assert all(after_second[s] == t for s, t in after_first.items()), "a finished submission was graded again"

    # 3. resumed to the end
    third = start(course)
    out, err = third.communicate(timeout=1200)
    assert third.returncode == 0, out[-3000:] + err[-3000:]
    final = results_on_file(course)
    assert set(final) == set(students)
    assert all(final[s] == t for s, t in after_second.items()), "a finished submission was graded again"
    assert f"{len(students)} submissions:" in out

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        subs = gb.assignment_submissions(LAB)
        assert sorted(s.student_id for s in subs) == sorted(students)
        for sid, (_, expected) in students.items():
            assert gb.find_submission(LAB, sid).code_score == pytest.approx(expected), sid
    with open(course / "reports" / LAB / "grades.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["assignment"] == LAB]
    assert sorted(r["student_id"] for r in rows) == sorted(students)
    assert {r["student_id"]: float(r["raw_score"]) for r in rows} == {s: e for s, (_, e) in students.items()}
    report = json.loads((course / "reports" / LAB / "report.json").read_text())
    assert len(report) == len(students)
    assert (course / "reports" / LAB / "scores.png").stat().st_size > 1000
    table = (course / "reports" / LAB / "checks.md").read_text()
    assert "| test_conv2d_naive |" in table
