"""What a class run reports: one :class:`Graded` per submission, nbgrader's grades CSV, a CSV of
every check of every student, a table of how many passed each check, and a score histogram."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .gradebook import GradingError, nbgrader


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
