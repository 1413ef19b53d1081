"""The notebooks' setup cell: present everywhere, inert where courselib is installed, and on a
fresh machine (Colab-like: torch present, courselib absent) it installs courselib from its source,
after which a student lab runs there top to bottom."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from tools import setup_cell

ROOT = Path(__file__).resolve().parents[1]


def test_every_notebook_starts_with_the_current_setup_cell():
    nbs = setup_cell.notebooks()
    assert any(p.parent.name == "book" for p in nbs)
    src = setup_cell.setup_source()
    stale = [str(p.relative_to(ROOT)) for p in nbs if not setup_cell.is_current(nbformat.read(p, 4), src)]
    assert not stale, f"stale or missing setup cell or kernel metadata (run `make setup-cells`): {stale}"


def test_every_notebook_carries_the_kernel_metadata_jupyterlab_writes():
    """Else JupyterLab marks a chapter or lab modified as soon as its kernel starts (the browser
    test opens one of each); the Python version may differ from machine to machine."""
    nbs = setup_cell.notebooks()
    assert any(p.parent.name == "book" for p in nbs)
    expected = setup_cell.kernel_metadata()
    assert expected["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    for path in nbs:
        meta = nbformat.read(path, 4).metadata
        assert meta.get("kernelspec") == expected["kernelspec"], (path, meta.get("kernelspec"))
        info = dict(meta.get("language_info", {}))
        assert info.pop("version", None), (path, "language_info has no version")
        assert info == {k: v for k, v in expected["language_info"].items() if k != "version"}, (path, info)


def test_setup_cell_points_at_the_configured_repository():
    import yaml
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert f"git+{url}@" in setup_cell.setup_source()


def test_setup_cell_does_nothing_when_courselib_is_installed(monkeypatch):
    monkeypatch.setenv("COURSELIB_SOURCE", "/nonexistent/never-used")
    called = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: called.append(a))
    exec(setup_cell.setup_source(), {})
    assert called == []


@pytest.mark.pipeline
def test_setup_cell_installs_courselib_in_a_fresh_environment(tmp_path):
    """A fresh venv that sees torch & co. (as Colab has them) but not courselib."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # expose the course venv's third-party packages (a plain path line: its own .pth files,
    # such as courselib's editable hook, are not processed)
    Path(site, "colab_like.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    check = [str(py), "-c", "import importlib.util, torch; assert importlib.util.find_spec('courselib') is None"]
    subprocess.run(check, check=True)
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    env = {**os.environ, "COURSELIB_SOURCE": str(copy), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    cell = setup_cell.setup_source()
    run = subprocess.run([str(py), "-c", cell], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    probe = ("import courselib, pathlib; "
             "assert 'site-packages' in courselib.__file__, courselib.__file__; "
             "d = courselib.load_fashion_mnist(source='subset'); print(len(d.train_labels))")
    out = subprocess.run([str(py), "-c", probe], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "10000"
    # second run: courselib is there now, the cell does nothing (and needs no source)
    env["COURSELIB_SOURCE"] = "/nonexistent"
    assert subprocess.run([str(py), "-c", cell], env=env).returncode == 0
    run_a_lab_in(py, tmp_path)


LAB = sorted((ROOT / "labs").glob("*/*.ipynb"))[0]  # lab1-init


def lab_as_a_student_finishes_it(path: Path) -> tuple[nbformat.NotebookNode, bool]:
    """The student lab with the reference answers in its answer cells and no cell expected to
    raise, where this repository has the answers (the instructors' repository); else, in the
    student edition, the blank lab as it is (whose cells tagged raises-exception may fail);
    and whether the answers are in."""
    nb = nbformat.read(path, as_version=4)
    source = ROOT / "solutions" / path.parent.name / path.name
    if not source.is_file():
        return nb, False
    from grading import labs  # the instructors' repository only (the student edition has no grader)

    answers = labs.answers(labs.read(source))
    for cell in nb.cells:
        if labs.is_answer(cell):
            cell.source = answers[labs.nbmeta(cell)["grade_id"]]
        if "raises-exception" in cell.metadata.get("tags", []):
            cell.metadata["tags"] = [t for t in cell.metadata["tags"] if t != "raises-exception"]
    return nb, True


def run_a_lab_in(py: Path, tmp_path: Path) -> None:
    """Run every cell of a student lab (its setup cell, experiments included) with nbclient in a
    kernel of the fresh environment ``py``: with the reference answers, no cell may raise and no
    test cell may show a value."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    spec = tmp_path / "kernels" / "fresh"
    spec.mkdir(parents=True)
    argv = [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "fresh", "language": "python"}))
    nb, answered = lab_as_a_student_finishes_it(LAB)
    probe = "import sys, courselib\nprint(sys.prefix)\nprint(courselib.__file__)"
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    work = tmp_path / "student"
    shutil.copytree(LAB.parent, work)
    km = AsyncKernelManager(kernel_name="fresh", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
    # a cell that raises (other than one tagged raises-exception) stops the run: CellExecutionError
    NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(work)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), [c.source[:80] for c in code if not c.execution_count]
    where = code[-1].outputs[0]["text"].split()
    assert Path(where[0]) == py.parent.parent and "site-packages" in where[1], where
    if answered:
        from grading import labs

        errors = [c.source[:200] for c in code if any(o.output_type == "error" for o in c.outputs)]
        assert not errors, errors
        shown = [labs.nbmeta(c)["grade_id"] for c in code if labs.is_test(c)
                 and any(o.output_type == "execute_result" for o in c.outputs)]
        assert not shown, f"test cells that show an Out[n] value: {shown}"
