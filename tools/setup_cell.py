"""The setup cell every notebook starts with, generated from the repository URL in _config.yml.

That URL is the public repository (the student edition, docs/publishing.md), never the private
instructor repository: on Colab (or anywhere courselib is missing) the cell installs courselib,
and only it, from there:
Colab already has torch, numpy, matplotlib, tqdm and ipywidgets. Elsewhere it does nothing.
``COURSELIB_SOURCE`` overrides where it installs from (tests point it at a local copy).

    python -m tools.setup_cell --check   # exit 1 if a notebook's setup cell is missing or stale
    python -m tools.setup_cell --write   # insert or refresh it in every notebook
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


def is_current(nb, source: str) -> bool:
    i = first_code_cell(nb)
    return i is not None and nb.cells[i].source == source and nb.cells[i].get("id") == CELL_ID


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
        print(f"{p.relative_to(ROOT)}: setup cell missing or stale (run `make setup-cells`)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
