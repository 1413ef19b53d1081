"""Feedback for one student: which checks passed, the points, a helpful message for each failure.

Built from the trusted verdicts only, never from the graded notebook: it carries no test code
(visible or hidden) and nothing the tests printed. Written where nbgrader's ``release_feedback``
looks for it (``feedback/<student>/<lab>/<lab>.html``).
"""
from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

from .trusted import Verdict

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }
td.pts { white-space: nowrap; }
.pass { color: #17692a; font-weight: 600; }
.fail { color: #a4161a; font-weight: 600; }
.note { background: #fff6d6; border-left: 4px solid #e0b400; padding: .6rem .9rem; margin: 1rem 0; }
code { font-size: .92em; }
"""


def render(lab: str, student: str, verdicts: Iterable[Verdict], notes: Iterable[str] = ()) -> str:
    """The feedback page as a standalone HTML document (everything escaped)."""
    verdicts = list(verdicts)
    score = sum(v.score for v in verdicts)
    total = sum(v.points for v in verdicts)
    e = html.escape
    rows = []
    for v in verdicts:
        status = '<span class="pass">passed</span>' if v.passed else '<span class="fail">failed</span>'
        message = "" if v.passed else e(v.message or "the check failed")
        rows.append(f"<tr><td><code>{e(v.grade_id)}</code></td><td>{status}</td>"
                    f"<td class=\"pts\">{v.score:g} / {v.points:g}</td><td>{message}</td></tr>")
    notes_html = "".join(f'<p class="note">{e(n)}</p>' for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(lab)}: feedback for {e(student)}</title>
<style>{_STYLE}</style></head><body>
<h1>{e(lab)}: feedback</h1>
<p>Student: <code>{e(student)}</code>. Automatically graded checks: <strong>{score:g} / {total:g}</strong>
points. Written answers are graded by hand and are not included here.</p>
{notes_html}
<table><thead><tr><th>check</th><th>result</th><th>points</th><th>what went wrong</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p>Each check is one test cell of the lab: it passes only if all of its visible and hidden cases
pass. The message is that of the first case that failed. Run the visible cases in your notebook
to reproduce it: they are the same checks, on other data.</p>
</body></html>
"""


def write(course: Path, lab: str, student: str, verdicts: Iterable[Verdict], notes: Iterable[str] = ()) -> Path:
    """Write the feedback page to ``feedback/<student>/<lab>/<lab>.html``; return its path."""
    path = Path(course) / "feedback" / student / lab / f"{lab}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(lab, student, verdicts, notes), encoding="utf-8")
    # nbgrader's release_feedback files the page in the exchange by these two
    for name in ("timestamp.txt", "submission_secret.txt"):
        source = Path(course) / "submitted" / student / lab / name
        if source.is_file() and not source.is_symlink():
            (path.parent / name).write_text(source.read_text(errors="replace")[:200])
    return path
