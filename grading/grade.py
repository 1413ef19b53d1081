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
import contextlib
import csv
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
import nbgrader.api as nbgrader_api
from nbgrader import __version__ as nbgrader_version
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from tqdm.auto import tqdm

from . import feedback, nbcells, repair, sandbox, static, stopping, trusted

COURSE_ID = "dl-course"
# nbgrader's Gradebook shells out to `alembic` through PATH: this environment's bin comes first.
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
# ... and it takes seconds: once per process is enough (every Gradebook() would run it again).
nbgrader_api.get_alembic_version = functools.lru_cache(maxsize=1)(nbgrader_api.get_alembic_version)
_NOTES = {
    "timeout": "Your notebook did not finish within the time limit; the checks that had not run count as failed.",
    "error": "Your notebook stopped before the end (the kernel exited, was killed or ran out of memory); "
             "the checks that had not run count as failed.",
}


class GradingError(RuntimeError):
    """The class cannot be graded (gradebook unreachable, nbgrader failed): the message says why."""


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
    """``nbgrader <args>`` in ``course``; killed, and :class:`stopping.Stopped` raised, on Ctrl-C."""
    exe = Path(sys.executable).with_name("nbgrader")
    return stopping.run([str(exe), *args], cwd=course, timeout=timeout)


def _sqlite(folder: Path) -> str:
    """The SQLite gradebook in ``folder`` (the template and every worker's private copy)."""
    return f"sqlite:///{Path(folder).resolve() / 'gradebook.db'}"


def gradebook_url(course: Path) -> str:
    """The course's gradebook, as nbgrader itself finds it: ``CourseDirectory.db_url`` from
    nbgrader's configuration (system-wide, the user's, the course's ``nbgrader_config.py``),
    else ``sqlite:///<course>/gradebook.db``. A PostgreSQL gradebook
    (``postgresql+psycopg://user:password@host/db``) needs ``pip install -e ".[postgres]"``."""
    from nbgrader.apps import NbGraderApp
    from nbgrader.coursedir import CourseDirectory

    app = NbGraderApp()
    with contextlib.chdir(course):  # nbgrader reads nbgrader_config.py from the working directory (main thread only)
        app.load_config_file()
    return CourseDirectory(config=app.config, root=str(Path(course).resolve())).db_url


def open_gradebook(course: Path) -> Gradebook:
    """nbgrader's Gradebook of ``course`` (see :func:`gradebook_url`), with a clear error when its
    database cannot be reached."""
    url = gradebook_url(course)
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        return Gradebook(url, COURSE_ID)
    except ModuleNotFoundError as e:
        raise GradingError(f"the gradebook {shown} (CourseDirectory.db_url) needs the database driver "
                           f"{e.name!r}, which is not installed. `pip install -e \".[postgres]\"` installs psycopg, "
                           "which URLs of the form postgresql+psycopg://user:password@host/db use") from e
    except OperationalError as e:
        raise GradingError(f"cannot open the gradebook {shown} (CourseDirectory.db_url): "
                           f"{str(e.orig).strip() or e}") from e


def prepare(course: Path, lab: str) -> None:
    """Make sure the gradebook knows the lab (its test cells are restored from there)."""
    try:
        with open_gradebook(course) as gb:
            gb.find_notebook(lab, lab)
            return
    except MissingEntry:
        pass
    run = nbgrader("generate_assignment", lab, "--force", course=course)
    if run.returncode != 0:
        raise GradingError(f"nbgrader generate_assignment {lab} failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")


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


def _digest(folder: Path) -> str:
    """A fingerprint of a submission folder (names and bytes of its regular files)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _template_key(course: Path, lab: str) -> str:
    """What the template gradebook is made from: nbgrader's version and configuration, the lab's source."""
    h = hashlib.sha256(f"nbgrader {nbgrader_version}\0".encode())
    h.update((Path(course) / "nbgrader_config.py").read_bytes() + b"\0")
    h.update(_digest(Path(course) / "solutions" / lab).encode())
    return h.hexdigest()


def template(course: Path, lab: str) -> Path:
    """A gradebook that knows the lab and nothing else. Every submission is autograded in a private
    copy of the course with a copy of it, so nbgrader's writes never meet, and a submission never
    touches the real gradebook. Made once (``nbgrader generate_assignment``, seconds) and kept
    under ``records/.template/<lab>/`` until the lab's source or nbgrader's configuration changes;
    nothing ever writes to it but this function."""
    root = Path(course) / "records" / ".template" / lab
    key = _template_key(course, lab)
    stamp = root / "fingerprint"
    if (root / "gradebook.db").is_file() and stamp.is_file() and stamp.read_text() == key:
        return root / "gradebook.db"
    if root.exists():
        shutil.rmtree(root)
    (root / "solutions").mkdir(parents=True)
    shutil.copy(Path(course) / "nbgrader_config.py", root)
    shutil.copytree(Path(course) / "solutions" / lab, root / "solutions" / lab)
    run = nbgrader("generate_assignment", lab, "--force", f"--CourseDirectory.db_url={_sqlite(root)}", course=root)
    if run.returncode != 0:
        raise GradingError(f"nbgrader generate_assignment {lab} failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    stamp.write_text(key)  # last: an interrupted build is made again next time
    return root / "gradebook.db"


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
    source = nbformat.read(course / "solutions" / lab / f"{lab}.ipynb", as_version=4)
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
    digest = _digest(submitted)
    private = work / "course"
    (private / "solutions").mkdir(parents=True)
    shutil.copy(course / "nbgrader_config.py", private)
    shutil.copytree(course / "solutions" / lab, private / "solutions" / lab)
    shutil.copy(template_db, private / "gradebook.db")
    shutil.copytree(submitted, private / "submitted" / student / lab)
    flags, notes = [], []
    try:  # metadata the student edited would make nbgrader refuse the whole notebook
        mine = private / "submitted" / student / lab / f"{lab}.ipynb"
        fixed, changes = repair.repair(nbformat.read(mine, as_version=4),
                                       nbformat.read(course / "labs" / lab / f"{lab}.ipynb", as_version=4))
        flags += [f"notebook repaired: {c}" for c in changes]
        if not run_experiments:  # ungraded, and every lab puts them after its last test cell
            fixed.cells = [c for c in fixed.cells if not nbcells.is_experiment(c)]
        nbformat.write(fixed, mine)
    except Exception as e:  # noqa: BLE001 - nbgrader will report what it makes of it
        flags.append(f"notebook could not be repaired ({type(e).__name__}: {e})")
    run = sandbox.autograde(private, lab, student, limits=limits, out_dir=work / "out", db_url=_sqlite(private))
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
        with Gradebook(_sqlite(private), COURSE_ID) as gb:
            for grade in gb.find_submission_notebook(lab, lab, student).grades:
                if grade.cell_type == "code":
                    own[grade.name] = grade.auto_score
    except MissingEntry:
        pass
    return _Run(student, verdicts, flags, notes, False, own, private, digest, time.monotonic() - start)


def _record(gb: Gradebook, lab: str, student: str, verdicts: dict[str, trusted.Verdict],
            flags: list[str], own: dict[str, float | None]) -> None:
    """Put the trusted scores into the gradebook. Adds to ``flags`` every test cell where the
    notebook's own run (``own``) claimed more than the trusted check gives, and flags the
    notebook for formgrader if there is any flag."""
    gb.update_or_create_student(student)
    try:
        gb.find_submission(lab, student)
    except MissingEntry:
        with warnings.catch_warnings():
            # nbgrader builds the submission's rows before adding them to the session, and
            # SQLAlchemy's autoflush warns about each one ("... not in session"); they are
            # added right after, and tests/test_class_grading.py checks every score is there.
            warnings.filterwarnings("ignore", message=r"Object of type <Submitted\w+> not in session")
            gb.add_submission(lab, student)
    nb = gb.find_submission_notebook(lab, lab, student)
    for grade in nb.grades:
        if grade.name in verdicts and grade.cell_type == "code":
            grade.auto_score = verdicts[grade.name].score
            grade.needs_manual_grade = False
    for gid, score in own.items():  # the notebook claimed more than its code earns: look at it
        if gid in verdicts and score is not None and score > verdicts[gid].score:
            flags.append(f"{gid}: the notebook's own tests gave {score:g} points, the trusted check "
                         f"{verdicts[gid].score:g} ({verdicts[gid].message})")
    nb.flagged = bool(flags)
    gb.db.commit()


def _finish(course: Path, lab: str, gb: Gradebook, run: _Run) -> Graded:
    """The single writer: gradebook, graded notebook for formgrader, feedback, result file."""
    flags = list(run.flags)
    _record(gb, lab, run.student, run.verdicts, flags, run.own)
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


def check_table(results: list[Graded]) -> str:
    """How many graded students passed each check (a markdown table, in notebook order)."""
    graded = [r for r in results if r.status != "failed"]
    checks = list(dict.fromkeys(g for r in graded for g in r.checks))
    lines = ["| check | passed | of | % |", "|---|---:|---:|---:|"]
    for g in checks:
        passed = sum(r.checks.get(g, 0) > 0 for r in graded)
        lines.append(f"| {g} | {passed} | {len(graded)} | {100 * passed / max(len(graded), 1):.0f} |")
    return "\n".join(lines)


def score_histogram(results: list[Graded], path: Path, lab: str) -> Path:
    """A histogram of the autograded scores (matplotlib, written to ``path``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = [r.score for r in results if r.status != "failed"]
    top = max([r.max_score for r in results] + [1.0])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(scores, bins=[b - 0.5 for b in range(int(top) + 2)], color="#4c72b0", edgecolor="white")
    ax.set_xlabel(f"autograded score (of {top:g})")
    ax.set_ylabel("students")
    ax.set_title(f"{lab}: {len(scores)} graded submissions")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def export(course: Path, lab: str, results: list[Graded]) -> dict[str, Path]:
    """nbgrader's grades CSV (every lab); this lab's report: JSON, a CSV of every check of every
    student, a table of how many passed each check, and a histogram of the scores."""
    reports = Path(course) / "reports" / lab
    reports.mkdir(parents=True, exist_ok=True)
    run = nbgrader("export", f"--to={reports / 'grades.csv'}", course=course)
    if run.returncode != 0:
        raise GradingError(f"nbgrader export failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    (reports / "report.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    with open(reports / "checks.csv", "w", newline="") as fh:
        checks = list(dict.fromkeys(g for r in results for g in r.checks))
        writer = csv.writer(fh)
        writer.writerow(["student", "status", "score", "max_score", *checks, "flags"])
        for r in results:
            writer.writerow([r.student, r.status, r.score, r.max_score, *(r.checks.get(g, "") for g in checks),
                             " | ".join(r.flags)])
    (reports / "checks.md").write_text(check_table(results) + "\n")
    return {"grades": reports / "grades.csv", "report": reports / "report.json", "checks": reports / "checks.csv",
            "check table": reports / "checks.md", "histogram": score_histogram(results, reports / "scores.png", lab)}


def summary(results: list[Graded]) -> str:
    lines = [f"{len(results)} submissions: "
             + ", ".join(f"{sum(r.status == s for r in results)} {s}" for s in ("graded", "flagged", "failed"))]
    for r in results:
        if r.flags:
            lines.append(f"  {r.student} ({r.status}, {r.score:g}/{r.max_score:g}):")
            lines += [f"    - {f}" for f in r.flags[:8]] + (["    - ..."] if len(r.flags) > 8 else [])
    return "\n".join(lines)


def _on_file(course: Path, lab: str, name: str) -> Graded | None:
    """The result on file for ``name`` if it was graded from the files submitted now."""
    try:
        data = json.loads((course / "reports" / lab / "results" / f"{name}.json").read_text())
        digest = data.pop("digest")
        saved = Graded(**data)
    except (OSError, ValueError, KeyError, TypeError):  # none, or unreadable: grade it (again)
        return None
    submitted = course / "submitted" / name / lab
    return saved if digest == (_digest(submitted) if sandbox.check_submission(submitted) is None else "") else None


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
    if not (args.course / "solutions" / args.lab / f"{args.lab}.ipynb").is_file():
        ap.error(f"no lab {args.lab!r} in {args.course}/solutions (run from the course directory or pass --course)")
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
