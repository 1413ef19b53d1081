"""The notebooks' setup cell: present everywhere, inert where courselib is installed, and on a
fresh machine (Colab-like: torch present, courselib absent) it installs courselib from its source."""
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
    assert not stale, f"stale or missing setup cell (run `make setup-cells`): {stale}"


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
