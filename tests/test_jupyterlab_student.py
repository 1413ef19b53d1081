"""The student at the keyboard: a student lab and a chapter in a real JupyterLab 4, on screen.

One `jupyter lab` server of this environment runs on loopback, configured as the student edition
configures it (tools/student_edition/jupyter/, on JUPYTER_CONFIG_PATH as the edition's `make lab`
puts it: no formgrader, no course list, no "Create Assignment"), in a scratch folder holding the
student lab as `make labs` wrote it (blank), the same lab with the reference answers filled in,
and a chapter. Debian's Chromium, driven by Playwright, opens them as a student would and checks
what the page shows:

- the blank lab opens unmodified (no "unsaved changes" mark before any edit: its metadata is what
  JupyterLab's kernel would write, tools/setup_cell.py), its long helper cell collapsed to its
  ``#@title`` line;
- Run All on the blank lab: the first error is in the first test cell, names the function to
  write, and its traceback ends in the notebook's own answer cell (the checking frames folded by
  IPython into "[... skipping hidden N frame]", no courselib frame). JupyterLab does not stop
  there: a cell tagged ``raises-exception`` (nbval's tag, which `make labs` puts on the cells that
  call an unwritten stub) does not stop Run All, so every test cell shows its error, and each must
  name the function it waits for in the same way; each experiment cell names the answers it runs
  (labcheck.require_written), none fails with a KeyError or NameError;
- with the reference answers, Run All runs every cell (experiments included) without an error,
  and no test cell shows an ``Out[n]``; nbgrader's Validate button reports success, and the
  server's log of that validation has no warning about a cell value read as a score;
- the chapter opens unmodified too and renders its MyST (jupyterlab-myst): {cite} roles as citations, the self-check
  answers as closed dropdowns that open on a click, math typeset; no raw directive is shown;
- the instructor interface is absent: no formgrader or course list (server and page), no
  "Create Assignment" panel, the Nbgrader menu offers only the assignment list.
"""
from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from grading import labs
from support import COURSE, start_jupyter_lab, stop
from tools import generate_labs

pytestmark = pytest.mark.pipeline

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LAB = "lab1-init"
CHAPTER = ROOT / "book" / "05_normalization.ipynb"
EDITION_CONFIG = ROOT / "tools" / "student_edition" / "jupyter"  # what publish ships as jupyter/
INSTRUCTOR_PLUGINS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list",
                      "@jupyter/nbgrader:create-assignment")
WRITTEN = "A thoughtful written answer."
STARTUP_TIMEOUT = 60
RUN_TIMEOUT = 300
VALIDATE_TIMEOUT = 300


# --- the server -----------------------------------------------------------------------------------

class Server:
    def __init__(self, proc: subprocess.Popen, url: str, token: str, root: Path, log: Path):
        self.proc, self.url, self.token, self.root, self.log = proc, url.rstrip("/"), token, root, log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def status(self, path: str) -> int:
        req = urllib.request.Request(f"{self.url}{path}", headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code

    def page_config(self) -> dict:
        req = urllib.request.Request(f"{self.url}/lab", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=20) as resp:
            html = resp.read().decode()
        found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
        assert found, "the /lab page has no jupyter-config-data"
        return json.loads(found.group(1))

    def open_url(self, path: str) -> str:
        """The page that opens ``path`` in a workspace of its own (no notebook restored from an
        earlier page)."""
        return f"{self.url}/lab/workspaces/{secrets.token_hex(4)}/tree/{path}?reset&token={self.token}"


def filled(student: Path, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The student lab with ``answers`` in its answer cells and a written answer: what a student
    who is done has (the cells' metadata untouched)."""
    nb = nbformat.read(student, as_version=4)
    for cell in nb.cells:
        meta = labs.nbmeta(cell)
        if labs.is_answer(cell):
            cell.source = answers[meta["grade_id"]]
        elif cell.cell_type == "markdown" and meta.get("solution"):
            cell.source = WRITTEN
    return nb


def on_this_python(path: Path) -> None:
    """The committed notebooks hold the Python version of the machine that wrote them
    (tools/setup_cell.py:kernel_metadata); JupyterLab rewrites that one field when its kernel runs
    another version (what a student on another Python sees once). The copies get this Python's
    version, so that the tests check the rest of the metadata here whatever the machine's Python."""
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["language_info"]["version"]
    nb.metadata["language_info"]["version"] = platform.python_version()
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    tmp = tmp_path_factory.mktemp("jupyterlab-student")
    root = tmp / "home"
    shutil.copytree(ROOT / "labs" / LAB, root / "blank")
    shutil.copytree(ROOT / "labs" / LAB, root / "answered")
    reference = labs.answers(labs.read(COURSE.source_path(LAB)))
    nbformat.write(filled(root / "answered" / f"{LAB}.ipynb", reference), root / "answered" / f"{LAB}.ipynb")
    (root / "book").mkdir()
    for name in (CHAPTER.name, "references.bib"):
        shutil.copy2(ROOT / "book" / name, root / "book" / name)
    for notebook in root.glob("*/*.ipynb"):
        on_this_python(notebook)
    # a fresh user: no user config (the edition's config comes first on JUPYTER_CONFIG_PATH, as
    # its `make lab` puts it), a scratch nbgrader exchange, settings that keep the test offline
    # and show every cell at once (no windowing: all cells are in the page)
    (tmp / "config").mkdir()
    (tmp / "exchange").mkdir()
    (tmp / "config" / "nbgrader_config.py").write_text(f"c.Exchange.root = {str(tmp / 'exchange')!r}\n")
    settings = tmp / "settings"
    for plugin, values in (("@jupyterlab/notebook-extension/tracker", {"windowingMode": "none"}),
                           ("@jupyterlab/apputils-extension/notification",
                            {"fetchNews": "false", "checkForUpdates": False})):
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    runtime = tmp / "runtime"
    env = dict(os.environ)
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # the python3 kernelspec runs "python"
               JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_CONFIG_PATH=str(EDITION_CONFIG),
               JUPYTER_DATA_DIR=str(tmp / "data"), JUPYTER_RUNTIME_DIR=str(runtime),
               IPYTHONDIR=str(tmp / "ipython"), JUPYTER_PLATFORM_DIRS="0", PYDEVD_DISABLE_FILE_VALIDATION="1",
               OMP_NUM_THREADS="1")
    for name in ("JUPYTER_TOKEN", "MPLBACKEND"):
        env.pop(name, None)  # the kernel uses the inline backend, as in a browser
    token = secrets.token_hex(16)
    log = tmp / "server.log"
    proc, url = start_jupyter_lab([f"--LabApp.user_settings_dir={settings}",
                                   f"--LabApp.workspaces_dir={tmp / 'workspaces'}"],
                                  token=token, root=root, env=env, log=log, timeout=STARTUP_TIMEOUT)
    try:
        yield Server(proc, url, token, root, log)
    finally:
        stop(proc, grace=15)


# --- the page -------------------------------------------------------------------------------------

CELLS_JS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')]
  .map(c => ({
    code: c.classList.contains('jp-CodeCell'),
    prompt: (c.querySelector('.jp-InputPrompt') || {}).textContent || '',
    errors: [...c.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
      .map(o => o.textContent).filter(t => /Traceback|Error/.test(t)),
    results: c.querySelectorAll('.jp-OutputArea-executeResult').length,
    placeholder: (c.querySelector('.jp-InputPlaceholder') || {}).textContent || null,
    editorShown: [...c.querySelectorAll('.jp-InputArea-editor')].some(e => e.offsetParent !== null),
    height: c.getBoundingClientRect().height,
  }))"""


def open_notebook(browser, server: Server, path: str):
    """A new page with the notebook ``path`` open and its kernel idle; (page, console errors)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.open_url(path))
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=STARTUP_TIMEOUT * 1000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=STARTUP_TIMEOUT * 1000)
    return page, errors


def cells(page) -> list[dict]:
    return page.evaluate(CELLS_JS)


def is_dirty(page) -> bool:
    """JupyterLab's "unsaved changes" mark on the notebook's tab."""
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
    return "jp-mod-dirty" in (tab.first.get_attribute("class") or "")


def assert_unmodified(page, what: str, nb) -> None:
    """The notebook ``nb`` (a lab or a chapter) shows no "unsaved changes" mark once its kernel has
    started: its metadata is what JupyterLab would write (make setup-cells)."""
    time.sleep(3)  # the kernel's info (language_info) and spec arrive after it is idle
    assert not is_dirty(page), (
        f"JupyterLab marks the untouched {what} modified: its kernelspec or language_info is not what the "
        f"kernel writes (make setup-cells: tools/setup_cell.py:kernel_metadata); it has {nb.metadata}")


def run_all(page, timeout: float = RUN_TIMEOUT) -> list[dict]:
    """Run > Run All Cells, as a student clicks it; waits until no cell is queued or running and
    the kernel is idle; returns :data:`CELLS_JS`'s view of every cell."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    deadline, stable = time.monotonic() + timeout, 0
    while stable < 3:
        assert time.monotonic() < deadline, f"Run All did not finish in {timeout} s"
        time.sleep(0.5)
        view = cells(page)
        idle = page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']").count() == 1
        started = any(re.search(r"\[\d+\]", c["prompt"]) for c in view if c["code"])
        stable = stable + 1 if idle and started and not any("*" in c["prompt"] for c in view) else 0
    return view


def test_the_lab_opens_unmodified_with_its_helper_cell_collapsed(browser, server):
    nb = nbformat.read(server.root / "blank" / f"{LAB}.ipynb", as_version=4)
    page, errors = open_notebook(browser, server, f"blank/{LAB}.ipynb")
    try:
        assert_unmodified(page, "lab", nb)
        view = cells(page)
        assert len(view) == len(nb.cells)
        helpers = [i for i, c in enumerate(nb.cells) if generate_labs.is_long_helper(c)]
        assert helpers
        for i in helpers:
            title = nb.cells[i].source.splitlines()[0]
            assert view[i]["placeholder"] and view[i]["placeholder"].strip() == title.strip(), (i, view[i])
            assert not view[i]["editorShown"] and view[i]["height"] < 120, (i, view[i])
        shown = [i for i, c in enumerate(view) if c["placeholder"] is not None and i not in helpers]
        assert not shown, f"cells collapsed that are not long helpers: {shown}"
        assert not errors, errors
    finally:
        page.close()


def _answer_for(test_id: str, answers: list[str]) -> str:
    """The answer a test cell checks: the longest answer grade_id that its own id continues."""
    return max((a for a in answers if test_id.startswith(f"test_{a}")), key=len)


def test_run_all_on_the_blank_lab_names_what_to_write_at_the_students_line(browser, server):
    nb = nbformat.read(server.root / "blank" / f"{LAB}.ipynb", as_version=4)
    answers = list(labs.answers(nb))
    tests = {i: labs.nbmeta(c)["grade_id"] for i, c in enumerate(nb.cells) if labs.is_test(c)}
    page, errors = open_notebook(browser, server, f"blank/{LAB}.ipynb")
    try:
        view = run_all(page)
    finally:
        page.close()
    failing = [i for i, c in enumerate(view) if c["errors"]]
    first = min(tests)
    assert failing and failing[0] == first, (
        f"the first error should be in the first test cell ({first}), errors are in cells {failing}")
    problems = {}
    for i, grade_id in tests.items():
        if not view[i]["errors"]:
            problems[grade_id] = "shows no error on the blank lab"
            continue
        text = view[i]["errors"][0]
        function = _answer_for(grade_id, answers)
        # the last frame is the student's answer cell, at its raise
        frames = re.findall(r"^(?:Cell In\[\d+\], line \d+(?:, in (\w+))?|File .*)", text, re.M)
        if f"NotImplementedError: {function} is not written yet" not in text:
            problems[grade_id] = f"does not name {function}"
        elif "courselib" in text:
            problems[grade_id] = "shows a frame of courselib"
        elif not re.search(r"\[\.\.\. skipping hidden \d+ frame", text):
            problems[grade_id] = "folds no hidden frame"
        elif (not frames or frames[-1] != function
              or not text.rstrip().splitlines()[-1].startswith("NotImplementedError")):
            problems[grade_id] = f"does not end at the answer cell's raise, but in {frames[-1:]}"
        else:
            continue
        problems[grade_id] += ":\n" + text[-2500:]
    assert not problems, "\n\n".join(f"{k} {v}" for k, v in problems.items())
    first_text = view[first]["errors"][0]
    assert not re.search(r"^File ", first_text, re.M), f"a library frame in the first error:\n{first_text}"
    # the experiments (after the tests) say which answers they need, each of them: no KeyError or
    # NameError in a later cell because an earlier experiment stopped
    experiments = [i for i, c in enumerate(nb.cells)
                   if c.cell_type == "code" and "experiment" in c.metadata.get("tags", [])]
    assert experiments
    for i in experiments:
        text = "\n".join(view[i]["errors"])
        assert text and "NotImplementedError: This experiment runs your code, and `" in text, (i, text[-1500:])
        assert "KeyError" not in text and "NameError" not in text, (i, text[-1500:])
    assert not errors, errors


def test_with_the_reference_answers_every_cell_runs_and_validate_succeeds(browser, server):
    nb = nbformat.read(server.root / "answered" / f"{LAB}.ipynb", as_version=4)
    tests = {i: labs.nbmeta(c)["grade_id"] for i, c in enumerate(nb.cells) if labs.is_test(c)}
    page, errors = open_notebook(browser, server, f"answered/{LAB}.ipynb")
    try:
        view = run_all(page)
        failing = {i: c["errors"][0][-1500:] for i, c in enumerate(view) if c["errors"]}
        assert not failing, f"cells that fail with the reference answers: {failing}"
        # (a collapsed cell shows no prompt: the helper cell ran if the tests after it passed)
        not_run = [i for i, c in enumerate(view) if c["code"] and c["placeholder"] is None
                   and not re.search(r"\[\d+\]", c["prompt"])]
        assert not not_run, f"code cells Run All did not run: {not_run}"
        shown = {grade_id: view[i]["prompt"] for i, grade_id in tests.items() if view[i]["results"]}
        assert not shown, f"test cells that show an Out[n] value: {shown}"
        # nbgrader's Validate, as a student clicks it (it saves the notebook, then validates it)
        before = len(server.log_text())
        page.locator(".validate-button").click()
        dialog = page.locator(".jp-Dialog .jp-Dialog-content")
        dialog.wait_for(timeout=VALIDATE_TIMEOUT * 1000)
        message = dialog.text_content()
        assert "Success! Your notebook passes all the tests." in message, message[:3000]
        log = server.log_text()[before:]
        assert not re.search(r"cannot be converted to\s+a float|future releases", log), log[-3000:]
        assert not errors, errors
    finally:
        page.close()


def test_a_chapter_opens_unmodified_and_renders_its_citations_and_collapsed_answers(browser, server):
    assert "jupyterlab-myst" in {e["name"] for e in server.page_config()["federated_extensions"]}
    nb = nbformat.read(server.root / "book" / CHAPTER.name, as_version=4)
    cited = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "{cite}`" in c.source]
    answers = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and ":class: dropdown" in c.source]
    assert cited and answers
    page, errors = open_notebook(browser, server, f"book/{CHAPTER.name}")
    try:
        assert_unmodified(page, "chapter", nb)
        # what the page shows of each cell's input: the rendered markdown (the editor holding the
        # source is hidden, and innerText leaves hidden elements out)
        markdown = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell .jp-InputArea")
        # typeset math (jupyterlab-myst's KaTeX, or JupyterLab's own MathJax): the markdown is rendered
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-MarkdownCell .katex, .jp-MarkdownCell mjx-container').length > 0",
            timeout=STARTUP_TIMEOUT * 1000)
        for i in cited + answers:
            text = markdown.nth(i).inner_text()
            assert "{cite}" not in text and "{admonition}" not in text and ":class:" not in text, (i, text[:500])
        for i in cited:  # a role the renderer understood: an element of its own holding the key
            keys = [k.strip() for role in re.findall(r"\{cite\}`([^`]+)`", nb.cells[i].source) for k in role.split(",")]
            for key in keys:
                rendered = markdown.nth(i).locator("span, a, cite", has_text=key)
                assert rendered.count() >= 1, (i, key, markdown.nth(i).inner_text()[:1000])
            assert "`" not in markdown.nth(i).inner_text(), (i, markdown.nth(i).inner_text()[:1000])
        cell = markdown.nth(answers[0])
        dropdowns = cell.locator("details")
        expected = nb.cells[answers[0]].source.count(":class: dropdown")
        assert dropdowns.count() == expected, (dropdowns.count(), expected)
        first = dropdowns.first
        assert first.get_attribute("open") is None, "a self-check answer starts open"
        body = first.locator(":scope > :not(summary)").first
        assert not body.is_visible(), "the answer is readable before it is opened"
        assert "Answer" in first.locator("summary").text_content()
        first.locator("summary").click()
        body.wait_for(state="visible", timeout=5000)
        assert first.get_attribute("open") is not None
        assert cell.locator(".katex").count() > 0 and "\\sqrt" not in cell.inner_text(), \
            "the answers' math is not typeset"
        assert not errors, errors
    finally:
        page.close()


def test_no_instructor_interface(browser, server):
    """As the student edition ships it: the formgrader and the course list answer nothing, their
    lab plugins and "Create Assignment" are disabled; Validate and the assignment list remain."""
    assert server.status("/formgrader") == 404 and server.status("/formgraders") == 404
    assert server.status("/formgrader/api/status") == 404
    disabled = server.page_config().get("disabledExtensions") or []
    disabled = [k for k, v in disabled.items() if v] if isinstance(disabled, dict) else disabled
    assert set(INSTRUCTOR_PLUGINS) <= set(disabled), disabled
    assert not {"@jupyter/nbgrader", "@jupyter/nbgrader:validate-assignment",
                "@jupyter/nbgrader:assignment-list"} & set(disabled), disabled
    page, errors = open_notebook(browser, server, f"blank/{LAB}.ipynb")
    try:
        assert page.locator(".validate-button").count() == 1
        tabs = " ".join(page.locator(".jp-SideBar .lm-TabBar-tab").evaluate_all(
            "ts => ts.map(t => (t.title || '') + ' ' + (t.dataset.id || ''))"))
        assert "Create Assignment" not in tabs and "create_assignment" not in tabs, tabs
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Nbgrader$")).click()
        items = page.locator(".lm-Menu:not(.lm-MenuBar) .lm-Menu-item:not(.lm-mod-hidden)").all_text_contents()
        assert [t.strip() for t in items] == ["Assignment List"], items
        assert not errors, errors
    finally:
        page.close()
