"""Build the course website: ``make book`` and the site tests (tests/test_site.py) run this.

    python -m tools.build_book [--path-output DIR]

Runs ``jupyter-book build`` on the repository with warnings as errors (``-W -n``) and
every notebook executed (an error in a cell fails the build: ``_config.yml``).

Jupyter Book 1's execution cache keys on a notebook's code cells only (their source and metadata), so a change in
``src/courselib`` (code or shipped data) would leave chapters executed with the old
helpers. The cache records the hash of the courselib its outputs were made with; when the hash
changes the cache is dropped, and the build rebuilds every page (``--all``: Sphinx itself
re-reads only the sources that changed), so every chapter is executed again.

nbval's run of the chapters (``make test``) puts each chapter it executed without error into
the same cache (:func:`record_execution`, called by the repository's ``conftest.py``), so the
website build that follows uses those outputs instead of executing the chapter a second time.
"""
from __future__ import annotations

import argparse
import hashlib
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
COURSELIB = ROOT / "src" / "courselib"
# ipykernel 7.4 logs this for every kernel started over local TCP (the build's kernels are
# local and short-lived); left out of the build's output so that real warnings stand out.
KERNEL_NOISE = "Kernel is running over TCP without encryption"
CACHE = "_build/.jupyter_cache"  # Jupyter Book's default, relative to the book's folder
CACHE_STAMP = "courselib-hash"   # in the cache: the courselib its outputs were made with


def toc_pages(root: Path = ROOT) -> list[str]:
    """Docnames in reading order: ``_toc.yml``'s root, then every part's entries, a ``glob``
    entry (e.g. ``labs/*/*``: every lab, found by folder) expanded to its pages in name order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        for entry in part["chapters"]:
            if "glob" in entry:
                found = {p.with_suffix("").relative_to(root).as_posix() for suffix in (".ipynb", ".md")
                         for p in root.glob(entry["glob"] + suffix) if ".ipynb_checkpoints" not in p.parts}
                pages += sorted(found)
            else:
                pages.append(entry["file"])
    return pages


def courselib_hash(courselib: Path = COURSELIB) -> str:
    """sha256 over courselib's files (names and contents, caches left out)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in courselib.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(courselib).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def prepare_cache(cache: Path, courselib: Path = COURSELIB) -> bool:
    """Drop the execution cache ``cache`` if its outputs were made with another courselib (or
    it does not say); returns whether it was dropped."""
    current = courselib_hash(courselib)
    stamp = cache / CACHE_STAMP
    if stamp.is_file() and stamp.read_text().strip() == current:
        return False
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    stamp.write_text(current + "\n")
    return True


def record_execution(notebook: Path, executed: nbformat.NotebookNode, seconds: float,
                     cache: Path = ROOT / CACHE) -> None:
    """Put ``executed`` (``notebook`` with the outputs of a run without errors, e.g. nbval's)
    into the website build's execution cache, which then shows those outputs instead of
    executing the notebook again."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    prepare_cache(cache)
    executed.metadata.setdefault("language_info", {  # as ipykernel reports it
        "name": "python", "version": platform.python_version(), "mimetype": "text/x-python",
        "file_extension": ".py", "pygments_lexer": "ipython3", "nbconvert_exporter": "python",
        "codemirror_mode": {"name": "ipython", "version": 3}})
    get_cache(str(cache)).cache_notebook_bundle(
        CacheBundleIn(executed, str(Path(notebook).resolve()), data={"execution_seconds": seconds}),
        check_validity=False, overwrite=True)


def build(path_output: Path = ROOT, quiet: bool = False, source: Path = ROOT,
          courselib: Path = COURSELIB, rewrite_all: bool = False) -> subprocess.CompletedProcess:
    """Build the book in ``source`` into ``path_output/_build/html``; returns the finished
    process (its ``returncode`` is non-zero on any warning or execution error; its output, with
    stderr merged in, is printed as it comes, or kept in ``stdout`` when ``quiet``). The execution
    cache is dropped when the files under ``courselib`` changed since the last good build.
    ``rewrite_all``: write every page again even if its source did not change."""
    build_dir = path_output / "_build"
    build_dir.mkdir(parents=True, exist_ok=True)
    stamp = build_dir / ".courselib-hash"
    current = courselib_hash(courselib)
    changed = not stamp.exists() or stamp.read_text().strip() != current
    had_cache = (build_dir / ".jupyter_cache").exists()
    if prepare_cache(build_dir / ".jupyter_cache", courselib) and had_cache:
        print("courselib changed since the last build: re-executing every notebook", flush=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(source), "-W", "-n", "--keep-going"]
    if changed or rewrite_all:
        cmd.append("--all")  # Sphinx re-reads only changed sources: an unchanged chapter would not re-run
    if path_output.resolve() != source.resolve():
        cmd += ["--path-output", str(path_output)]
    with subprocess.Popen(cmd, cwd=source, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, bufsize=1) as proc:
        kept = []
        for line in proc.stdout:
            if KERNEL_NOISE in line:
                continue
            kept.append(line)
            if not quiet:
                print(line, end="", flush=True)
    result = subprocess.CompletedProcess(cmd, proc.returncode, "".join(kept), "")
    if result.returncode == 0:
        stamp.write_text(current + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path-output", type=Path, default=ROOT,
                        help="folder to hold _build/ (default: the repository)")
    args = parser.parse_args(argv)
    result = build(args.path_output.resolve())
    if result.returncode != 0:
        print("\nThe book did not build cleanly: the first warning or cell error above says why.",
              file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
