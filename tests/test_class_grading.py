"""A class of 30 submissions graded in parallel, stopped four times and resumed each time: Ctrl-C
while the first submissions are in their sandboxes, Ctrl-C after a few results, SIGKILL, and
Ctrl-C during the final export. Each Ctrl-C exits with 130 within seconds and says how far the
run got; at the end every student has exactly the expected score, recorded once, and nothing was
graded twice or left running."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from grading import grade
from grading.course import Course
from support import LAB, results_on_file, student_notebook, the_class

pytestmark = pytest.mark.pipeline


def start(course: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grading", LAB, "--no-collect", "--workers=2", "--cell-timeout=30"],
                            cwd=course,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_when(proc: subprocess.Popen, ready, sig: int, timeout: float = 600) -> tuple[str, float]:
    """Send ``sig`` as soon as ``ready()``; returns the run's stderr and how long it took to exit."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "grading made no progress"
        time.sleep(0.05)
    proc.send_signal(sig)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=120)
    return err, time.monotonic() - sent


def running(course: Path, *words: str) -> bool:
    """A process of this course's run whose command line has every one of ``words``."""
    return any(all(w in cmd for w in words) for cmd in leftovers(course))


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
    course = Course.load().scratch(tmp_path, (LAB,))
    students = the_class()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for sid, (answers, _) in students.items():
        nbformat.write(student_notebook(answers), uploads / f"{sid}_{LAB}.ipynb")
    grade.prepare(course, LAB)
    assert grade.collect(course, LAB, uploads) == ""

    # 1. Ctrl-C while the first submissions are in their sandboxes: nothing is recorded
    first = start(course)
    err, took = stop_when(first, lambda: running(course, "bwrap"), signal.SIGINT)
    assert first.returncode == 130, err[-3000:]
    assert f"stopped: 0 of {len(students)} submissions graded and recorded" in err, err[-3000:]
    assert took < 30
    time.sleep(1)
    assert not leftovers(course), leftovers(course)
    assert not results_on_file(course)

    # 2. Ctrl-C after a few submissions: the run says how far it got and stops its sandboxes
    second = start(course)
    err, took = stop_when(second, lambda: len(results_on_file(course)) >= 4, signal.SIGINT)
    assert second.returncode == 130, err[-3000:]
    after_second = results_on_file(course)
    assert f"stopped: {len(after_second)} of {len(students)} submissions graded and recorded" in err, err[-3000:]
    assert took < 30
    time.sleep(1)
    assert not leftovers(course), leftovers(course)
    assert 4 <= len(after_second) < len(students)

    # 3. resumed, then killed outright: its autograde children die with it
    third = start(course)
    stop_when(third, lambda: len(results_on_file(course)) >= len(after_second) + 6, signal.SIGKILL)
    time.sleep(2)
    assert not leftovers(course), leftovers(course)
    after_third = results_on_file(course)
    assert all(after_third[s] == t for s, t in after_second.items()), "a finished submission was graded again"

    # 4. resumed to the end, and Ctrl-C during the final export: every result stays on file
    fourth = start(course)
    err, took = stop_when(fourth, lambda: running(course, "nbgrader", "export"), signal.SIGINT)
    assert fourth.returncode == 130, err[-3000:]
    assert f"stopped during the export: all {len(students)} submissions are graded and recorded" in err, err[-3000:]
    assert took < 30
    time.sleep(1)
    assert not leftovers(course), leftovers(course)
    after_fourth = results_on_file(course)
    assert set(after_fourth) == set(students)
    assert all(after_fourth[s] == t for s, t in after_third.items()), "a finished submission was graded again"
    assert not (course / "reports" / LAB / "grades.csv").exists()

    # 5. the same command again: nothing graded again, the reports exported
    fifth = start(course)
    out, err = fifth.communicate(timeout=1200)
    assert fifth.returncode == 0, out[-3000:] + err[-3000:]
    assert results_on_file(course) == after_fourth, "a finished submission was graded again"
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
