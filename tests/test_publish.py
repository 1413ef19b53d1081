"""`make publish`: the student edition holds the released labs and no answers, is a git history
of its own, and every bad input is refused with a message and changes nothing.

Each test publishes from a committed copy of this working tree (``instructor``), so that the
tests see the files as they are now and may commit in the copy. The student edition's own
tests and website are built in tests/test_student_edition.py.
"""
from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml

from support import TWO_LABS, copy_working_tree, git
from tools import build_book, publish

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def instructor(tmp_path_factory) -> Path:
    return copy_working_tree(tmp_path_factory.mktemp("instructor"))


@pytest.fixture(scope="module")
def edition(instructor, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("published") / "student-edition"
    assert publish.publish(dest, TWO_LABS, root=instructor)
    return dest


def files_of(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(folder).parts}


def expected_files(instructor: Path, labs: list[str]) -> set[str]:
    tracked = git("ls-files", cwd=instructor).split()
    wanted = publish.PUBLISHED + publish.STUDENT_TESTS + [f"labs/{lab}/" for lab in labs]
    chosen = {f for f in tracked if any(f.startswith(w) if w.endswith("/") else f == w for w in wanted)}
    config = git("ls-files", f"tools/student_edition/{publish.JUPYTER_CONFIG}", cwd=instructor).split()
    jupyter = {f.removeprefix("tools/student_edition/") for f in config}
    colab = {f"colab/{f}" for f in chosen if f.startswith("book/") and f.endswith(".ipynb")}  # tools/colab.py
    return chosen | {"README.md", "Makefile", publish.MARKER} | jupyter | colab


def test_the_edition_holds_what_students_need_and_nothing_instructor_only(instructor, edition):
    files = files_of(edition)
    assert files == expected_files(instructor, TWO_LABS)
    assert {"book/01_training_stability.ipynb", "src/courselib/checking.py", "labs/lab1-init/lab1-init.ipynb",
            "tests/test_data.py", "tools/build_book.py", "course.mk"} <= files
    for item in publish.INSTRUCTOR_ONLY + ["labs/lab3-conv/"]:
        assert not [f for f in files if f == item or (item.endswith("/") and f.startswith(item))], item
    # what students run is what nbval ran in this repository: the same bytes (a chapter may lose
    # its pointer to a lab not released yet: a markdown cell)
    for name in files:
        if name.startswith(("labs/", "src/")) or (name.startswith("book/") and not name.endswith(".ipynb")):
            assert (edition / name).read_bytes() == (instructor / name).read_bytes(), name
        elif name.startswith("book/"):
            mine = publish.student_chapter((instructor / name).read_text(), TWO_LABS)
            assert (edition / name).read_text() == mine, name
    assert (edition / "README.md").read_bytes() == (ROOT / "tools/student_edition/README.md").read_bytes()
    assert publish.scan(edition, publish.secret_lines(instructor)) == []


# nbgrader's instructor side: its lab plugins and server extensions (the student side, Validate and
# the assignment list, stays)
INSTRUCTOR_PLUGINS = {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list",
                      "@jupyter/nbgrader:create-assignment"}
STUDENT_PLUGINS = {"@jupyter/nbgrader", "@jupyter/nbgrader:validate-assignment", "@jupyter/nbgrader:assignment-list",
                   "@jupyter/nbgrader:menu"}
INSTRUCTOR_SERVER = {"nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list"}


def test_the_edition_opens_jupyterlab_without_the_instructor_interface(edition):
    """Its jupyter/ disables nbgrader's formgrader, course list and "Create Assignment" (lab plugins
    and server extensions) and nothing of the student side; the plugins and modules it names exist
    in the installed nbgrader (a renamed one would silently stay enabled); and its `make lab` puts
    jupyter/ first on JUPYTER_CONFIG_PATH, where JupyterLab reads it."""
    import importlib.util

    import nbgrader

    page = json.loads((edition / "jupyter/labconfig/page_config.json").read_text())
    disabled = {k for k, v in page["disabledExtensions"].items() if v}
    assert disabled == INSTRUCTOR_PLUGINS, disabled
    server = json.loads((edition / "jupyter/jupyter_server_config.json").read_text())
    extensions = server["ServerApp"]["jpserver_extensions"]
    assert {k for k, v in extensions.items() if v is False} == INSTRUCTOR_SERVER and all(
        v is False for v in extensions.values()), extensions
    bundle = Path(sys.prefix, "share/jupyter/labextensions/@jupyter/nbgrader/static")
    code = "".join(p.read_text(errors="replace") for p in bundle.glob("*.js"))
    assert nbgrader.__version__.startswith("0.9"), "check the plugin ids again for this nbgrader"
    for plugin in INSTRUCTOR_PLUGINS | STUDENT_PLUGINS - {"@jupyter/nbgrader"}:
        assert f'"{plugin}"' in code, f"the installed nbgrader lab extension has no plugin {plugin}"
    for module in INSTRUCTOR_SERVER:
        assert importlib.util.find_spec(module), module
    rule = 'show-config-path: ; @echo "$$JUPYTER_CONFIG_PATH"'
    shown = subprocess.run(["make", "--no-print-directory", "--eval", rule, "show-config-path"], cwd=edition,
                           capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == str(edition / "jupyter"), shown.stdout
    # what JupyterLab makes of it (`jupyter labextension list` reads the same page_config.json)
    listing = subprocess.run([str(Path(sys.executable).with_name("jupyter")), "labextension", "list"],
                             env={**os.environ, "JUPYTER_CONFIG_PATH": str(edition / "jupyter")},
                             capture_output=True, text=True, timeout=120)
    section = (listing.stdout + listing.stderr).split("Disabled extensions:", 1)
    assert len(section) == 2, listing.stdout + listing.stderr
    assert {line.split()[0] for line in section[1].splitlines() if line.strip()} == INSTRUCTOR_PLUGINS, section[1]


def test_only_the_released_labs_are_in_the_table_of_contents(edition):
    toc = yaml.safe_load((edition / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]  # every entry by name: no glob
    assert [f for f in files if f.startswith("labs/")] == [f"labs/{lab}/{lab}" for lab in TWO_LABS]
    chapters = build_book.toc_pages(ROOT)[1:]  # after the root page
    assert [f for f in files if not f.startswith("labs/")] == [f for f in chapters if not f.startswith("labs/")]
    assert 'testpaths = ["tests", "book", "labs"]' in (edition / "pyproject.toml").read_text()


def pointers(notebook: Path) -> list[str]:
    """The labs that a chapter's closing cells (tagged lab-pointer) lead to."""
    cells = nbformat.read(notebook, as_version=4).cells
    return [lab for c in cells if publish.LAB_POINTER in c.metadata.get("tags", [])
            for lab in re.findall(r"\.\./labs/([\w-]+)/", c.source)]


def test_chapters_lead_only_to_released_labs(instructor, edition):
    """Chapter 4 leads to lab 3 in this repository; lab 3 is not released, so the student
    edition's chapter 4 ends without that (broken) link, and its code cells are the same."""
    assert pointers(instructor / "book/04_cnns.ipynb") == ["lab3-conv"]
    assert pointers(edition / "book/04_cnns.ipynb") == []
    assert pointers(edition / "book/02_initialization.ipynb") == ["lab1-init"]
    assert pointers(edition / "book/03_optimizers.ipynb") == ["lab2-adamw"]
    # the Colab copies are made from the edition's chapters
    assert pointers(edition / "colab/book/04_cnns.ipynb") == []
    assert pointers(edition / "colab/book/02_initialization.ipynb") == ["lab1-init"]
    code = [[c.source for c in nbformat.read(root / "book/04_cnns.ipynb", as_version=4).cells
             if c.cell_type == "code"] for root in (instructor, edition)]
    assert code[0] == code[1]
    two = nbformat.v4.new_markdown_cell("See [a](../labs/a/a.ipynb) and [b](../labs/b/b.ipynb).")
    nb = nbformat.v4.new_notebook(cells=[two])
    nb.cells[0].metadata["tags"] = [publish.LAB_POINTER]
    with pytest.raises(publish.PublishError, match="exactly one lab"):
        publish.student_chapter(nbformat.writes(nb), ["a", "b"])


def test_only_the_public_url_is_named(instructor, edition):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    public, private = config["repository"]["url"], config["publish"]["instructor_repository"]
    assert public != private
    student_config = yaml.safe_load((edition / "_config.yml").read_text())
    assert "publish" not in student_config and student_config["repository"]["url"] == public
    for name in files_of(edition):
        assert private not in (edition / name).read_text(errors="replace"), name
    notebooks = sorted(edition.glob("book/*.ipynb")) + sorted(edition.glob("labs/*/*.ipynb"))
    assert len(notebooks) == 8 + len(TWO_LABS)
    for path in notebooks:  # the setup cell installs courselib from the public repository
        first_code = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert f'"git+{public}@main"' in first_code.source, path


def test_the_edition_has_a_history_of_its_own(instructor, edition):
    log = git("log", "--format=%H %s", cwd=edition).splitlines()
    head = git("rev-parse", "HEAD", cwd=instructor).strip()
    assert len(log) == 1 and log[0].split(" ", 1)[1] == f"Student edition from instructor commit {head[:12]}"
    assert "Released labs: lab1-init, lab2-adamw" in git("log", "-1", "--format=%b", cwd=edition)
    missing = subprocess.run(["git", "cat-file", "-e", head], cwd=edition, capture_output=True)
    assert missing.returncode != 0, "the instructor commit is in the student edition's history"


def test_publishing_again_adds_a_commit_and_releases_or_withdraws_labs(instructor, tmp_path):
    dest = tmp_path / "edition"
    first = publish.publish(dest, ["lab1-init"], root=instructor)
    assert publish.publish(dest, ["lab1-init"], root=instructor) is None  # nothing changed: no commit
    second = publish.publish(dest, ["lab1-init", "lab3-conv"], root=instructor)
    assert first and second and first != second
    assert len(git("log", "--format=%H", cwd=dest).split()) == 2
    assert (dest / "labs/lab3-conv/lab3-conv.ipynb").is_file()
    third = publish.publish(dest, [], root=instructor)  # a lab withdrawn: its files go, its folder too
    assert third and not (dest / "labs").exists()
    parts = [p["caption"] for p in yaml.safe_load((dest / "_toc.yml").read_text())["parts"]]
    assert "Labs" not in parts and "Back matter" in parts
    assert git("status", "--porcelain", cwd=dest) == ""


def state_of(folder: Path) -> tuple[dict[str, bytes], str]:
    """The files of ``folder`` and, for a git repository, its HEAD."""
    if not folder.exists():
        return {}, ""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True).stdout
    return {name: (folder / name).read_bytes() for name in files_of(folder)}, head


@pytest.mark.parametrize("case", ["inside the instructor repository", "holding the instructor repository",
                                  "another git repository", "a folder of other files", "an unknown lab",
                                  "a lab listed twice", "uncommitted changes", "a new untracked file",
                                  "an edited student edition"])
def test_bad_input_is_refused_and_changes_nothing(instructor, edition, tmp_path, case):
    dest, labs, expect = tmp_path / "edition", TWO_LABS, ""
    undo = []
    if case == "inside the instructor repository":
        dest, expect = instructor / "student", "inside the instructor repository"
    elif case == "holding the instructor repository":
        dest, expect = instructor.parent, "inside the instructor repository"
    elif case == "another git repository":
        dest.mkdir()
        (dest / "notes.txt").write_text("my notes\n")
        git("init", "--quiet", cwd=dest)
        expect = "is not a student edition"
    elif case == "a folder of other files":
        dest.mkdir()
        (dest / "notes.txt").write_text("my notes\n")
        expect = "is not a student edition"
    elif case == "an unknown lab":
        labs, expect = ["lab1-init", "lab9-nope"], "'lab9-nope' is not a lab of this course"
    elif case == "a lab listed twice":
        labs, expect = ["lab1-init", "lab1-init"], "listed twice"
    elif case in ("uncommitted changes", "a new untracked file"):
        target = instructor / ("book/intro.md" if case == "uncommitted changes" else "book/draft.md")
        original = target.read_bytes() if target.exists() else None
        target.write_text("a draft\n")
        undo.append(lambda: target.write_bytes(original) if original is not None else target.unlink())
        expect = "uncommitted changes"
    elif case == "an edited student edition":
        shutil.copytree(edition, dest)
        (dest / "book" / "intro.md").write_text("edited by hand\n")
        expect = "has uncommitted changes, which publishing would overwrite"
    watched = [edition] + ([] if dest == instructor.parent else [dest])
    head = git("rev-parse", "HEAD", cwd=instructor)
    before = [state_of(w) for w in watched]
    try:
        with pytest.raises(publish.PublishError, match=expect.replace("(", r"\(")):
            publish.publish(dest, labs, root=instructor)
    finally:
        for step in undo:
            step()
    assert [state_of(w) for w in watched] == before
    assert git("status", "--porcelain", cwd=instructor) == "" and git("rev-parse", "HEAD", cwd=instructor) == head


def test_the_same_url_for_both_repositories_is_refused(instructor):
    config = instructor / "_config.yml"
    text = config.read_text()
    public = yaml.safe_load(text)["repository"]["url"]
    private = yaml.safe_load(text)["publish"]["instructor_repository"]
    release = publish.check_instructor_repository(instructor, TWO_LABS)
    assert release.public_url == public and release.instructor_url == private
    config.write_text(text.replace(private, public))
    try:
        with pytest.raises(publish.PublishError, match="uncommitted changes"):
            publish.check_instructor_repository(instructor, TWO_LABS)
        git("add", "_config.yml", cwd=instructor)
        git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "--quiet", "-m", "same URL", cwd=instructor)
        with pytest.raises(publish.PublishError, match="same URL"):
            publish.check_instructor_repository(instructor, TWO_LABS)
    finally:
        config.write_text(text)
        if git("status", "--porcelain", cwd=instructor):
            git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "--quiet", "-am", "back", cwd=instructor)


def test_make_publish_reports_errors_on_stderr(tmp_path):
    usage = subprocess.run(["make", "-s", "publish"], cwd=ROOT, capture_output=True, text=True)
    assert usage.returncode != 0 and "usage: make publish DEST=" in usage.stdout
    run = subprocess.run([sys.executable, "-m", "tools.publish", str(ROOT / "inside"), "--labs", "lab1-init"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.startswith("make publish: ")
    assert not (ROOT / "inside").exists()


# --- the leak scan can fail ---------------------------------------------------------------------

def a_hidden_test_line(instructor: Path) -> str:
    nb = nbformat.read(instructor / "solutions/lab1-init/lab1-init.ipynb", as_version=4)
    secrets = set(publish.secret_lines(instructor)["lab1-init"])
    for cell in nb.cells:
        for block in publish._regions(cell.source, "BEGIN HIDDEN" + " TESTS", "END HIDDEN" + " TESTS"):
            for line in block.splitlines():
                if line.strip() in secrets:
                    return line.strip()
    raise AssertionError("lab 1 has no distinctive hidden-test line")


def plantings(line: str) -> dict[str, bytes]:
    """``line`` hidden in the ways a leak would come: re-indented in code, spread over highlighted
    HTML spans, in a notebook's output, inside a wheel."""
    spaced = " ".join(line.replace(" ", ""))  # different whitespace everywhere
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("courselib/extra.py", f"def f():\n        {line}\n")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "print(1)", outputs=[nbformat.v4.new_output("stream", name="stdout", text=line + "\n")])])
    return {
        "src/courselib/utils.py": f"\n\ndef helper():\n    {spaced}\n".encode(),
        "page.html": "".join(f"<span class='n'>{html.escape(ch)}</span>" for ch in line).encode(),
        "book/extra.ipynb": json.dumps(nbformat.from_dict(notebook)).encode(),
        "dist/courselib-0.1.0-py3-none-any.whl": wheel.getvalue(),
    }


def test_a_planted_hidden_test_line_is_caught_in_every_form(instructor, edition, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(edition, copy, ignore=shutil.ignore_patterns(".git"))
    secrets = publish.secret_lines(instructor)
    assert all(len(lines) >= 10 for lines in secrets.values()), {k: len(v) for k, v in secrets.items()}
    assert publish.scan(copy, secrets) == []
    line = a_hidden_test_line(instructor)
    for where, data in plantings(line).items():
        path = copy / where
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as f:
            f.write(data)
    findings = publish.scan(copy, secrets)
    assert sorted((f.path, f.what) for f in findings) == \
        sorted((where, f"a line of lab1-init's solutions or hidden tests: {line}") for where in plantings(line))


@pytest.mark.parametrize("plant", ["marker", "instructor file", "instructor url"])
def test_markers_instructor_files_and_the_private_url_are_caught(instructor, edition, tmp_path, plant):
    copy = tmp_path / "copy"
    shutil.copytree(edition, copy, ignore=shutil.ignore_patterns(".git"))
    private = yaml.safe_load((ROOT / "_config.yml").read_text())["publish"]["instructor_repository"]
    if plant == "marker":
        (copy / "tools" / "notes.py").write_text("### " + publish.nbgrader_markers()[2] + "\n")
    elif plant == "instructor file":
        shutil.copytree(instructor / "tests" / "lab_mistakes", copy / "tests" / "lab_mistakes")
    else:
        (copy / "README.md").write_text(f"Clone {private}\n")
    findings = publish.scan(copy, {}, [private])
    assert findings, plant
    assert {f.what.split(" ")[0] for f in findings} == {"marker": {"nbgrader"}, "instructor file": {"an"},
                                                       "instructor url": {"instructor-only"}}[plant]
