"""pytest for the whole repository: nbval runs every notebook (pyproject.toml's testpaths), and
each chapter is executed once per test run.

- xdist (``--dist loadscope``): every test module, test class and notebook is a scope of its
  own, run in one worker (a notebook's cells in order, in one kernel), except the chapters'
  nbval runs and the website tests (tests/test_site.py, then tests/test_student_edition.py),
  which form one scope, run in that order. (``--dist loadgroup`` with ``xdist_group`` marks
  would say the same, but pytest-xdist 3.8 under pytest 9 ignores the marks: it renames nodes
  through an attribute pytest 9 no longer reads.)
- A chapter that nbval ran without an error goes into the website build's execution cache
  (tools/build_book.py), so the build that follows shows nbval's outputs instead of executing
  the chapter again. A chapter nbval did not run, or that failed, is executed by the build.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent
WEBSITE = "website"  # the xdist scope of the chapters' nbval runs and of the website tests
# The website tests, run in this order after the chapters' nbval runs: the course website, then
# the student edition's, built from the same execution cache.
WEBSITE_TESTS = ("tests/test_site.py", "tests/test_student_edition.py")


def _chapter(item: pytest.Item) -> Path | None:
    """The chapter whose nbval cell ``item`` is, or None."""
    path = Path(str(item.fspath))
    is_cell = type(item).__name__ == "IPyNbCell"
    return path if is_cell and path.suffix == ".ipynb" and path.parent == ROOT / "book" else None


def _website(nodeid: str) -> bool:
    """Whether ``nodeid`` is a chapter's nbval cell or a website test (one xdist scope)."""
    path = nodeid.split("::", 1)[0]
    return path in WEBSITE_TESTS or (path.startswith("book/") and path.endswith(".ipynb"))


def pytest_configure(config: pytest.Config) -> None:
    config.recorded_chapters = []  # put into the execution cache by this process (tests/test_site.py)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown when xdist is not loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CourseScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return WEBSITE if _website(nodeid) else super()._split_scope(nodeid)

    return CourseScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # the website tests after the chapters' nbval runs, wherever they were collected
    site = [i for i in items if _website(i.nodeid) and _chapter(i) is None]
    if site:
        rest = [i for i in items if i not in site]
        last = max((n for n, i in enumerate(rest) if _chapter(i) is not None), default=len(rest) - 1)
        items[:] = rest[:last + 1] + site + rest[last + 1:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    chapter = _chapter(item)
    if chapter is None or call.when not in ("setup", "call"):
        return
    run = item.parent.__dict__.setdefault("_course_run", {"start": time.monotonic(), "cells": {}, "ok": True})
    report = outcome.get_result()
    if not report.passed:
        run["ok"] = False
    elif call.when == "call":
        run["cells"][item.cell_num] = list(getattr(item, "test_outputs", []))


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    chapter = _chapter(item)
    if chapter is None or (nextitem is not None and nextitem.parent is item.parent):
        return
    run = item.parent.__dict__.pop("_course_run", None)
    nb = nbformat.read(chapter, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if run is None or not run["ok"] or set(run["cells"]) != set(range(len(code))):
        return  # not every cell ran, or one failed: the website build executes the chapter itself
    for number, cell in enumerate(code):
        cell.outputs = run["cells"][number]
        cell.execution_count = number + 1
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    import build_book

    build_book.record_execution(chapter, nb, time.monotonic() - run["start"])
    item.config.recorded_chapters.append(chapter.relative_to(ROOT).with_suffix("").as_posix())
