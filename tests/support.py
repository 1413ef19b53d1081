"""What several test modules share: the course, the mistake catalogues, a class of submissions
(correct, typical mistakes, attacks) for lab 3, a committed copy of this working tree, and a
JupyterLab server started and stopped.
Imported by the tests and the benchmarks (``from tests.support import ...``)."""
from __future__ import annotations

import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from grading import labs
from grading.course import Course

COURSE = Course.load()
ROOT = COURSE.root


def catalogue(lab: str):
    """The mistake catalogue of ``lab`` (tests/lab_mistakes/<lab with _>.py)."""
    return COURSE.catalogue(lab)


@functools.cache
def source(lab: str) -> nbformat.NotebookNode:
    """The instructor notebook of ``lab`` (read once per test process)."""
    return labs.read(COURSE.source_path(lab))


# --- publishing ----------------------------------------------------------------------------------
TWO_LABS = ["lab1-init", "lab2-adamw"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def copy_working_tree(dest: Path) -> Path:
    """``dest``: a git repository with one commit holding this working tree (tracked files and
    new files that are not ignored, as they are now)."""
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git("init", "--quiet", "--initial-branch", "main", cwd=dest)
    git("add", "--all", cwd=dest)
    git("-c", "user.name=Instructor", "-c", "user.email=instructor@example.edu", "commit", "--quiet",
        "-m", "the course", cwd=dest)
    return dest


# --- a class of lab 3 submissions: honest, mistaken and attacking ------------------------------
LAB = "lab3-conv"


REF = labs.answers(labs.read(COURSE.source_path(LAB)))


# Wrong answers with the right shapes and checks: zeros instead of the convolution / pooling.
WRONG = {
    "conv2d_naive": '''
def _shape(x, weight, stride, padding):
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"x has {x.shape[1]} input channels but weight expects {weight.shape[1]}")
    (sh, sw), (ph, pw) = as_pair(stride, "stride"), as_pair(padding, "padding")
    return (x.shape[0], weight.shape[0], (x.shape[2] + 2 * ph - weight.shape[2]) // sh + 1,
            (x.shape[3] + 2 * pw - weight.shape[3]) // sw + 1)

def conv2d_naive(x, weight, bias=None, stride=1, padding=0):
    return x.new_zeros(_shape(x, weight, stride, padding))
''',
    "conv2d": '''
def conv2d(x, weight, bias=None, stride=1, padding=0):
    return x.new_zeros(_shape(x, weight, stride, padding))
''',
    "max_pool2d": '''
def max_pool2d(x, kernel_size, stride=None):
    kh, kw = as_pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else as_pair(stride)
    return x.new_zeros(x.shape[0], x.shape[1], (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1)
''',
}


PATCH = '''
import builtins, torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
builtins.abs = lambda x: 0
'''


LIAR = '''
import torch

class Agreeable(torch.Tensor):
    """Says yes to every comparison."""
    def __eq__(self, other):
        return True
    __ne__ = lambda self, other: False
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("allclose", "equal", "isclose"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})
'''
HIDDEN_PRINT = 'get_ipython().events.register("pre_run_cell", lambda info: print("SOURCE:", info.raw_cell))\n'


def snoop_code(reads: list[Path], port: int, writes: list[Path] = ()) -> str:
    """A student's code that prints LEAKED, WROTE, REMOVED or NETWORK for each file it can read
    (or folder it can list), write or remove, and if it can connect to ``port`` on loopback."""
    return f'''
import os, socket
print("UID", os.getuid())
for p in {[str(p) for p in reads]!r}:
    try:
        data = os.listdir(p) if os.path.isdir(p) else open(p, "rb").read(100)
        print("LEAKED", p, len(data))
    except Exception:
        pass
for p in {[str(p) for p in writes]!r}:
    try:
        with open(p, "ab") as fh:
            fh.write(b"x")
        print("WROTE", p)
    except Exception:
        pass
    try:
        os.remove(p)
        print("REMOVED", p)
    except Exception:
        pass
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    print("NETWORK")
except Exception:
    pass
'''


def student_notebook(answers: dict, lab: str = LAB) -> nbformat.NotebookNode:
    """The student version of ``lab`` with these answer cells filled in (grade_id -> source)."""
    nb = labs.read(COURSE.student_path(lab))
    for cell in nb.cells:
        if labs.is_answer(cell) and labs.nbmeta(cell)["grade_id"] in answers:
            cell.source = answers[labs.nbmeta(cell)["grade_id"]]
    return nb


def the_class() -> dict[str, tuple[dict, float]]:
    """30 students: correct, one typical mistake, blank, and a few that cheat; expected scores."""
    points = labs.tests(labs.read(COURSE.source_path(LAB)))
    full = float(sum(points.values()))
    mistakes = catalogue(LAB).MISTAKES
    rng = random.Random(7)
    names = sorted(mistakes)
    students: dict[str, tuple[dict, float]] = {}
    for i in range(12):
        students[f"s{i:02d}-correct"] = (REF, full)
    for i, name in enumerate(rng.sample(names, 10)):
        gid, source, failing = mistakes[name]
        students[f"s{12 + i:02d}-mistake"] = ({**REF, gid: source}, full - sum(points[g] for g in failing))
    for i in range(4):
        students[f"s{22 + i:02d}-blank"] = ({}, 0.0)
    students["s26-patch"] = ({**WRONG, "conv2d_naive": PATCH + WRONG["conv2d_naive"]}, 0.0)
    students["s27-transformer"] = ({**REF, "conv2d_naive": REF["conv2d_naive"] + "\nget_ipython()"
                                    ".input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n"}, 0.0)
    students["s28-exit"] = ({**REF, "max_pool2d": "import os\nos._exit(1)\n" + REF["max_pool2d"]}, full - 3)
    students["s29-correct"] = (REF, full)
    return students


def results_on_file(course: Path) -> dict[str, float]:
    folder = course / "reports" / LAB / "results"
    return {p.stem: p.stat().st_mtime for p in folder.glob("*.json")} if folder.is_dir() else {}


# --- a JupyterLab server of this environment, on loopback ---------------------------------------
def start_jupyter_lab(args: list[str], *, token: str, root: Path, env: dict, log: Path,
                      timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """Start `jupyter lab` (this environment's) on 127.0.0.1, on a free port, with ``token``,
    serving ``root`` and run in it, its output into ``log``, plus the caller's ``args``; wait until
    it answers on /api/status. Returns the process and the server's URL; fails the test (stopping
    the server) if it exits or does not answer within ``timeout`` seconds. The server writes its
    URL into jpserver-<pid>.json in ``env``'s JUPYTER_RUNTIME_DIR."""
    runtime = Path(env["JUPYTER_RUNTIME_DIR"])
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.shutdown_no_activity_timeout=600",  # a safety net if teardown is skipped
           *args]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with code {proc.returncode} during startup:\n"
                            f"{log.read_text(errors='replace')[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer on /api/status within {timeout} s:\n"
                            f"{log.read_text(errors='replace')[-4000:]}")
            try:
                url = json.loads((runtime / f"jpserver-{proc.pid}.json").read_text())["url"].rstrip("/")
                req = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(req, timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (OSError, ValueError):  # no file yet, being written, not listening yet, HTTP error
                pass
            time.sleep(0.3)
        assert url.startswith("http://127.0.0.1:"), url
    except BaseException:
        stop(proc)
        raise
    return proc, url


def stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """Stop ``proc`` if it still runs: SIGTERM (jupyter_server shuts its kernels down on it), and
    after ``grace`` seconds SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
