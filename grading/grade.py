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
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from tqdm.auto import tqdm

from . import feedback, nbcells, repair, sandbox, static, stopping, trusted
from .course import Course, CourseError
from .gradebook import (
    GradingError,
    collect,
    connect,
    digest,
    gradebook_url,
    open_gradebook,
    prepare,
    record,
    sqlite,
    students,
    template,
)
from .reports import Graded, check_table, export, summary

__all__ = ["GradingError", "Graded", "collect", "export", "gradebook_url", "grade_class", "grade_one", "main",
           "open_gradebook", "prepare", "template"]

_NOTES = {
    "timeout": "Your notebook did not finish within the time limit; the checks that had not run count as failed.",
    "error": "Your notebook stopped before the end (the kernel exited, was killed or ran out of memory); "
             "the checks that had not run count as failed.",
}


@dataclass
class _Run:
    """What a worker found for one submission (the writer turns it into scores and feedback)."""

    student: str
    verdicts: dict[str, trusted.Verdict]
    flags: list[str]
    notes: list[str]
    rejected: bool
    own: dict[str, float | None]
    private: Path | None
    digest: str
    seconds: float


def _events(notebook: Path, limits: sandbox.Limits) -> list[str]:
    """What the instructor should know from the graded notebook's outputs: timeouts, memory, floods."""
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:  # noqa: BLE001 - missing or unreadable: the autograde status says why
        return []
    found = []
    for i, cell in enumerate(nb.cells):
        label = nbcells.nbmeta(cell).get("grade_id") or f"cell {i + 1}"
        for out in cell.get("outputs", []):
            name = out.get("ename", "") if out.get("output_type") == "error" else ""
            value = str(out.get("evalue", ""))[:300]
            if name in ("CellTimeoutError", "KeyboardInterrupt", "TimeoutError") or "timed out" in value:
                found.append(f"{label}: stopped at the cell time limit ({limits.cell_timeout} s)")
            elif name == "MemoryError" or "can't allocate memory" in value or "not enough memory" in value:
                found.append(f"{label}: ran out of memory (limit {limits.memory >> 20} MiB)")
            elif out.get("output_type") == "stream" and "output limit" in str(out.get("text", ""))[-400:].lower():
                found.append(f"{label}: printed more than the output limit; the rest was dropped")
    return list(dict.fromkeys(found))


def _work(course: Path, lab: str, student: str, template_db: Path, limits: sandbox.Limits,
          run_experiments: bool = False) -> _Run:
    """A worker: sandboxed autograde in a private copy of the course, then the trusted replay.
    Cells tagged ``experiment`` (plots, timings, training runs; never graded) are left out
    unless ``run_experiments``: the student's own outputs of them stay in submitted/."""
    start = time.monotonic()
    layout = Course.load(course)
    source = nbformat.read(layout.source_path(lab), as_version=4)
    points = {nbcells.nbmeta(c)["grade_id"]: float(nbcells.nbmeta(c).get("points", 0))
              for c in source.cells if nbcells.is_test(c)}
    submitted = course / "submitted" / student / lab
    work = course / "records" / lab / student  # out/ in it is the only folder the sandbox may write
    if work.exists():
        shutil.rmtree(work)
    problem = sandbox.check_submission(submitted)
    if problem:
        verdicts = {g: trusted.Verdict(g, p, False, "not graded: the submission was refused")
                    for g, p in points.items()}
        return _Run(student, verdicts, [f"submission refused: {problem}"],
                    [f"Your submission could not be graded: {problem}"], True, {}, None, "", time.monotonic() - start)
    fingerprint = digest(submitted)
    private = layout.scratch(work, [lab])
    shutil.copy(template_db, private / "gradebook.db")
    shutil.copytree(submitted, private / "submitted" / student / lab)
    flags, notes = [], []
    try:  # metadata the student edited would make nbgrader refuse the whole notebook
        mine = private / "submitted" / student / lab / f"{lab}.ipynb"
        fixed, changes = repair.repair(nbformat.read(mine, as_version=4),
                                       nbformat.read(layout.student_path(lab), as_version=4))
        flags += [f"notebook repaired: {c}" for c in changes]
        if not run_experiments:  # ungraded, and every lab puts them after its last test cell
            fixed.cells = [c for c in fixed.cells if not nbcells.is_experiment(c)]
        nbformat.write(fixed, mine)
    except Exception as e:  # noqa: BLE001 - nbgrader will report what it makes of it
        flags.append(f"notebook could not be repaired ({type(e).__name__}: {e})")
    run = sandbox.autograde(private, lab, student, limits=limits, out_dir=work / "out", db_url=sqlite(private))
    verdicts, record_problem = trusted.replay(source, work / "out" / "records.bin")
    if run.status != "ok":
        flags.append(f"autograde {run.status}: {run.reason}")
        notes.append(_NOTES.get(run.status, _NOTES["error"]))
    elif record_problem:
        flags.append(f"record: {record_problem}")
    events = _events(private / "autograded" / student / lab / f"{lab}.ipynb", limits)
    flags += events
    notes += [f"Your notebook, {e}." for e in events]
    try:
        mine = nbformat.read(submitted / f"{lab}.ipynb", as_version=4)
        flags += [f"code: {f}" for f in static.scan(mine, source)]
    except Exception as e:  # noqa: BLE001 - an unreadable notebook is a finding, not a crash
        flags.append(f"code: the notebook could not be read ({type(e).__name__}: {e})")
    own: dict[str, float | None] = {}
    try:
        with connect(sqlite(private), layout.course_id) as gb:
            for grade in gb.find_submission_notebook(lab, lab, student).grades:
                if grade.cell_type == "code":
                    own[grade.name] = grade.auto_score
    except MissingEntry:
        pass
    return _Run(student, verdicts, flags, notes, False, own, private, fingerprint, time.monotonic() - start)


def _finish(course: Path, lab: str, gb: Gradebook, run: _Run) -> Graded:
    """The single writer: gradebook, graded notebook for formgrader, feedback, result file."""
    flags = list(run.flags)
    record(gb, lab, run.student, run.verdicts, flags, run.own)
    if run.private is not None:
        graded_nb = run.private / "autograded" / run.student / lab
        target = course / "autograded" / run.student / lab
        if target.exists():
            shutil.rmtree(target)
        if graded_nb.is_dir():
            shutil.copytree(graded_nb, target)
        shutil.rmtree(run.private)
    feedback.write(course, lab, run.student, run.verdicts.values(), run.notes)
    status = "failed" if run.rejected else "flagged" if flags else "graded"
    result = Graded(run.student, status, sum(v.score for v in run.verdicts.values()),
                    sum(v.points for v in run.verdicts.values()), {g: v.score for g, v in run.verdicts.items()},
                    run.own, {g: v.message for g, v in run.verdicts.items() if not v.passed}, flags, run.seconds)
    done = course / "reports" / lab / "results"
    done.mkdir(parents=True, exist_ok=True)
    partial = done / f".{run.student}.json.part"  # a killed run leaves a whole file or none
    partial.write_text(json.dumps({"digest": run.digest, **asdict(result)}))
    os.replace(partial, done / f"{run.student}.json")
    return result


def grade_one(course: Path, lab: str, student: str, *, limits: sandbox.Limits = sandbox.Limits(),
              run_experiments: bool = False) -> Graded:
    """Grade one submission now (after prepare()): sandbox, trusted replay, gradebook, feedback."""
    course = Path(course).resolve()
    run = _work(course, lab, student, template(course, lab), limits, run_experiments)
    with open_gradebook(course) as gb:
        return _finish(course, lab, gb, run)


def _on_file(course: Path, lab: str, name: str) -> Graded | None:
    """The result on file for ``name`` if it was graded from the files submitted now."""
    try:
        data = json.loads((course / "reports" / lab / "results" / f"{name}.json").read_text())
        saved_digest = data.pop("digest")
        saved = Graded(**data)
    except (OSError, ValueError, KeyError, TypeError):  # none, or unreadable: grade it (again)
        return None
    submitted = course / "submitted" / name / lab
    return saved if saved_digest == (digest(submitted) if sandbox.check_submission(submitted) is None else "") else None


def grade_class(course: Path, lab: str, *, uploads: Path | None = None, only: list[str] | None = None,
                limits: sandbox.Limits = sandbox.Limits(), collect_first: bool = True,
                workers: int | None = None, regrade: bool = False, run_experiments: bool = False) -> list[Graded]:
    """Grade every submission of ``lab`` in ``workers`` parallel sandboxes (default: one per core).

    Resumable: a submission whose result is on file for the same submitted files is not graded
    again (``regrade=True`` grades everything again). Only this process writes the gradebook.
    Ctrl-C or SIGTERM (from the main thread) stops it at once with :class:`stopping.Stopped`:
    the running sandboxes are killed, what was recorded stays recorded, nothing else is."""
    course = Path(course).resolve()
    names: list[str] = []
    results: dict[str, Graded] = {}
    with stopping.handling():
        try:
            sandbox.allow_runs()
            sandbox.preflight()  # a machine that cannot sandbox says so before anything is graded
            prepare(course, lab)
            if collect_first:
                problem = collect(course, lab, uploads)
                if problem:
                    print(problem, file=sys.stderr)
            names = only or students(course, lab)
            for name in names:
                saved = None if regrade else _on_file(course, lab, name)
                if saved is not None:
                    results[name] = saved
            todo = [n for n in names if n not in results]
            if todo:
                _grade(course, lab, todo, len(names), results, template(course, lab), limits,
                       max(1, workers or os.cpu_count() or 1), run_experiments)
        except BaseException:
            if stopping.requested():  # Stopped, or what the stop made fail
                where = (f"{len(results)} of {len(names)} submissions graded and recorded" if names
                         else "before any submission was graded")
                print(f"\nstopped: {where}; run the same command again to grade the rest", file=sys.stderr)
            raise
    return [results[n] for n in names]


def _grade(course: Path, lab: str, todo: list[str], total: int, results: dict[str, Graded], template_db: Path,
           limits: sandbox.Limits, workers: int, run_experiments: bool) -> None:
    """Grade ``todo`` in ``workers`` threads (each drives one sandbox) into ``results``; this
    thread alone records them. Stopped: kills the sandboxes and waits for the threads, and
    records nothing more (a sandbox killed by the stop is not the student's failure)."""
    pool = ThreadPoolExecutor(workers)
    try:
        with open_gradebook(course) as gb:
            futures = {pool.submit(_work, course, lab, name, template_db, limits, run_experiments): name
                       for name in todo}
            pending = set(futures)
            with tqdm(total=total, initial=len(results), desc=f"grading {lab}", unit="submission") as bar:
                while pending:
                    done, pending = stopping.wait_for(pending)
                    for future in done:
                        stopping.check()
                        name = futures[future]
                        try:
                            results[name] = _finish(course, lab, gb, future.result())
                        except Exception as e:  # noqa: BLE001 - the grader's own failure on one submission
                            results[name] = Graded(name, "failed", 0.0, 0.0,
                                                   flags=[f"grading failed: {type(e).__name__}: {e}"])
                        bar.update()
    except BaseException:
        sandbox.stop_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grading", description=__doc__.split("\n\n")[0])
    ap.add_argument("lab", help="the lab to grade, e.g. lab1-init")
    ap.add_argument("--course", type=Path, default=Path.cwd(), help="the course directory (default: here)")
    ap.add_argument("--from", dest="uploads", type=Path, help="a folder of uploaded <student>_<lab>.ipynb files")
    ap.add_argument("--no-collect", action="store_true", help="grade what is already in submitted/")
    ap.add_argument("--student", action="append", help="grade only this student (repeatable)")
    ap.add_argument("--cell-timeout", type=int, default=sandbox.Limits.cell_timeout)
    ap.add_argument("--timeout", type=int, default=sandbox.Limits.submission_timeout, help="seconds per submission")
    ap.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: one per core)")
    ap.add_argument("--regrade", action="store_true", help="grade again what was already graded")
    ap.add_argument("--run-experiments", action="store_true",
                    help="also run the ungraded experiment cells (plots, timings, training)")
    args = ap.parse_args(argv)
    try:
        Course.load(args.course).check_lab(args.lab)
    except CourseError as e:
        ap.error(str(e))
    limits = sandbox.Limits(cell_timeout=args.cell_timeout, submission_timeout=args.timeout)
    results: list[Graded] = []
    try:
        with stopping.handling():
            results = grade_class(args.course, args.lab, uploads=args.uploads, only=args.student, limits=limits,
                                  collect_first=not args.no_collect, workers=args.workers, regrade=args.regrade,
                                  run_experiments=args.run_experiments)
            paths = export(args.course, args.lab, results)
    except stopping.Stopped as e:
        if results:
            print(f"\nstopped during the export: all {len(results)} submissions are graded and recorded; "
                  "run the same command again to export the reports", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:  # not from the main thread's handler (e.g. no handler could be installed)
        return 130
    except (GradingError, sandbox.SandboxError) as e:
        print(f"python -m grading: {e}", file=sys.stderr)
        return 2
    print(summary(results))
    print(check_table(results))
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))
    print(f"feedback: {args.course / 'feedback'}/<student>/{args.lab}/  "
          f"(send with: nbgrader release_feedback {args.lab})")
    return 0
