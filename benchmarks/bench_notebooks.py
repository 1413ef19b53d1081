"""The course's time budget: every notebook in a fresh kernel, and the website build.

    python benchmarks/bench_notebooks.py [--only-notebooks | --only-build] [--touch book/NN_x.ipynb]

1. Each chapter (book/*.ipynb) and instructor lab (solutions/*/*.ipynb) runs top to bottom in a
   fresh python3 kernel through nbclient, as `make test` and `make book` run them. Per notebook:
   wall time of the cells (kernel start-up apart), CPU time of the kernel process (user + sys,
   the figure that does not depend on how busy a shared machine is) and its peak RSS (VmHWM).
   Goals: each notebook < 90 s, all of them together < 10 min.
2. `jupyter-book build` of a copy of the book sources (the real tree is never touched) into a
   temporary --path-output: a full build (empty execution cache), then an incremental rebuild
   after one code cell of one chapter changed (only that chapter re-executes).
   Goal: incremental / full <= 0.2.

Each notebook's kernel inherits this process's environment (OMP_NUM_THREADS etc.).
``main()`` returns the results as a dict.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml

from grading.course import Course
from tools import build_book

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GOAL_NOTEBOOK_S = 90.0
GOAL_TOTAL_S = 600.0
GOAL_INCREMENTAL_RATIO = 0.2


def book_sources() -> list[str]:
    """What a copy of the book needs (paths relative to the repository): the two configuration
    files, the folders _toc.yml's pages and the bibliography live in, and the Sphinx local
    extensions _config.yml loads."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    files = build_book.toc_pages(ROOT)
    files += config.get("bibtex_bibfiles", [])
    sources = {"_config.yml", "_toc.yml"} | {Path(f).parts[0] for f in files}
    for name, folder in (config.get("sphinx", {}).get("local_extensions") or {}).items():
        sources.add(str(Path(folder) / f"{name}.py"))
    return sorted(sources)


def notebooks() -> list[Path]:
    course = Course.load(ROOT)
    return sorted((ROOT / "book").glob("*.ipynb")) + [course.source_path(lab) for lab in course.labs()]


def _proc_status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)


def _cpu_seconds(pid: int) -> float | None:
    """user + sys CPU time of a live process (psutil if installed, else /proc/<pid>/stat)."""
    try:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - the process is gone or unreadable: no figure
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _peak_rss_mb(pid: int) -> float | None:
    hwm = _proc_status(pid).get("VmHWM")
    if hwm:
        return int(hwm.split()[0]) / 1024
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20   # current, not peak
    except Exception:  # noqa: BLE001 - no psutil, or the process is gone: no figure
        return None


def run_notebook(path: Path, timeout: int = 900) -> dict:
    """Execute one notebook in a fresh kernel; the file on disk is not modified."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    result = {"notebook": str(path.relative_to(ROOT)), "ok": False, "error": None}
    with client.setup_kernel():
        result["startup_s"] = time.perf_counter() - start
        pid = getattr(client.km.provisioner, "pid", None)
        cpu0 = _cpu_seconds(pid) if pid else None
        t0 = time.perf_counter()
        try:
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            result["ok"] = True
        except Exception as exc:  # noqa: BLE001 - a failing cell: report it, keep benchmarking the others
            last = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ""
            result["error"] = f"{type(exc).__name__}: {last}"
        result["wall_s"] = time.perf_counter() - t0
        cpu1 = _cpu_seconds(pid) if pid else None
        result["cpu_s"] = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        result["peak_rss_mb"] = _peak_rss_mb(pid) if pid else None
    return result


def _fmt(value, spec=".1f", none="n/a") -> str:
    return none if value is None else format(value, spec)


def bench_notebooks(paths: list[Path]) -> dict:
    rows = []
    print(f"{'notebook':44s} {'wall s':>8s} {'cpu s':>8s} {'wall/goal':>9s} {'peak RSS':>9s}  status",
          flush=True)
    for path in paths:
        row = run_notebook(path)
        rows.append(row)
        ratio = row["wall_s"] / GOAL_NOTEBOOK_S
        if not row["ok"]:
            verdict = f"FAILED {row['error']}"
        elif row["wall_s"] < GOAL_NOTEBOOK_S:
            verdict = "ok"
        elif row["cpu_s"] is not None and row["cpu_s"] < GOAL_NOTEBOOK_S:
            verdict = "wall over 90 s, CPU under (busy machine?)"
        else:
            verdict = "OVER 90 s"
        print(f"{row['notebook']:44s} {row['wall_s']:8.1f} {_fmt(row['cpu_s']):>8s} {ratio:9.2f} "
              f"{_fmt(row['peak_rss_mb'], '.0f'):>6s} MB  {verdict}", flush=True)
    total_wall = sum(r["wall_s"] for r in rows)
    cpus = [r["cpu_s"] for r in rows if r["cpu_s"] is not None]
    total_cpu = sum(cpus) if len(cpus) == len(rows) else None
    startup = statistics.median(r["startup_s"] for r in rows)
    print("-" * 92)
    print(f"{'total':44s} {total_wall:8.1f} {_fmt(total_cpu):>8s} {total_wall / GOAL_TOTAL_S:9.2f} "
          f"{'':9s}  {'ok' if total_wall < GOAL_TOTAL_S else 'OVER 10 min'} (goal < {GOAL_TOTAL_S:.0f} s; "
          f"CPU/goal {_fmt(total_cpu / GOAL_TOTAL_S if total_cpu is not None else None, '.2f')})")
    slowest = max(rows, key=lambda r: r["wall_s"])
    print(f"slowest: {slowest['notebook']} ({slowest['wall_s']:.1f} s = {slowest['wall_s'] / GOAL_NOTEBOOK_S:.2f} "
          f"of the 90 s goal); kernel start-up (not counted above): median {startup:.1f} s")
    return {"rows": rows, "total_wall_s": total_wall, "total_cpu_s": total_cpu,
            "all_ok": all(r["ok"] for r in rows),
            "each_under_goal": all(r["wall_s"] < GOAL_NOTEBOOK_S for r in rows),
            "total_under_goal": total_wall < GOAL_TOTAL_S}


def _timed(cmd: list[str], log: Path, cwd: Path) -> dict:
    """Run cmd; wall time and CPU time of it and all its (waited-for) descendants, e.g. kernels."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": time.perf_counter() - start, "cpu_s": usage.ru_utime + usage.ru_stime,
            "returncode": proc.returncode, "log": str(log)}


def _touch_code_cell(path: Path) -> None:
    """Change the last code cell's source (a comment), as an author editing the chapter would."""
    nb = nbformat.read(path, as_version=4)
    cell = [c for c in nb.cells if c.cell_type == "code"][-1]
    cell.source = cell.source.rstrip("\n") + "\n# edited (benchmark)"
    nbformat.write(nb, path)


def bench_build(touch: str, keep: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench_book_"))
    try:
        src, out = tmp / "src", tmp / "out"
        for name in book_sources():
            item = ROOT / name
            if item.is_dir():
                shutil.copytree(item, src / name, ignore=shutil.ignore_patterns(
                    ".ipynb_checkpoints", "__pycache__", ".pytest_cache"))
            else:
                (src / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(item, src / name)
        cmd = [str(BIN / "jupyter-book"), "build", str(src), "--path-output", str(out),
               "-W", "-n", "--keep-going"]
        print(f"full build of a copy of the book ({src}) ...", flush=True)
        full = _timed(cmd, tmp / "full.log", src)
        _touch_code_cell(src / touch)
        print(f"incremental rebuild after editing a code cell of {touch} ...", flush=True)
        incr = _timed(cmd, tmp / "incremental.log", src)
        html = out / "_build" / "html"
        pages = len(list(html.rglob("*.html"))) if html.exists() else 0
        for name, run in (("full", full), ("incremental", incr)):
            if run["returncode"] != 0:   # -W: any Sphinx warning fails the build; show them
                lines = Path(run["log"]).read_text(errors="replace").splitlines()
                causes = [ln for ln in lines if re.search(r"WARNING|ERROR|Error|Exception|failed", ln)
                          and "Traceback" not in ln and "IPKernelApp" not in ln][:20]
                print(f"!! {name} build exited with {run['returncode']}; "
                      f"warnings and errors in its log:\n   " + "\n   ".join(causes or lines[-25:]))
        ratio_wall = incr["wall_s"] / full["wall_s"]
        ratio_cpu = incr["cpu_s"] / full["cpu_s"] if full["cpu_s"] else None
        print(f"\n{'jupyter-book build':28s} {'wall s':>8s} {'cpu s':>8s}  exit")
        print(f"{'full (empty cache)':28s} {full['wall_s']:8.1f} {full['cpu_s']:8.1f}  {full['returncode']}")
        print(f"{'incremental (1 cell edited)':28s} {incr['wall_s']:8.1f} {incr['cpu_s']:8.1f}  {incr['returncode']}")
        print(f"{'ratio incremental / full':28s} {ratio_wall:8.3f} {_fmt(ratio_cpu, '.3f'):>8s}  "
              f"{'ok' if ratio_wall <= GOAL_INCREMENTAL_RATIO else 'OVER'} (goal <= {GOAL_INCREMENTAL_RATIO})")
        print(f"{pages} HTML pages written; edited chapter: {touch}")
        failed = [name for name, run in (("full", full), ("incremental", incr)) if run["returncode"] != 0]
        if failed:
            raise SystemExit(f"the {' and '.join(failed)} build of the copy failed (log above): its "
                             "times are not a measurement of the book. `make book` shows the cause too.")
        return {"full": full, "incremental": incr, "ratio_wall": ratio_wall, "ratio_cpu": ratio_cpu,
                "touched": touch, "html_pages": pages,
                "ratio_under_goal": ratio_wall <= GOAL_INCREMENTAL_RATIO}
    finally:
        if keep:
            print(f"(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(only: str | None = None, touch: str | None = None, keep: bool = False) -> dict:
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"   # kernels run "python"
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    results: dict = {}
    if only != "build":
        results["notebooks"] = bench_notebooks(notebooks())
    if only != "notebooks":
        if touch is None:
            # edit a chapter of typical cost: the median by execution time, if measured
            chapters = [r for r in results.get("notebooks", {}).get("rows", []) if r["notebook"].startswith("book/")]
            touch = (sorted(chapters, key=lambda r: r["wall_s"])[len(chapters) // 2]["notebook"]
                     if chapters else "book/00_first_steps.ipynb")
        print()
        results["build"] = bench_build(touch, keep=keep)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--only-notebooks", dest="only", action="store_const", const="notebooks")
    group.add_argument("--only-build", dest="only", action="store_const", const="build")
    parser.add_argument("--touch", help="chapter whose code cell is edited before the rebuild "
                        "(default: the median-cost chapter)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary build directory")
    args = parser.parse_args()
    main(args.only, args.touch, args.keep)
