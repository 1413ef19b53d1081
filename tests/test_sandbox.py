"""grading.sandbox: nbgrader autograde with every kernel in a bubblewrap sandbox.

A scratch nbgrader course with one tiny lab (an answer cell ``add`` and two test cells worth
1 point each, the second with hidden tests). Submissions are graded one after the other like a
class: honest ones and ones that attack the grader from an extra cell. Every attack must cost
only its own submission; the honest submission graded after all of them still gets 2/2.

Everything resource-hungry is bounded by small limits (1 GiB address space, 64 processes,
3 s per cell) so a failing sandbox cannot hurt the machine running the tests.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook

from grading.course import Course
from grading.sandbox import MAX_SUBMISSION_BYTES, UID_POOL, Limits, autograde, check_submission

pytestmark = pytest.mark.pipeline
if os.geteuid() != 0 or shutil.which("bwrap") is None:
    pytestmark = [pytestmark, pytest.mark.skip(reason="needs root and bubblewrap (apt-get install bubblewrap)")]

ROOT = Path(__file__).resolve().parents[1]
NBGRADER = str(Path(sys.executable).with_name("nbgrader"))
LAB = "sbx"
HONEST = "def add(a, b):\n    return a + b\n"
LIMITS = Limits(cell_timeout=3, submission_timeout=60, memory=1 << 30, processes=64, cpu_seconds=60,
                output_bytes_per_cell=256 << 10, output_bytes_total=1 << 20, scratch_bytes=64 << 20)
# The flushed flood fills the kernel's ZMQ send queue (up to 1000 messages of 1 MB) before the
# cell times out; room for that keeps the kernel alive, so the outcome does not depend on timing.
# The fork bomb's copies keep spinning (fork refused, try again) until the kernel dies: the test
# cells after it share the CPU with 60-odd busy processes, and with a loaded machine 3 s per cell
# was not always enough for them (seen in CI-like runs: 1/2).
ATTACK_LIMITS = {"flood": dataclasses.replace(LIMITS, memory=4 << 30, cell_timeout=8),  # > 200 MB on a busy machine
                 "forkbomb": dataclasses.replace(LIMITS, cell_timeout=15)}


def _meta(**kw) -> dict:
    base = {"schema_version": 3, "solution": False, "grade": False, "locked": False, "task": False}
    return {"nbgrader": {**base, **kw}}


def _source_notebook() -> nbformat.NotebookNode:
    nb = new_notebook(cells=[
        new_markdown_cell("# Sandbox lab", metadata=_meta(grade_id="intro", locked=True)),
        new_code_cell("def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
                      metadata=_meta(grade_id="answer", solution=True)),
        new_code_cell("assert add(1, 2) == 3",
                      metadata=_meta(grade_id="test_visible", grade=True, locked=True, points=1)),
        new_code_cell("assert add(2, 2) == 4\n### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0  # HIDDEN-TEST-MARKER\n"
                      "### END HIDDEN TESTS",
                      metadata=_meta(grade_id="test_hidden", grade=True, locked=True, points=1)),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def nbg(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    run = subprocess.run([NBGRADER, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = Course.load().scratch(tmp_path_factory.mktemp("sandbox"), ())
    (course / "solutions" / LAB).mkdir()
    nbformat.write(_source_notebook(), course / "solutions" / LAB / f"{LAB}.ipynb")
    nbg("generate_assignment", LAB, "--force", cwd=course)
    return course


def submit(course: Path, student: str, *extra: str, answer: str = HONEST) -> Path:
    """The released notebook with ``answer`` filled in and ``extra`` cells inserted after it."""
    nb = nbformat.read(course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    pos = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "answer")
    nb.cells[pos].source = answer
    for offset, code in enumerate(extra, 1):
        nb.cells.insert(pos + offset, new_code_cell(code))
    folder = course / "submitted" / student / LAB
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{LAB}.ipynb")
    (folder / "notes.txt").write_text("a data file the student handed in\n")
    return folder


def score(course: Path, student: str) -> float:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return gb.find_submission(LAB, student).code_score


def graded_cell_outputs(course: Path, student: str, needle: str) -> list:
    nb = nbformat.read(course / "autograded" / student / LAB / f"{LAB}.ipynb", as_version=4)
    return next(c.outputs for c in nb.cells if needle in c.source)


def sandbox_processes(out_dir: Path) -> list[psutil.Process]:
    """The bwrap processes of the autograde writing to ``out_dir`` and every process inside their
    pid namespaces (other sandboxes, e.g. another test session's, are not counted)."""
    host_ns = os.readlink("/proc/self/ns/pid")
    procs, namespaces = [], set()
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and cmd[0].endswith("bwrap") and f"{out_dir}" in cmd:
            procs.append(p)
            with contextlib.suppress(OSError):
                namespaces.add(os.readlink(f"/proc/{p.pid}/ns/pid"))
    namespaces.discard(host_ns)
    for p in psutil.process_iter():
        try:
            if os.readlink(f"/proc/{p.pid}/ns/pid") in namespaces and p not in procs:
                procs.append(p)
        except OSError:
            pass
    return procs


def leftover_processes(out_dir: Path, grace: float = 2.0) -> list[psutil.Process]:
    """Processes of that sandbox still there after ``grace`` seconds (a pid namespace dies asynchronously)."""
    deadline = time.monotonic() + grace
    def alive(p: psutil.Process) -> bool:
        try:
            return p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    while (left := [p for p in sandbox_processes(out_dir) if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def probe_code(course: Path, port: int) -> str:
    paths = {
        "source notebook": course / "solutions" / LAB / f"{LAB}.ipynb",
        "gradebook": course / "gradebook.db",
        "other student": course / "submitted" / "honest_first" / LAB / f"{LAB}.ipynb",
        "own graded notebook": course / "autograded" / "probe" / LAB / f"{LAB}.ipynb",
        "repo readme": ROOT / "README.md",
        "repo solutions": ROOT / "solutions",
        "root home": Path("/root/.bashrc"),
        "shadow": Path("/etc/shadow"),
    }
    writes = {
        "gradebook": course / "gradebook.db",
        "courselib": ROOT / "src" / "courselib" / "pwned.py",
        "other student": course / "submitted" / "honest_first" / LAB / "pwned.txt",
        "venv": Path(sys.prefix) / "pwned.txt",
    }
    skip = sorted({"/proc", "/sys", "/dev", "/usr", os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)})
    return f"""
import json, os, socket
def _try(fn):
    try:
        fn()
        return True
    except BaseException as exc:
        return type(exc).__name__
def _read(p):
    with open(p, "rb") as fh:
        fh.read(1)
def _write(p):
    with open(p, "ab") as fh:
        fh.write(b"x")
res = {{"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "cwd_files": sorted(os.listdir(".")), "root": sorted(os.listdir("/root")),
        "repo": sorted(os.listdir({str(ROOT)!r})), "env": dict(os.environ)}}
res["read"] = {{k: _try(lambda p=p: _read(p))
               for k, p in {json.dumps({k: str(v) for k, v in paths.items()})}.items()}}
res["write"] = {{k: _try(lambda p=p: _write(p))
                for k, p in {json.dumps({k: str(v) for k, v in writes.items()})}.items()}}
res["write_cwd"] = _try(lambda: _write("scratch.txt"))
def _connect():
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
res["connect"] = _try(_connect)
notebooks = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in {skip!r}]
    notebooks += [os.path.join(top, f) for f in files if f.endswith(".ipynb")]
res["notebooks"] = notebooks
with open(os.environ["COURSELIB_RECORD"], "wb") as fh:
    fh.write(b"written by the probe")
with open("/grading-out/probe.json", "w") as fh:
    json.dump(res, fh)
"""


# attack cells, graded in this order between two honest submissions
ATTACKS = {
    "kill_parent": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",),
    "exit": ("import os\nos._exit(0)",),
    "loop": ("while True:\n    pass",),
    # many small messages (dropped by CappedExecute past the cell's allowance), then huge ones,
    # each flushed (refused by ZMQ: the grader never decodes them), counted in /grading-out/sent
    "flood": ('import time\nfor drip in range(300):\n    print("y" * 2_000)\n    time.sleep(0.005)',
              'sent = open("/grading-out/sent", "ab", buffering=0)\nwhile True:\n'
              '    print("x" * 10**6, flush=True)\n    sent.write(b".")'),
    # huge ones without flushing: ipykernel buffers them until the kernel's own memory runs out
    "flood_buffered": ('while True:\n    print("x" * 10**6)',),
    "alloc": ('blob = b"x" * (10 * 2**30)',),
    "forkbomb": ("import os\nwhile True:\n    os.fork()",),
}


@pytest.fixture(scope="module")
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


def nbgrader_processes(me: psutil.Process) -> list[psutil.Process]:
    """The autograde processes: forked by grading.nbgrader_run's fork server (a child of this
    process), or children of this process themselves."""
    found = []
    for child in me.children():
        with contextlib.suppress(psutil.Error):
            server = "forkserver" in " ".join(child.cmdline())
            found += child.children() if server else [child]
    return found


def sample(peak: list[int], done: threading.Event, out_dir: Path) -> None:
    """Until ``done``: peak[0], the largest RSS of an autograde process; peak[1], the most
    processes of a sandbox user in the sandboxes writing to ``out_dir``."""
    me = psutil.Process()
    while not done.is_set():
        for proc in nbgrader_processes(me):
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], proc.memory_info().rss)
        with contextlib.suppress(psutil.Error):
            peak[1] = max(peak[1], len([p for p in sandbox_processes(out_dir) if p.uids().real in UID_POOL]))
        time.sleep(0.1)


@pytest.fixture(scope="module")
def graded(course, listener, tmp_path_factory) -> dict[str, dict]:
    """Grade the whole class in order; for each student: the result, its score, the peak RSS of
    its nbgrader process and the sandbox user's processes left when autograde() returned."""
    submit(course, "honest_first")
    submit(course, "probe", probe_code(course, listener.getsockname()[1]))
    for sid, cells in ATTACKS.items():
        submit(course, sid, *cells)
    submit(course, "honest_last")
    outs = tmp_path_factory.mktemp("out")
    graded: dict[str, dict] = {}
    for sid in ["honest_first", "probe", *ATTACKS, "honest_last"]:
        peak = [0, 0]
        done = threading.Event()
        sampler = threading.Thread(target=sample, args=(peak, done, outs / sid))
        sampler.start()
        try:
            res = autograde(course, LAB, sid, limits=ATTACK_LIMITS.get(sid, LIMITS), out_dir=outs / sid)
        finally:
            done.set()
            sampler.join()
        graded[sid] = {"result": res, "score": score(course, sid), "grader_rss": peak[0], "max_procs": peak[1],
                       "leftover": leftover_processes(outs / sid)}
    return graded


def test_honest_submissions_get_full_marks_around_the_attacks(graded):
    for sid in ("honest_first", "honest_last"):
        assert graded[sid]["result"].status == "ok", graded[sid]["result"]
        assert graded[sid]["score"] == 2.0


def test_nothing_survives_a_submission(graded):
    for sid, g in graded.items():
        assert g["leftover"] == [], f"{sid} left processes behind: {g['leftover']}"


def test_kernel_runs_as_nobody_seeing_only_its_copy(graded):
    assert graded["probe"]["result"].status == "ok"
    assert graded["probe"]["score"] == 2.0
    probe = json.loads((graded["probe"]["result"].out_dir / "probe.json").read_text())
    # nobody (65534), or another user of the pool when a sandbox elsewhere on the machine has it
    assert probe["uid"] in UID_POOL
    assert (probe["uid"], probe["euid"], probe["gid"], probe["groups"]) == (probe["uid"],) * 3 + ([],)
    assert probe["cwd_files"] == ["notes.txt"]  # a copy of the submission without the notebook
    assert probe["write_cwd"] is True
    assert probe["notebooks"] == []  # no notebook anywhere: not the graded one, not the sources
    assert probe["root"] == [".pyenv"] or not sys.base_prefix.startswith("/root/")
    assert sorted(probe["repo"]) == [".venv", "src"]
    for what, outcome in probe["read"].items():
        assert outcome in ("FileNotFoundError", "PermissionError"), f"could read {what}"
    for what, outcome in probe["write"].items():
        assert outcome in ("FileNotFoundError", "PermissionError", "OSError"), f"could write {what}"
    assert not any(k.startswith(("JPY_", "JUPYTER", "GRADING")) for k in probe["env"])
    assert probe["env"]["HOME"].startswith("/tmp/")


def test_no_network(graded, listener):
    probe = json.loads((graded["probe"]["result"].out_dir / "probe.json").read_text())
    assert probe["connect"] in ("ConnectionRefusedError", "OSError", "TimeoutError")
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_courselib_record_lands_in_out_dir(graded):
    out = graded["probe"]["result"].out_dir
    probe = json.loads((out / "probe.json").read_text())
    assert probe["env"]["COURSELIB_RECORD"] == "/grading-out/records.bin"
    assert (out / "records.bin").read_bytes() == b"written by the probe"


def test_killing_the_parent_is_refused(graded, course):
    g = graded["kill_parent"]
    assert g["result"].status == "ok" and g["score"] == 2.0, g["result"]
    assert "PermissionError" in json.dumps(graded_cell_outputs(course, "kill_parent", "getppid"))


def test_exit_costs_only_that_submission(graded, course):
    g = graded["exit"]
    assert g["result"].status == "error"
    assert "kernel died" in g["result"].reason
    assert g["score"] == 0.0
    # nbgrader's own failure handling: the half-graded notebook is removed, no auto scores
    assert not (course / "autograded" / "exit" / LAB).exists()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grades = gb.find_submission_notebook(LAB, LAB, "exit").grades
        assert [g.auto_score for g in grades] == [None, None]


def test_endless_loop_times_out_and_the_rest_runs(graded, course):
    g = graded["loop"]
    assert g["result"].status == "ok" and g["score"] == 2.0, g["result"]
    assert LIMITS.cell_timeout <= g["result"].seconds < 30
    assert "CellTimeoutError" in json.dumps(graded_cell_outputs(course, "loop", "while True"))


def test_output_flood_is_capped(graded, course):
    g = graded["flood"]
    assert g["result"].status == "ok" and g["score"] == 2.0, g["result"]
    sent = (g["result"].out_dir / "sent").stat().st_size
    flood = json.dumps(graded_cell_outputs(course, "flood", 'print("x"'))
    assert "CellTimeoutError" in flood
    assert len(flood) < LIMITS.output_bytes_per_cell + 64_000
    # the grader process never held the flood (hundreds of MB sent, RSS as for an honest submission)
    print(f"\nflood sent {sent} MB; nbgrader peak RSS: honest {graded['honest_first']['grader_rss'] >> 20} MiB, "
          f"flood {g['grader_rss'] >> 20} MiB")
    assert sent > 200
    assert graded["honest_first"]["grader_rss"] > 50 << 20  # the sampler saw the nbgrader process
    assert g["grader_rss"] < graded["honest_first"]["grader_rss"] + (100 << 20)


def test_a_buffered_flood_costs_only_its_own_submission(graded, course):
    # ipykernel keeps unflushed output in memory until its IO thread sends it, so this flood
    # exhausts the kernel's own RLIMIT_AS. Where that lands is timing (all seen here): in the
    # cell (MemoryError; the kernel survives and the notebook is graded), or in ipykernel's
    # threads (the kernel dies, or garbles its messages so that nbclient refuses them: "Invalid
    # Signature", or stops answering so that the interrupt at the cell's time limit goes unanswered
    # and it is killed), and the submission is an error or a timeout with the reason and no auto
    # scores. Whichever it is, the grader is untouched (and honest_last, graded next, gets 2/2).
    g = graded["flood_buffered"]
    if g["result"].status == "ok":
        assert "MemoryError" in json.dumps(graded_cell_outputs(course, "flood_buffered", 'print("x"'))
    else:
        assert g["result"].status in ("error", "timeout") and g["result"].reason, g["result"]
        if g["result"].status == "timeout":
            assert "did not answer the interrupt" in g["result"].reason
        assert g["score"] == 0.0
        assert not (course / "autograded" / "flood_buffered" / LAB).exists()
    assert g["grader_rss"] < graded["honest_first"]["grader_rss"] + (100 << 20)


def test_many_small_outputs_are_capped(graded, course):
    assert graded["flood"]["result"].status == "ok", graded["flood"]["result"]
    outputs = graded_cell_outputs(course, "flood", "drip")
    assert outputs[-1]["text"].startswith("[grader] output limit reached")
    assert LIMITS.output_bytes_per_cell // 2 < len(json.dumps(outputs)) < LIMITS.output_bytes_per_cell + 64_000


def test_huge_allocation_fails_inside(graded, course):
    g = graded["alloc"]
    assert g["result"].status == "ok" and g["score"] == 2.0, g["result"]
    assert "MemoryError" in json.dumps(graded_cell_outputs(course, "alloc", "blob"))


def test_fork_bomb_is_bounded(graded, course):
    g = graded["forkbomb"]
    assert g["result"].status == "ok" and g["score"] == 2.0, g["result"]
    # the bomb forks until RLIMIT_NPROC (processes and threads of its sandbox user) says no: the
    # kernel gets BlockingIOError, or (timing) is still retrying when the cell times out; the
    # pid namespace dies with the kernel
    assert 10 < g["max_procs"] <= LIMITS.processes
    outputs = json.dumps(graded_cell_outputs(course, "forkbomb", "os.fork"))
    assert "BlockingIOError" in outputs or "CellTimeoutError" in outputs


def test_submission_timeout_kills_the_whole_run(course, tmp_path):
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    submit(course, "stubborn", code)
    limits = Limits(cell_timeout=2, submission_timeout=6, memory=1 << 30, processes=64)
    res = autograde(course, LAB, "stubborn", limits=limits, out_dir=tmp_path / "out")
    assert res.status == "timeout", res
    assert "6 s" in res.reason
    assert 6 <= res.seconds < 15
    assert not (course / "autograded" / "stubborn" / LAB).exists()
    assert not leftover_processes(tmp_path / "out")


def test_a_kernel_that_ignores_the_interrupt_is_killed_after_the_grace(course, tmp_path):
    """The cell's time limit (3 s) plus the grace (2 s), not the submission's limit (120 s)."""
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    submit(course, "deaf", code)
    limits = Limits(cell_timeout=3, interrupt_grace=2, submission_timeout=120, memory=1 << 30, processes=64)
    res = autograde(course, LAB, "deaf", limits=limits, out_dir=tmp_path / "out")
    assert res.status == "timeout", res
    assert "did not answer the interrupt within 2 s" in res.reason
    assert 5 <= res.seconds < 30, res
    assert not (course / "autograded" / "deaf" / LAB).exists()
    assert not leftover_processes(tmp_path / "out")
    # an interruptible endless loop is stopped by the interrupt itself, and the notebook goes on
    submit(course, "loop", "while True:\n    pass")
    res = autograde(course, LAB, "loop", limits=limits, out_dir=tmp_path / "out2")
    assert res.status == "ok", res
    assert score(course, "loop") == 2.0


def test_symlinks_and_special_files_are_refused(course, tmp_path):
    folder = submit(course, "linker")
    assert check_submission(folder) is None
    (folder / "answers.txt").symlink_to(course / "gradebook.db")
    assert "symbolic link" in check_submission(folder)
    res = autograde(course, LAB, "linker", limits=LIMITS, out_dir=tmp_path / "out")
    assert res.status == "rejected" and "answers.txt" in res.reason
    (folder / "answers.txt").unlink()
    os.mkfifo(folder / "pipe")
    assert "not a regular file" in check_submission(folder)
    (folder / "pipe").unlink()
    (folder / "big.bin").write_bytes(b"")
    os.truncate(folder / "big.bin", MAX_SUBMISSION_BYTES + 1)
    assert "larger than" in check_submission(folder)


def test_sandbox_overhead(course, tmp_path):
    """Sandboxed vs plain kernel for one autograde of a submission importing torch (printed)."""
    code = "import torch\nprint(torch.ones(3).sum())"
    submit(course, "torch_box", code)
    submit(course, "torch_plain", code)
    boxed, plain = [], []
    for _ in range(1):
        t0 = time.monotonic()
        res = autograde(course, LAB, "torch_box", limits=Limits(), out_dir=tmp_path / "out")
        boxed.append(time.monotonic() - t0)
        assert res.status == "ok" and score(course, "torch_box") == 2.0
        t0 = time.monotonic()
        nbg("autograde", LAB, "--student", "torch_plain", "--force", cwd=course)
        plain.append(time.monotonic() - t0)
        assert score(course, "torch_plain") == 2.0
    print(f"\nautograde of one torch submission: sandboxed {statistics.median(boxed):.2f} s, "
          f"plain kernel {statistics.median(plain):.2f} s")


def test_grading_processes_running_at_once_never_share_a_sandbox_user():
    """RLIMIT_NPROC is per user: a fork bomb graded by one process (another class run, another
    test worker) must not count against the kernels of another."""
    from grading import sandbox

    code = ("import sys\nfrom grading import sandbox\nwith sandbox._sandbox_uid() as uid:\n"
            "    print(uid, flush=True)\n    sys.stdin.read()\n")
    other = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        theirs = int(other.stdout.readline())
        with sandbox._sandbox_uid() as mine, sandbox._sandbox_uid() as also_mine:
            assert len({theirs, mine, also_mine}) == 3
            assert {theirs, mine, also_mine} <= set(sandbox.UID_POOL)
    finally:
        other.communicate("", timeout=60)
    with sandbox._sandbox_uid() as after:  # released when the other process ended
        assert after in sandbox.UID_POOL
