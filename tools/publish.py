"""Publish the student edition of the course: ``make publish DEST=<folder>``.

    python -m tools.publish DEST [--labs lab1-init,lab2-adamw]

The course lives in two repositories (docs/publishing.md). This one is the instructors': it
holds the solutions and hidden tests (``solutions/``), the mistake catalogues and the grading
code, and stays private. The student edition is public: the website, the launch buttons, the
setup cells and nbgitpuller point at it (``repository.url`` in ``_config.yml``). This tool writes
it from the last commit of this repository into a git repository at DEST (created on first use;
a new commit on each publish, which names the instructor commit; this repository's history never
goes there):

- the chapters, the *released* labs (``publish.released_labs`` in ``_config.yml``; ``--labs``
  overrides it), ``courselib``, the website build, the student README, Makefile and Jupyter
  configuration (``tools/student_edition/``), the course-wide make rules (``course.mk``) and the
  tests that make sense there (:data:`STUDENT_TESTS`);
- ``_toc.yml`` with the released labs only, ``_config.yml`` without its instructor-only section,
  the chapters without their pointer to a lab not released yet (:func:`student_chapter`).

Before anything is written the new edition is scanned (:func:`scan`): no line of a solution or
hidden test of any lab (compared with whitespace removed), no nbgrader marker, no instructor-only
file, not the instructor repository's URL. Anything wrong stops the publish with a message
and leaves DEST as it was.
"""
from __future__ import annotations

import argparse
import html
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

from grading.course import Course
from tools import build_book, colab

ROOT = Path(__file__).resolve().parents[1]
# What the student edition holds, from the instructor commit (folders end with "/").
PUBLISHED = ["book/", "src/courselib/", "src/courselib_ipython/", "docs/img/", "_config.yml", "_toc.yml",
             "environment.yml", "pyproject.toml", ".gitignore", "conftest.py", "course.mk",
             "tools/build_book.py", "tools/build_pdf.py", "tools/site_fixes.py", "tools/site_static/",
             "tools/__init__.py", "tools/setup_cell.py"]
# Tests that need neither answers nor grading: courselib, the notebooks' hygiene and setup cell.
STUDENT_TESTS = ["tests/conftest.py", "tests/test_checking.py", "tests/test_courselib_ipython.py",
                 "tests/test_data.py", "tests/test_environment.py", "tests/test_labcheck.py",
                 "tests/test_notebook_hygiene.py", "tests/test_plots_widgets.py", "tests/test_probes.py",
                 "tests/test_setup_cell.py", "tests/test_train.py", "tests/test_utils.py"]
TEMPLATES = ROOT / "tools" / "student_edition"  # README.md and Makefile of the student edition
# The student edition's Jupyter configuration (tools/student_edition/jupyter/ -> jupyter/), which its
# `make lab` puts first on JUPYTER_CONFIG_PATH: nbgrader's student side only (Validate, the assignment
# list); the formgrader, the course list and "Create Assignment" are disabled (docs/publishing.md).
JUPYTER_CONFIG = "jupyter/"
# Never in the student edition, whatever PUBLISHED says: the answers and what knows them.
INSTRUCTOR_ONLY = ["solutions/", "tests/lab_mistakes/", "grading/", "benchmarks/", "scripts/",
                   "nbgrader_config.py", "docs/publishing.md", "docs/grading-at-scale.md",
                   "tools/publish.py", "tools/generate_labs.py", "tools/student_edition/", "tests/support.py"]
INSTRUCTOR_SECTION = "# --- Instructor only:"  # in _config.yml: this line and the rest stay here
LABCHECK_PAGE = "book/how-labs-are-checked"  # the Labs part's introduction: dropped with the last lab
LAB_POINTER = "lab-pointer"  # the tag of a chapter's closing cell that leads to its lab
MARKER = ".course-edition"  # in DEST: says that publish wrote it (and may write it again)
MARKER_TEXT = ("This repository is the student edition of a course, written by `make publish` in the\n"
               "instructors' repository. Change the course there and publish again: a change made\n"
               "here is overwritten by the next publish.\n")
MIN_CHARS = 20  # a secret line shorter than this (whitespace removed) is too common to check


class PublishError(Exception):
    """Publishing cannot go on; the message says why and what to do."""


# --- what must not be published ----------------------------------------------------------------

def squash(text: str) -> str:
    """``text`` without any whitespace: the form in which lines are compared."""
    return re.sub(r"\s+", "", text)


def nbgrader_markers() -> list[str]:
    """The delimiters nbgrader looks for in an instructor notebook."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, InstantiateTests

    solutions, hidden, autotests = ClearSolutions(), ClearHiddenTests(), InstantiateTests()
    return [solutions.begin_solution_delimeter, solutions.end_solution_delimeter, hidden.begin_test_delimeter,
            hidden.end_test_delimeter, autotests.autotest_delimiter]


def _regions(source: str, begin: str, end: str) -> list[str]:
    pattern = rf"^[ \t]*###[ \t]*{re.escape(begin)}[ \t]*\n(.*?)^[ \t]*###[ \t]*{re.escape(end)}"
    return re.findall(pattern, source, re.S | re.M)


def secret_lines(root: Path = ROOT) -> dict[str, list[str]]:
    """For each lab in ``root/solutions``: the lines of its solution regions, of its hidden tests
    and of its model answers (markdown solution cells), that the course does not publish on
    purpose anyway (a chapter or a student lab may well write out a formula a lab asks for) and
    that are long enough to be distinctive."""
    markers = nbgrader_markers()
    published = squash("\n".join(_notebook_text(p) for pattern in ("book/*.ipynb", "book/*.md", "labs/*/*.ipynb")
                                 for p in sorted(root.glob(pattern))))
    secrets = {}
    course = Course.load(root)
    for path in [course.source_path(lab) for lab in course.labs()]:
        lines = []
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("solution") and (cell.cell_type == "markdown" or markers[0] not in cell.source):
                lines += cell.source.splitlines()  # the whole cell is the answer
            elif meta:
                for block in _regions(cell.source, *markers[0:2]) + _regions(cell.source, *markers[2:4]):
                    lines += block.splitlines()
        secrets[path.parent.name] = sorted({line.strip() for line in lines
                                            if _distinctive(line) and squash(line) not in published})
    return secrets


def _distinctive(line: str) -> bool:
    """Whether ``line`` is long enough to stand for its lab: its code without the comment, or the
    comment of a comment-only line, or a line of prose, has at least MIN_CHARS characters
    besides whitespace (``except Exception:  # noqa: BLE001`` is not distinctive)."""
    code, _, comment = line.partition("#")
    return len(squash(code if code.strip() else comment)) >= MIN_CHARS


def _json_strings(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


def _notebook_text(path: Path) -> str:
    if path.suffix != ".ipynb":
        return path.read_text(encoding="utf-8")
    return "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)


def readable_text(name: str, data: bytes) -> str:
    """What a reader can see in a file named ``name`` holding ``data``: the strings of a JSON file
    (a notebook's sources and outputs, unescaped), the text of an HTML page (tags dropped: code is
    split into highlighted spans), the members of a zip or tar archive (a wheel, an sdist), the
    raw text of anything else."""
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "\n".join(readable_text(n, archive.read(n)) for n in archive.namelist())
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            return "\n".join(readable_text(m.name, archive.extractfile(m).read())
                             for m in archive.getmembers() if m.isfile())
    text = data.decode("utf-8", errors="replace")
    if name.endswith((".ipynb", ".json")):
        try:
            return text + "\n" + "\n".join(_json_strings(json.loads(text)))
        except ValueError:
            return text
    if name.endswith((".html", ".htm", ".xml")):
        return text + "\n" + html.unescape(re.sub(r"<[^>]+>", "", text))
    return text


@dataclass
class Finding:
    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


def scan(folder: Path, secrets: dict[str, list[str]], forbidden: Iterable[str] = ()) -> list[Finding]:
    """Everything in ``folder`` (``.git`` aside) that must not be published: a file of the
    instructor-only set, an nbgrader marker, a line of ``secrets``, a ``forbidden`` string."""
    findings, markers = [], nbgrader_markers()
    squashed = {lab: [(line, squash(line)) for line in lines] for lab, lines in secrets.items()}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.relative_to(folder).parts):
        rel = path.relative_to(folder).as_posix()
        if any(rel.startswith(item) if item.endswith("/") else rel == item for item in INSTRUCTOR_ONLY):
            findings.append(Finding(rel, "an instructor-only file"))
        text = readable_text(path.name, path.read_bytes())
        flat = squash(text)
        findings += [Finding(rel, f"nbgrader marker {m!r}") for m in markers if m in text]
        findings += [Finding(rel, f"instructor-only text {s!r}") for s in forbidden if s in text]
        for lab, lines in squashed.items():
            findings += [Finding(rel, f"a line of {lab}'s solutions or hidden tests: {line}")
                         for line, flat_line in lines if flat_line in flat]
    return findings


# --- the instructor repository -----------------------------------------------------------------

def git(*args: str, cwd: Path, check: bool = True) -> str:
    run = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and run.returncode != 0:
        raise PublishError(f"`git {' '.join(args)}` failed in {cwd}: {run.stderr.strip()}")
    return run.stdout


@dataclass
class Release:
    commit: str
    labs: list[str]
    public_url: str
    instructor_url: str


def _config(root: Path) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text())


def lab_pages(root: Path) -> list[str]:
    """The labs the website shows (``labs/<lab>/<lab>`` in ``_toc.yml``, a glob expanded), in its order."""
    return [page.split("/")[1] for page in build_book.toc_pages(root) if page.startswith("labs/")]


def check_instructor_repository(root: Path, labs: list[str] | None) -> Release:
    """What to publish from ``root``: its HEAD commit (no uncommitted change allowed) and the
    released labs (each must exist in solutions/, labs/ and _toc.yml)."""
    top = git("rev-parse", "--show-toplevel", cwd=root).strip()
    if Path(top).resolve() != root.resolve():
        raise PublishError(f"{root} is not the top of a git repository")
    changes = git("status", "--porcelain", "--untracked-files=normal", cwd=root).splitlines()
    if changes:
        listed = "\n  ".join(changes[:10]) + ("\n  ..." if len(changes) > 10 else "")
        raise PublishError("the instructor repository has uncommitted changes; the student edition is "
                           f"published from a commit, so commit (or stash) them first:\n  {listed}")
    config = _config(root)
    section = config.get("publish") or {}
    if labs is None:
        labs = list(section.get("released_labs") or [])
    known = lab_pages(root)
    course = Course.load(root)
    for lab in labs:
        missing = [where for where, path in ((f"{course.source}/", course.source_path(lab)),
                                             (f"{course.release}/", course.student_path(lab))) if not path.is_file()]
        if lab not in known:
            missing.append("_toc.yml")
        if missing:
            raise PublishError(f"released lab {lab!r} is not a lab of this course (missing from "
                               f"{', '.join(missing)}); the labs are: {', '.join(known)}")
    if len(set(labs)) != len(labs):
        raise PublishError(f"a lab is listed twice in the released labs: {labs}")
    public = config["repository"]["url"].rstrip("/")
    instructor = str(section.get("instructor_repository") or "").rstrip("/")
    if instructor and instructor == public:
        raise PublishError("_config.yml names the same URL for the public student edition (repository.url) "
                           "and for the instructor repository (publish.instructor_repository): the student "
                           "edition must be another repository")
    return Release(git("rev-parse", "HEAD", cwd=root).strip(), [lab for lab in known if lab in labs], public,
                   instructor)


# --- the student edition ------------------------------------------------------------------------

def student_config(text: str) -> str:
    """``_config.yml`` without its instructor-only section."""
    head, found, _ = text.partition("\n" + INSTRUCTOR_SECTION)
    if not found:
        raise PublishError(f"_config.yml has no line starting with {INSTRUCTOR_SECTION!r} before its "
                           "`publish` section: add it, so that the section stays out of the student edition")
    if "publish" in (yaml.safe_load(head) or {}):
        raise PublishError("_config.yml's `publish` section must come after the line "
                           f"{INSTRUCTOR_SECTION!r}, at the end of the file")
    return head.rstrip("\n") + "\n"


def student_toc(text: str, labs: list[str]) -> str:
    """``_toc.yml`` with only the released ``labs``, listed by name (a ``labs/`` glob becomes
    one entry per released lab, in name order; a part left empty is dropped)."""
    toc = yaml.safe_load(text)
    parts = []
    for part in toc.get("parts", []):
        chapters = []
        for c in part["chapters"]:
            if c.get("glob", "").startswith("labs/"):
                chapters += [{"file": f"labs/{lab}/{lab}"} for lab in sorted(labs)]
            elif "file" not in c or not c["file"].startswith("labs/") or c["file"].split("/")[1] in labs:
                chapters.append(c)
        if not any(c.get("file", "").startswith("labs/") for c in chapters):  # no lab: no lab pages
            chapters = [c for c in chapters if c.get("file") != LABCHECK_PAGE]
        if chapters:
            parts.append({**part, "chapters": chapters})
    toc["parts"] = parts
    return yaml.safe_dump(toc, sort_keys=False)


GRADER_PACKAGE = ("# courselib (src/) for every reader; grading (the instructors' grader, beside the course) is\n"
                  "# installed with it, so that tools/, tests/ and benchmarks/ import it like any package.\n"
                  '[tool.setuptools.packages.find]\nwhere = ["src", "."]\ninclude = ["courselib*", "grading*"]\n')
GRADER_SCRIPT = ('# The grader as a command (the same as `python -m grading` and `make grade`).\n'
                 '[project.scripts]\ncourse-grade = "grading.__main__:main"\n\n')
# pyproject.toml's lines that name what the student edition does not have -> their replacement
STUDENT_PYPROJECT = {
    'testpaths = ["tests", "book", "solutions", "labs"]': 'testpaths = ["tests", "book", "labs"]',
    GRADER_PACKAGE: '[tool.setuptools.packages.find]\nwhere = ["src"]\n',
    GRADER_SCRIPT: '',
}


def student_pyproject(text: str) -> str:
    """``pyproject.toml`` whose pytest runs no ``solutions/`` and that installs no grader."""
    for line, replacement in STUDENT_PYPROJECT.items():
        if line not in text:
            raise PublishError(f"pyproject.toml no longer has the line {line!r} that publish rewrites: "
                               "update STUDENT_PYPROJECT in tools/publish.py")
        text = text.replace(line, replacement)
    return text


def student_chapter(text: str, labs: list[str]) -> str:
    """A chapter notebook without its cells tagged :data:`LAB_POINTER` that lead to a lab not
    released yet (that link would be broken in the student edition); unchanged otherwise."""
    notebook = nbformat.reads(text, as_version=4)
    kept = []
    for cell in notebook.cells:
        if LAB_POINTER in cell.metadata.get("tags", []):
            linked = set(re.findall(r"\.\./labs/([\w-]+)/", cell.source))
            if len(linked) != 1:
                raise PublishError(f"a cell tagged {LAB_POINTER!r} must link to exactly one lab "
                                   f"(../labs/<lab>/<lab>.ipynb), this one links to {sorted(linked) or 'none'}:\n"
                                   + cell.source[:300])
            if linked.pop() not in labs:
                continue
        kept.append(cell)
    if len(kept) == len(notebook.cells):
        return text
    notebook.cells = kept
    return nbformat.writes(notebook) + "\n"


def stage(root: Path, release: Release, into: Path) -> None:
    """Write the student edition of ``release`` (files from its commit) into the empty ``into``."""
    paths = PUBLISHED + STUDENT_TESTS + [f"labs/{lab}/" for lab in release.labs]
    archive = subprocess.run(["git", "archive", "--format=tar", release.commit, "--", *paths], cwd=root,
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise PublishError(f"git archive failed: {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    for name, rewrite in (("_config.yml", student_config), ("pyproject.toml", student_pyproject),
                          ("_toc.yml", lambda text: student_toc(text, release.labs))):
        (into / name).write_text(rewrite((into / name).read_text()))
    for chapter in sorted(into.glob("book/*.ipynb")):
        chapter.write_text(student_chapter(chapter.read_text(), release.labs))
    colab.write_copies(into, into)  # colab/book/*.ipynb: the chapters as Colab can render them
    for name in ("README.md", "Makefile"):
        (into / name).write_bytes(git("show", f"{release.commit}:tools/student_edition/{name}", cwd=root).encode())
    for name in git("ls-tree", "-r", "--name-only", release.commit, "--", f"tools/student_edition/{JUPYTER_CONFIG}",
                    cwd=root).splitlines():
        target = into / name.removeprefix("tools/student_edition/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(git("show", f"{release.commit}:{name}", cwd=root).encode())
    (into / MARKER).write_text(MARKER_TEXT)


def check_destination(dest: Path, root: Path) -> bool:
    """Whether ``dest`` is already a student edition (else it is new or empty); refuses a folder
    inside the instructor repository (or holding it), a folder or repository of something else,
    and a student edition with changes that publishing would overwrite."""
    dest, root = dest.resolve(), root.resolve()
    if dest == root or root in dest.parents or dest in root.parents:
        raise PublishError(f"DEST {dest} is inside the instructor repository {root} (or holds it): "
                           "publish into a folder of its own, e.g. a clone of the public repository")
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return False
    if not dest.is_dir():
        raise PublishError(f"DEST {dest} is a file, not a folder")
    if not (dest / ".git").exists() or not (dest / MARKER).is_file():
        raise PublishError(f"DEST {dest} is not empty and is not a student edition of this course (no "
                           f"{MARKER} in a git repository): choose a new or empty folder, or a clone of "
                           "the student edition")
    top = git("rev-parse", "--show-toplevel", cwd=dest).strip()
    if Path(top).resolve() != dest:
        raise PublishError(f"DEST {dest} is inside another git repository ({top})")
    changes = git("status", "--porcelain", cwd=dest).splitlines()
    if changes:
        raise PublishError(f"the student edition in {dest} has uncommitted changes, which publishing would "
                           "overwrite: commit or discard them first\n  " + "\n  ".join(changes[:10]))
    return True


def _identity(root: Path) -> list[str]:
    """``-c user.name=... -c user.email=...`` for the commit: the instructor's git identity, or
    a neutral one where none is configured (e.g. CI)."""
    name = git("config", "user.name", cwd=root, check=False).strip() or "Course publisher"
    email = git("config", "user.email", cwd=root, check=False).strip() or "publisher@localhost"
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def publish(dest: Path, labs: list[str] | None = None, root: Path = ROOT) -> str | None:
    """Publish the student edition of ``root`` into the git repository ``dest``; returns the new
    commit, or None when the edition there is already this one."""
    release = check_instructor_repository(root, labs)
    existing = check_destination(dest, root)
    with tempfile.TemporaryDirectory(prefix="student-edition-") as tmp:
        staged = Path(tmp)
        stage(root, release, staged)
        forbidden = [release.instructor_url] if release.instructor_url else []
        findings = scan(staged, secret_lines(root), forbidden)
        if findings:
            raise PublishError("the student edition would publish what it must not (nothing was written):\n  "
                               + "\n  ".join(map(str, findings[:20])))
        dest.mkdir(parents=True, exist_ok=True)
        if not existing:
            git("init", "--quiet", "--initial-branch", _config(root)["repository"].get("branch", "main"), cwd=dest)
        for tracked in git("ls-files", "-z", cwd=dest).split("\0"):
            if tracked:
                (dest / tracked).unlink(missing_ok=True)
        shutil.copytree(staged, dest, dirs_exist_ok=True)
    for folder in sorted((p for p in dest.rglob("*") if p.is_dir() and ".git" not in p.relative_to(dest).parts),
                         reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()  # left empty by a file the new edition no longer has
    git("add", "--all", cwd=dest)
    if existing and not git("status", "--porcelain", cwd=dest).strip():
        return None
    labs_line = ", ".join(release.labs) or "none"
    git(*_identity(root), "commit", "--quiet", "-m",
        f"Student edition from instructor commit {release.commit[:12]}\n\nReleased labs: {labs_line}\n", cwd=dest)
    return git("rev-parse", "HEAD", cwd=dest).strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="the student edition's git repository (created if missing)")
    parser.add_argument("--labs", help="comma-separated labs to release (default: publish.released_labs "
                                       "in _config.yml)")
    args = parser.parse_args(argv)
    labs = None if args.labs is None else [lab for lab in args.labs.split(",") if lab]
    try:
        commit = publish(args.dest, labs)
    except PublishError as error:
        print(f"make publish: {error}", file=sys.stderr)
        return 1
    dest = args.dest.resolve()
    if commit is None:
        print(f"The student edition in {dest} is already up to date: nothing to commit.")
    else:
        message = git("log", "-1", "--format=%s%n%b", cwd=dest).strip().replace("\n\n", "\n")
        print(f"Published the student edition into {dest} as commit {commit[:12]}:")
        print("  " + message.replace("\n", "\n  "))
        print(f"Check it (cd {dest} && make test && make book), then push it to the public repository.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
