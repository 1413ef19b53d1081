"""Grading a class: cost per submission against the floor, and throughput, serial vs parallel.

    python benchmarks/bench_grading.py [--lab lab3-conv] [--students 200] [--serial 20]

1. The floor: the instructor's solution notebook executed alone, top to bottom, in a fresh
   plain python3 kernel (nbclient), kernel start-up included: what any grading must spend.
   Grading leaves the ungraded experiment cells out, so the floor does too (the whole
   notebook's time is printed beside it). nbclient's default graceful kernel shutdown (about
   1 s of it) is part of the floor; grading kills its kernel after the last cell instead.
2. The cost of grading one correct submission with the course's command, ``grade_one`` (private
   course copy, sandboxed nbgrader autograde, trusted replay, gradebook, feedback), as a ratio to
   the floor: the median of three calls after a first one, which also starts the fork server
   and makes the lab's template gradebook (once per process and per lab version; printed).
   Goal: at most 1.3.
3. A generated class (correct, one typical mistake, blank, and cheap attacks: patched
   comparisons, an input transformer, a kernel that exits) graded with one worker (the first
   ``--serial`` students) and with one worker per core (all of them). Goal: 200 submissions
   in under 10 minutes on the 2-core machine.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from grading import grade, labs
from grading.course import Course

COURSE = Course.load()
ROOT = COURSE.root

GOAL_RATIO = 1.3
GOAL_CLASS_S = 600.0


def floor_seconds(lab: str, experiments: bool = True, shutdown: str = "graceful") -> float:
    """The solution notebook in a fresh kernel, start-up included (wall clock); without its
    experiment cells if not ``experiments`` (grading leaves them out). ``shutdown``: nbclient's
    ``shutdown_kernel`` ("graceful", its default and the floor's; "immediate" as grading does)."""
    nb = labs.read(COURSE.source_path(lab))
    nb.cells = [c for c in nb.cells if not c.source.lstrip().startswith(("%", "!"))
                and (experiments or not labs.is_experiment(c))]
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", shutdown_kernel=shutdown,
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    return time.perf_counter() - start


def generated_class(lab: str, n: int, seed: int = 0) -> dict[str, dict]:
    """n students: 50% correct, 25% one typical mistake, 15% blank, 10% cheap attacks."""
    from test_labs import catalogue

    ref = labs.answers(labs.read(COURSE.source_path(lab)))
    first, last = next(iter(ref)), list(ref)[-1]
    mistakes = catalogue(lab).MISTAKES
    attacks = [
        {**ref, first: "import torch\ntorch.allclose = lambda *a, **k: True\n" + ref[first]},
        {**ref, first: ref[first] + "\nget_ipython().input_transformers_cleanup.append(lambda l: ['pass\\n'])\n"},
        {**ref, last: "import os\nos._exit(0)\n" + ref[last]},
    ]
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        roll = rng.random()
        if roll < 0.5:
            answers = ref
        elif roll < 0.75:
            gid, source, _ = mistakes[rng.choice(sorted(mistakes))]
            answers = {**ref, gid: source}
        elif roll < 0.9:
            answers = {}
        else:
            answers = rng.choice(attacks)
        out[f"s{i:03d}"] = answers
    return out


def write_class(course: Path, lab: str, students: dict[str, dict]) -> None:
    uploads = course.parent / "uploads"
    shutil.rmtree(uploads, ignore_errors=True)
    uploads.mkdir()
    for sid, answers in students.items():
        nb = labs.read(COURSE.student_path(lab))
        for cell in nb.cells:
            if labs.is_answer(cell) and labs.nbmeta(cell)["grade_id"] in answers:
                cell.source = answers[labs.nbmeta(cell)["grade_id"]]
        nbformat.write(nb, uploads / f"{sid}_{lab}.ipynb")
    grade.prepare(course, lab)
    problem = grade.collect(course, lab, uploads)
    assert not problem, problem


def timed_class(tmp: Path, lab: str, students: dict[str, dict], workers: int,
                ) -> tuple[float, list[tuple[float, float]]]:
    """Seconds to grade the class; and for each fifth of the run, in the order submissions were
    finished, seconds per submission and the mean 1-minute load average meanwhile (to tell a drift
    of the grader from other work on the machine)."""
    course = Course.load().scratch(tmp / f"w{workers}", (lab,))
    write_class(course, lab, students)
    loads: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            loads.append((time.time(), os.getloadavg()[0]))
            stop.wait(5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start, began = time.perf_counter(), time.time()
    results = grade.grade_class(course, lab, collect_first=False, workers=workers)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    assert len(results) == len(students)
    finished = sorted(p.stat().st_mtime for p in (course / "reports" / lab / "results").glob("*.json"))
    fifths, edge = [], began
    for k in range(5):
        part = finished[len(finished) * k // 5: len(finished) * (k + 1) // 5]
        if not part:
            continue
        during = [load for t, load in loads if edge <= t <= part[-1]] or [os.getloadavg()[0]]
        fifths.append(((part[-1] - edge) / len(part), statistics.mean(during)))
        edge = part[-1]
    return seconds, fifths


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab", default="lab3-conv")
    ap.add_argument("--students", type=int, default=200)
    ap.add_argument("--serial", type=int, default=20, help="students graded with one worker")
    args = ap.parse_args(argv if argv is not None else [])
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        full = statistics.median([floor_seconds(args.lab) for _ in range(3)])
        floors = [floor_seconds(args.lab, experiments=False) for _ in range(3)]
        floor = statistics.median(floors)
        killed = statistics.median([floor_seconds(args.lab, experiments=False, shutdown="immediate") for _ in range(3)])
        course = Course.load().scratch(tmp / "one", (args.lab,))
        write_class(course, args.lab, {"solo": labs.answers(labs.read(COURSE.source_path(args.lab)))})
        singles = []
        for _ in range(4):  # the first also starts the nbgrader fork server and makes the lab's template gradebook
            start = time.perf_counter()
            result = grade.grade_one(course, args.lab, "solo")
            singles.append(time.perf_counter() - start)
            assert result.score == result.max_score > 0, result
        single = statistics.median(singles[1:])
        students = generated_class(args.lab, args.students)
        serial_names = dict(list(students.items())[: args.serial])
        serial, _ = timed_class(tmp, args.lab, serial_names, 1)
        parallel, fifths = timed_class(tmp, args.lab, students, workers)
    per_serial, per_parallel = serial / len(serial_names), parallel / len(students)
    projected = per_parallel * 200
    print(f"lab {args.lab}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; {workers} cores")
    print(f"floor: solution notebook in a fresh kernel, the cells grading runs (no experiments): {floor:6.2f} s "
          f"(runs: {', '.join(f'{f:.2f}' for f in floors)}); with its experiment cells: {full:.2f} s")
    print(f"one submission, graded:                  {single:6.2f} s   ratio {single / floor:4.2f}  "
          f"(goal <= {GOAL_RATIO}) {'ok' if single / floor <= GOAL_RATIO else 'MISSED'}; "
          f"against the whole notebook {single / full:4.2f}")
    print(f"  beside the floor with its kernel killed after the last cell, as grading does ({killed:.2f} s): "
          f"ratio {single / killed:4.2f}")
    runs = ", ".join(f"{s:.2f}" for s in singles[1:])
    print(f"  (grade_one, median of {len(singles) - 1} runs: {runs}; the first call "
          f"of the process, {singles[0]:.2f} s, also started the fork server and made the lab's template gradebook)")
    print(f"class, 1 worker  ({len(serial_names):3d} submissions):   {serial:7.1f} s = {per_serial:5.2f} s each")
    print(f"class, {workers} workers ({len(students):3d} submissions):   "
          f"{parallel:7.1f} s = {per_parallel:5.2f} s each; "
          f"speed-up {per_serial / per_parallel:4.2f}x")
    print("  s/submission by fifth of the run: " + ", ".join(f"{each:.2f} (load {load:.1f})" for each, load in fifths)
          + f"; the load average includes this run's {workers} workers")
    print(f"200 submissions projected: {projected:6.0f} s (goal < {GOAL_CLASS_S:.0f} s) "
          f"{'ok' if projected < GOAL_CLASS_S else 'MISSED'}")
    return {"floor": floor, "floor_with_experiments": full, "floor_killed": killed, "single": single,
            "single_first": singles[0],
            "serial_each": per_serial, "parallel_each": per_parallel, "projected_200": projected,
            "parallel_fifths": fifths}


if __name__ == "__main__":
    main(sys.argv[1:])
