"""Grade a lab for a class: collect, run each submission in the sandbox, score it with the trusted
replay, record the scores in nbgrader's gradebook, write feedback, export the grades.

    python -m grading lab1-init                      # submissions from nbgrader's exchange
    python -m grading lab1-init --from uploads/      # files "<student>_lab1-init.ipynb" (e.g. from Colab)
    make grade LAB=lab1-init [FROM=uploads/]

nbgrader stays the workflow engine (collect, gradebook, formgrader, release_feedback, export);
this command replaces only what nbgrader cannot do safely: it runs student code in a sandbox
(:mod:`grading.sandbox`), decides scores outside the student's process (:mod:`grading.trusted`),
and writes feedback without the hidden tests (:mod:`grading.feedback`). Whatever one submission
does, it costs that submission its own points, with a readable reason in the report.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from tqdm.auto import tqdm

from . import feedback, nbcells, sandbox, static, trusted

COURSE_ID = "dl-course"
# nbgrader's Gradebook shells out to `alembic` through PATH: this environment's bin comes first.
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
_NOTES = {
    "timeout": "Your notebook did not finish within the time limit; the checks that had not run count as failed.",
    "error": "Your notebook stopped before the end (the kernel exited, was killed or ran out of memory); "
             "the checks that had not run count as failed.",
}


@dataclass
class Graded:
    """The outcome for one submission, as written to the report."""

    student: str
    status: str                      # "graded", "flagged" (graded, needs a look), "failed" (not graded)
    score: float
    max_score: float
    checks: dict[str, float] = field(default_factory=dict)       # grade_id -> trusted points
    notebook: dict[str, float | None] = field(default_factory=dict)  # grade_id -> the notebook's own points
    messages: dict[str, str] = field(default_factory=dict)      # grade_id -> failure message
    flags: list[str] = field(default_factory=list)              # for the instructor
    seconds: float = 0.0


def nbgrader(*args: str, course: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("nbgrader")
    return subprocess.run([str(exe), *args], cwd=course, capture_output=True, text=True, timeout=timeout)


def _db(course: Path) -> str:
    return f"sqlite:///{Path(course).resolve() / 'gradebook.db'}"


def prepare(course: Path, lab: str) -> None:
    """Make sure the gradebook knows the lab (its test cells are restored from there)."""
    try:
        with Gradebook(_db(course), COURSE_ID) as gb:
            gb.find_notebook(lab, lab)
            return
    except MissingEntry:
        pass
    run = nbgrader("generate_assignment", lab, "--force", course=course)
    if run.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment {lab} failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")


def collect(course: Path, lab: str, uploads: Path | None) -> str:
    """Bring submissions into submitted/: uploaded files via zip_collect, else the exchange."""
    if uploads is not None:
        archive = course / "downloaded" / lab / "archive"
        if archive.exists():
            shutil.rmtree(archive)
        archive.mkdir(parents=True)
        for item in sorted(Path(uploads).iterdir()):
            if item.is_file() and not item.is_symlink():
                shutil.copy(item, archive / item.name)
        run = nbgrader("zip_collect", lab, "--force", course=course)
    else:
        run = nbgrader("collect", lab, "--update", course=course)
    log = (run.stdout + run.stderr).strip()
    if run.returncode != 0:
        return f"collect failed (grading what is already in submitted/): {log.splitlines()[-1] if log else ''}"
    return ""


def students(course: Path, lab: str) -> list[str]:
    root = Path(course) / "submitted"
    return sorted(p.name for p in root.iterdir() if (p / lab).exists()) if root.is_dir() else []


def grade_one(course: Path, lab: str, student: str, *, limits: sandbox.Limits = sandbox.Limits()) -> Graded:
    """Sandboxed autograde, trusted replay, gradebook, feedback for one submission."""
    course = Path(course).resolve()
    start = time.monotonic()
    source = nbformat.read(course / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    points = {nbcells.nbmeta(c)["grade_id"]: float(nbcells.nbmeta(c).get("points", 0))
              for c in source.cells if nbcells.is_test(c)}
    out_dir = course / "records" / lab / student  # the only folder the sandbox may write to
    if out_dir.exists():
        shutil.rmtree(out_dir)
    run = sandbox.autograde(course, lab, student, limits=limits, out_dir=out_dir)
    flags, notes = [], []
    if run.status == "rejected":
        verdicts = {g: trusted.Verdict(g, p, False, "not graded: the submission was refused") for g, p in points.items()}
        flags.append(f"submission refused: {run.reason}")
        notes.append(f"Your submission could not be graded: {run.reason}")
    else:
        verdicts, problem = trusted.replay(source, out_dir / "records.bin")
        if run.status != "ok":
            flags.append(f"autograde {run.status}: {run.reason}")
            notes.append(_NOTES.get(run.status, _NOTES["error"]))
        if problem and run.status == "ok":
            flags.append(f"record: {problem}")
    submitted = course / "submitted" / student / lab / f"{lab}.ipynb"
    if run.status != "rejected":
        try:
            flags += [f"code: {f}" for f in static.scan(nbformat.read(submitted, as_version=4), source, lab)]
        except Exception as e:  # noqa: BLE001 - an unreadable notebook is a finding, not a crash
            flags.append(f"code: the notebook could not be read ({type(e).__name__}: {e})")
    notebook_scores = _record(course, lab, student, verdicts, flags)
    for gid, own in notebook_scores.items():
        if own is not None and own > verdicts[gid].score:
            flags.append(f"{gid}: the notebook's own tests gave {own:g} points, the trusted check "
                         f"{verdicts[gid].score:g} ({verdicts[gid].message})")
    if flags:
        _record(course, lab, student, verdicts, flags)
    feedback.write(course, lab, student, verdicts.values(), notes)
    status = "failed" if run.status == "rejected" else "flagged" if flags else "graded"
    return Graded(student, status, sum(v.score for v in verdicts.values()), sum(points.values()),
                  {g: v.score for g, v in verdicts.items()}, notebook_scores,
                  {g: v.message for g, v in verdicts.items() if not v.passed}, flags, time.monotonic() - start)


def _record(course: Path, lab: str, student: str, verdicts: dict[str, trusted.Verdict],
            flags: list[str]) -> dict[str, float | None]:
    """Put the trusted scores into the gradebook (flagging the notebook if needed); return the
    scores the notebook's own run had recorded, per test cell (None where it recorded none)."""
    with Gradebook(_db(course), COURSE_ID) as gb:
        gb.update_or_create_student(student)
        try:
            gb.find_submission(lab, student)
        except MissingEntry:
            gb.add_submission(lab, student)
        nb = gb.find_submission_notebook(lab, lab, student)
        own: dict[str, float | None] = {}
        for grade in nb.grades:
            if grade.name in verdicts and grade.cell_type == "code":
                own[grade.name] = grade.auto_score if grade.name not in own else own[grade.name]
                grade.auto_score = verdicts[grade.name].score
                grade.needs_manual_grade = False
        nb.flagged = bool(flags)
        gb.db.commit()
    return own


def export(course: Path, lab: str, results: list[Graded]) -> dict[str, Path]:
    """nbgrader's grades CSV (every lab), plus this lab's report: JSON and a CSV of the checks."""
    reports = Path(course) / "reports" / lab
    reports.mkdir(parents=True, exist_ok=True)
    run = nbgrader("export", f"--to={reports / 'grades.csv'}", course=course)
    if run.returncode != 0:
        raise RuntimeError(f"nbgrader export failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    (reports / "report.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    with open(reports / "checks.csv", "w", newline="") as fh:
        checks = sorted({g for r in results for g in r.checks})
        writer = csv.writer(fh)
        writer.writerow(["student", "status", "score", "max_score", *checks, "flags"])
        for r in results:
            writer.writerow([r.student, r.status, r.score, r.max_score, *(r.checks.get(g, "") for g in checks),
                             " | ".join(r.flags)])
    return {"grades": reports / "grades.csv", "report": reports / "report.json", "checks": reports / "checks.csv"}


def summary(results: list[Graded]) -> str:
    lines = [f"{len(results)} submissions: "
             + ", ".join(f"{sum(r.status == s for r in results)} {s}" for s in ("graded", "flagged", "failed"))]
    for r in results:
        if r.flags:
            lines.append(f"  {r.student} ({r.status}, {r.score:g}/{r.max_score:g}):")
            lines += [f"    - {f}" for f in r.flags[:8]] + (["    - ..."] if len(r.flags) > 8 else [])
    return "\n".join(lines)


def grade_class(course: Path, lab: str, *, uploads: Path | None = None, only: list[str] | None = None,
                limits: sandbox.Limits = sandbox.Limits(), collect_first: bool = True) -> list[Graded]:
    course = Path(course).resolve()
    prepare(course, lab)
    if collect_first:
        problem = collect(course, lab, uploads)
        if problem:
            print(problem, file=sys.stderr)
    names = only or students(course, lab)
    results = []
    for student in tqdm(names, desc=f"grading {lab}", unit="submission"):
        results.append(grade_one(course, lab, student, limits=limits))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grading", description=__doc__.split("\n\n")[0])
    ap.add_argument("lab", help="the lab to grade, e.g. lab1-init")
    ap.add_argument("--course", type=Path, default=Path.cwd(), help="the course directory (default: here)")
    ap.add_argument("--from", dest="uploads", type=Path, help="a folder of uploaded <student>_<lab>.ipynb files")
    ap.add_argument("--no-collect", action="store_true", help="grade what is already in submitted/")
    ap.add_argument("--student", action="append", help="grade only this student (repeatable)")
    ap.add_argument("--cell-timeout", type=int, default=sandbox.Limits.cell_timeout)
    ap.add_argument("--timeout", type=int, default=sandbox.Limits.submission_timeout, help="seconds per submission")
    args = ap.parse_args(argv)
    if not (args.course / "solutions" / args.lab / f"{args.lab}.ipynb").is_file():
        ap.error(f"no lab {args.lab!r} in {args.course}/solutions (run from the course directory or pass --course)")
    limits = sandbox.Limits(cell_timeout=args.cell_timeout, submission_timeout=args.timeout)
    results = grade_class(args.course, args.lab, uploads=args.uploads, only=args.student, limits=limits,
                          collect_first=not args.no_collect)
    paths = export(args.course, args.lab, results)
    print(summary(results))
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))
    print(f"feedback: {args.course / 'feedback'}/<student>/{args.lab}/  (send with: nbgrader release_feedback {args.lab})")
    return 0
