"""The student edition on its own: published with two labs released and cloned afresh, its own
tests collect every chapter and lab and its checks of itself pass; its website builds (warnings
fail it) with exactly the released labs and launch buttons on the public repository only; and
nothing in that website or in courselib's wheel and sdist built from it carries an answer.

This runs after tests/test_site.py, in the same worker (conftest.py): the edition's chapters are
the bytes nbval ran and the course website showed, so its build reuses that execution cache
instead of executing every chapter again (run alone, it executes them). The edition's README
commands in full, with a venv of its own, are `make publish` + `make test` + `make book` in the
clone (docs/publishing.md); here its tests run with this repository's environment.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from support import TWO_LABS, copy_working_tree, git
from tools import publish

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("student-edition")
    instructor = copy_working_tree(tmp / "instructor")
    assert publish.publish(tmp / "edition", TWO_LABS, root=instructor)
    git("clone", "--quiet", str(tmp / "edition"), str(tmp / "clone"), cwd=tmp)
    return tmp / "clone"


def run_in(folder: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python *args`` in ``folder`` with its own courselib first on the path."""
    env = {**os.environ, "PYTHONPATH": str(folder / "src"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_its_own_checks_pass(clone):
    """The tests whose outcome depends on the edition itself: among them, that its pytest collects
    every cell of every notebook it holds for nbval (the chapters and the released labs, see
    tests/test_publish.py). Its other tests check courselib, whose bytes this repository's tests
    run in the same run."""
    assert sorted(p.parent.name for p in clone.glob("labs/*/*.ipynb")) == TWO_LABS
    own = run_in(clone, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-m", "not pipeline",
                 "tests/test_notebook_hygiene.py", "tests/test_setup_cell.py", "tests/test_environment.py")
    assert own.returncode == 0, own.stdout[-3000:] + own.stderr[-3000:]
    assert re.search(r"\d+ passed", own.stdout) and "skipped" not in own.stdout.splitlines()[-1]


@pytest.fixture(scope="module")
def site(clone) -> Path:
    if (ROOT / "_build" / ".jupyter_cache").is_dir():
        shutil.copytree(ROOT / "_build" / ".jupyter_cache", clone / "_build" / ".jupyter_cache")
    build = run_in(clone, "tools/build_book.py", timeout=1800)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return clone / "_build" / "html"


def test_its_website_shows_exactly_the_released_labs(site, clone):
    assert sorted(p.name for p in (site / "labs").iterdir()) == TWO_LABS
    assert not [p for p in site.rglob("*lab3*")]
    home = (site / "book" / "intro.html").read_text(encoding="utf-8")
    assert sorted(set(re.findall(r'href="\.\./labs/([\w-]+)/', home))) == TWO_LABS  # the contents
    for lab in TWO_LABS:
        assert (site / "labs" / lab / f"{lab}.html").is_file()
        assert (site / "_sources" / "labs" / lab / f"{lab}.ipynb").is_file()


def test_its_launch_buttons_name_only_the_public_repository(site):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    public, private = config["repository"]["url"], config["publish"]["instructor_repository"]
    owner_repo = public.removeprefix("https://github.com/")
    for lab in TWO_LABS:
        page = (site / "labs" / lab / f"{lab}.html").read_text(encoding="utf-8")
        notebook = f"labs/{lab}/{lab}.ipynb"
        assert f"https://colab.research.google.com/github/{owner_repo}/blob/main/{notebook}" in page
        assert f"https://mybinder.org/v2/gh/{owner_repo}/main?urlpath=lab/tree/{notebook}" in page
        assert f"git-pull?repo={public.replace('https://', 'https%3A//')}" in page
    for path in site.rglob("*.html"):
        assert private not in path.read_text(encoding="utf-8"), path


def test_its_chapters_open_on_colab_as_their_colab_copies(site, clone):
    """A chapter's Colab button opens its copy in colab/ (tools/colab.py), a file of the edition,
    whose citations are the labels the website's bibliography prints (the letters included)."""
    config = yaml.safe_load((clone / "_config.yml").read_text())
    owner_repo = config["repository"]["url"].removeprefix("https://github.com/")
    chapters = sorted(p.stem for p in clone.glob("book/*.ipynb"))
    assert chapters and sorted(p.stem for p in clone.glob("colab/book/*.ipynb")) == chapters
    tracked = git("ls-files", "colab/book", cwd=clone).split()
    assert sorted(tracked) == [f"colab/book/{c}.ipynb" for c in chapters]
    for chapter in chapters:
        page = (site / "book" / f"{chapter}.html").read_text(encoding="utf-8")
        links = re.findall(r'https://colab\.research\.google\.com/github/[^"]+', page)
        assert links == [f"https://colab.research.google.com/github/{owner_repo}/blob/main/colab/book/{chapter}.ipynb"]
    for lab in TWO_LABS:  # the labs hold no MyST: Colab opens them as they are
        page = (site / "labs" / lab / f"{lab}.html").read_text(encoding="utf-8")
        assert f"/blob/main/labs/{lab}/{lab}.ipynb" in page and "/colab/" not in page
    bibliography = (site / "book" / "bibliography.html").read_text(encoding="utf-8")
    on_website = set(re.findall(r'<span class="fn-bracket">\[</span>(.*?)<span class="fn-bracket">\]</span>',
                                bibliography))
    in_copies = set()
    for copy in clone.glob("colab/book/*.ipynb"):
        cells = [c for c in json.loads(copy.read_text())["cells"] if c.get("id") == "colab-references"]
        for cell in cells:
            in_copies |= set(re.findall(r"^- \*\*(.+?)\*\*\. ", "".join(cell["source"]), re.M))
    assert len(in_copies) > 40 and any(re.search(r"\d{4}[ab]$", label) for label in in_copies), in_copies
    assert in_copies == on_website, (sorted(in_copies - on_website), sorted(on_website - in_copies))


def test_no_answer_in_its_website_or_in_courselib_wheel_and_sdist(site, clone, tmp_path):
    secrets = publish.secret_lines(ROOT)
    private = yaml.safe_load((ROOT / "_config.yml").read_text())["publish"]["instructor_repository"]
    assert publish.scan(site, secrets, [private]) == []
    source = tmp_path / "source"
    shutil.copytree(clone, source, ignore=shutil.ignore_patterns(".git", "_build"))
    dist = tmp_path / "dist"
    build = run_in(source, "-c", "import sys; from setuptools import build_meta as b; "
                   f"b.build_wheel({str(dist)!r}); b.build_sdist({str(dist)!r})")
    assert build.returncode == 0, build.stderr[-3000:]
    built = sorted(p.name for p in dist.iterdir())
    assert len(built) == 2 and built[0].endswith(".whl") and built[1].endswith(".tar.gz"), built
    with zipfile.ZipFile(dist / built[0]) as wheel:
        assert "courselib/checking.py" in wheel.namelist()
    assert publish.scan(dist, secrets, [private]) == []
