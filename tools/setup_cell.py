"""The setup cell every notebook starts with, generated from the repository URL in _config.yml.

That URL is the public repository (the student edition, docs/publishing.md), never the private
instructor repository: on Colab (or anywhere courselib is missing) the cell installs courselib,
and only it, from there:
Colab already has torch, numpy, matplotlib, tqdm and ipywidgets. Elsewhere it does nothing.
``COURSELIB_SOURCE`` overrides where it installs from (tests point it at a local copy).
Every notebook also carries the course kernel's metadata (:func:`kernel_metadata`), so that
JupyterLab does not mark it modified as soon as it opens.

    python -m tools.setup_cell --check   # exit 1 if a notebook's setup cell or kernel metadata is missing or stale
    python -m tools.setup_cell --write   # insert or refresh them in every notebook
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
CELL_ID = "courselib-setup"
TAGS = ["remove-cell"]  # not shown on the website; present in every downloaded notebook


def pip_spec(config_path: Path = ROOT / "_config.yml") -> str:
    repo = yaml.safe_load(config_path.read_text())["repository"]
    return f"git+{repo['url'].rstrip('/')}@{repo.get('branch', 'main')}"


def setup_source(spec: str | None = None) -> str:
    spec = spec or pip_spec()
    return (
        "# Setup: installs the course helpers (courselib) when they are missing, as on Colab.\n"
        "# Anywhere courselib is already installed, this cell does nothing.\n"
        "import importlib.util\n"
        "import os\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        "if importlib.util.find_spec(\"courselib\") is None:\n"
        "    source = os.environ.get(\"COURSELIB_SOURCE\", \"" + spec + "\")\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\", \"--no-deps\", source],\n"
        "                   check=True)"
    )


def notebooks() -> list[Path]:
    pats = ("book/*.ipynb", "solutions/*/*.ipynb", "labs/*/*.ipynb")
    return sorted(p for pat in pats for p in ROOT.glob(pat) if ".ipynb_checkpoints" not in p.parts)


def first_code_cell(nb) -> int | None:
    return next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)


def kernel_metadata() -> dict:
    """The notebook metadata JupyterLab 4 writes when a notebook's kernel starts: ``kernelspec``
    from the python3 kernel's spec (display name "Python 3 (ipykernel)") and ``language_info``
    from the kernel's reply, which holds the version of the Python it runs. JupyterLab compares
    each with what the notebook holds (a deep equality) and marks the notebook modified when they
    differ, so that closing an untouched notebook would ask to save it. These are the values of the
    course kernel (this interpreter's ipykernel): a notebook opens unmodified where it runs this
    Python; under another Python version JupyterLab rewrites the ``version`` field (only), which
    :func:`has_kernel_metadata` therefore ignores."""
    from ipykernel.ipkernel import IPythonKernel
    from ipykernel.kernelspec import KERNEL_NAME, get_kernel_dict

    spec = get_kernel_dict()
    return {"kernelspec": {"name": KERNEL_NAME, "display_name": spec["display_name"], "language": spec["language"]},
            "language_info": dict(IPythonKernel.language_info)}


def _without_version(metadata: dict) -> dict:
    return {"kernelspec": dict(metadata.get("kernelspec", {})),
            "language_info": {k: v for k, v in metadata.get("language_info", {}).items() if k != "version"}}


def has_kernel_metadata(nb) -> bool:
    """Whether the notebook holds :func:`kernel_metadata` (the Python version aside)."""
    return _without_version(nb.metadata) == _without_version(kernel_metadata())


def is_current(nb, source: str) -> bool:
    """The notebook starts with the current setup cell and carries the course kernel's metadata."""
    i = first_code_cell(nb)
    return (i is not None and nb.cells[i].source == source and nb.cells[i].get("id") == CELL_ID
            and has_kernel_metadata(nb))


def write(path: Path, source: str) -> bool:
    nb = nbformat.read(path, as_version=4)
    if is_current(nb, source):
        return False
    i = first_code_cell(nb)
    if i is not None and (nb.cells[i].get("id") == CELL_ID or "find_spec(\"courselib\")" in nb.cells[i].source):
        nb.cells[i].source = source
        nb.cells[i].id = CELL_ID
    else:
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": TAGS})
        cell.id = CELL_ID
        # after the leading markdown (title) cells, before any code
        nb.cells.insert(i if i is not None else len(nb.cells), cell)
    nb.cells[first_code_cell(nb)].metadata["tags"] = TAGS
    if not has_kernel_metadata(nb):
        nb.metadata.update(kernel_metadata())
    nbformat.write(nb, path)
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", action="store_true")
    g.add_argument("--write", action="store_true")
    args = ap.parse_args()
    source = setup_source()
    if args.write:
        changed = [p for p in notebooks() if write(p, source)]
        print(f"updated {len(changed)} notebook(s)" + "".join(f"\n  {p.relative_to(ROOT)}" for p in changed))
        return 0
    stale = [p for p in notebooks() if not is_current(nbformat.read(p, as_version=4), source)]
    for p in stale:
        print(f"{p.relative_to(ROOT)}: setup cell or kernel metadata missing or stale (run `make setup-cells`)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
