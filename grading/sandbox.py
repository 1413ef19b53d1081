"""Autograde one submission with nbgrader, every kernel started in a bubblewrap sandbox.

``autograde()`` runs ``nbgrader autograde <lab> --student <id> --force`` in a child process
(forked from a server that imported nbgrader once, :mod:`grading.nbgrader_run`; own process
group, killed after ``Limits.submission_timeout``) configured so that

* kernels use the ``course-sandbox`` kernelspec of a private, per-run ``JUPYTER_PATH``
  (:mod:`grading.sandbox_kernel`: bwrap, uid 65534, no network, rlimits), talking to nbgrader
  over ``ipc`` sockets in a per-run directory (``tcp`` cannot cross the unshared network);
* cells time out after ``Limits.cell_timeout`` and are interrupted by a message
  (``interrupt_mode: "message"``; the kernel is in its own pid namespace; ipykernel turns the
  message into a SIGINT of its own process); a kernel that has not answered the interrupt
  ``Limits.interrupt_grace`` seconds later (it ignores SIGINT, blocks where SIGINT cannot reach,
  or broke its own message loop) is killed, and what ran until then is graded;
* outputs are capped while they arrive (:class:`CappedExecute`), so a flood cannot fill the
  grader's memory.

A kernel that dies (``os._exit``, killed, out of memory) makes nbclient raise
``DeadKernelError``; nbgrader catches it per submission, logs "There was an error processing
assignment", deletes ``autograded/<student>/<lab>`` and exits with status 1, leaving the
gradebook's submission with no auto scores. ``autograde()`` reports that as status ``"error"``
with a readable reason; nothing else in the class is affected (one process per student).

Inside the sandbox the kernel sees only the Python installation, the venv, courselib, a
writable scratch copy of its own submission folder without notebooks (its cwd), ``/tmp``, and
``out_dir`` at ``/grading-out`` (``COURSELIB_RECORD=/grading-out/records.bin``).
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import zmq
import zmq.asyncio
from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.converters.autograde import Autograde
from nbgrader.preprocessors import Execute
from traitlets import Integer

from . import nbgrader_run, sandbox_kernel
from .gradebook import alembic_version
from .sandbox_kernel import SANDBOX_UID, SandboxError

__all__ = ["Limits", "AutogradeResult", "CappedExecute", "SandboxError", "check_submission", "autograde", "preflight",
           "stop_all", "allow_runs",
           "KERNEL_NAME", "MAX_SUBMISSION_BYTES", "MAX_SUBMISSION_FILES"]

KERNEL_NAME = "course-sandbox"
MAX_SUBMISSION_BYTES = 100 << 20
MAX_SUBMISSION_FILES = 1000
# Kernel messages queued in the grader before ZMQ drops them (each at most MAXMSGSIZE =
# output_bytes_per_cell + 256 KiB: ~160 MiB worst case with the default limits).
RECEIVE_HWM = 16
UNANSWERED_INTERRUPT = "The kernel did not answer the interrupt"


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission (the rlimits apply to each process in the sandbox)."""
    cell_timeout: int = 60           # s per cell (nbgrader Execute.timeout, interrupt on timeout)
    interrupt_grace: int = 5         # s the kernel has to answer that interrupt before it is killed
    submission_timeout: int = 600    # s wall clock for the whole autograde of one submission
    memory: int = 4 << 30            # bytes, RLIMIT_AS of the kernel (torch + numpy + mpl peak ~0.8 GiB)
    processes: int = 512             # RLIMIT_NPROC (per user; each concurrent sandbox has its own; threads count)
    cpu_seconds: int = 900           # RLIMIT_CPU
    file_size: int = 512 << 20       # RLIMIT_FSIZE
    open_files: int = 512            # RLIMIT_NOFILE
    output_bytes_per_cell: int = 1 << 20   # outputs beyond this are dropped while executing (note appended)
    output_bytes_total: int = 8 << 20      # per notebook
    scratch_bytes: int = 1 << 30     # size of the sandbox's tmpfs /tmp (holds the submission copy; host RAM)


@dataclass
class AutogradeResult:
    """What happened to one submission."""
    student: str
    status: str        # "ok", "timeout", "error", "rejected", "stopped" (by stop_all())
    reason: str        # readable, for the instructor ("" when ok)
    seconds: float
    out_dir: Path      # host directory the kernel could write to (COURSELIB_RECORD lives there)


def _message_bytes(obj: Any, budget: int) -> int:
    """Approximate size of a decoded message (string lengths, buffers); stops counting past ``budget``."""
    total = 0
    stack = [obj]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, (str, bytes, bytearray, memoryview)):
            total += len(item)
        elif isinstance(item, dict):
            total += 8 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            total += 8 * len(item)
            stack.extend(item)
        else:
            total += 8
    return total


class CappedExecute(Execute):
    """nbgrader's Execute with outputs capped while the kernel produces them.

    Every iopub message that would become part of the notebook (stream, display data, results,
    errors, display updates, widget comm traffic) is counted; past ``output_bytes_per_cell`` in
    a cell or ``output_bytes_total`` in the notebook it and everything after it from that cell
    is dropped, and one stderr note is appended to the cell. ZMQ itself refuses any single message
    larger than a cell's allowance
    (MAXMSGSIZE) and queues at most ``RECEIVE_HWM`` messages, so the grader never holds more
    than ~160 MiB of them (default limits). A refused message makes libzmq drop the iopub connection for good;
    the cell then ends without its idle status (after ``iopub_timeout``) and the iopub channel
    is reconnected before the next cell, so later cells keep their outputs.
    """

    output_bytes_per_cell = Integer(1 << 20, help="Output bytes kept per cell.").tag(config=True)
    output_bytes_total = Integer(8 << 20, help="Output bytes kept per notebook.").tag(config=True)
    interrupt_grace = Integer(5, help="Seconds the kernel has to answer the interrupt sent when a cell "
                                      "times out before it is killed.").tag(config=True)

    _PASS = frozenset({"status", "execute_input", "clear_output"})

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> Any:
        self._cap_total = 0
        self._cap_cell: int | None = None
        self._cap_cell_bytes = 0
        self._cap_noted: set[int] = set()
        self._idle_seen = True
        self._iopub_broken = False
        return super().preprocess(nb, resources, km)

    async def async_execute_cell(self, cell: NotebookNode, cell_index: int, execution_count: int | None = None,
                                 store_history: bool = True) -> NotebookNode:
        if self._iopub_broken and self.kc is not None:
            self.log.warning("Reconnecting the iopub channel (a kernel message exceeded the size limit)")
            self.kc.iopub_channel.close()
            self.kc._iopub_channel = None
            self.kc.iopub_channel  # noqa: B018 - the property makes a new, subscribed socket
            await asyncio.sleep(0.3)  # let the subscription reach the kernel's PUB socket
            self._iopub_broken = False
        self._idle_seen = False
        out = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if cell.cell_type == "code" and cell.source.strip() and not self._idle_seen:
            self._iopub_broken = True
        return out

    # nbconvert calls the sync wrapper, which NotebookClient binds to its own coroutine
    execute_cell = run_sync(async_execute_cell)

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None) -> dict | None:
        """A cell passed its time limit. nbclient interrupts the kernel and goes on to the next
        cell at once; a kernel that ignores the interrupt is still busy, so every later cell
        waited its whole time limit too (measured: 600 s, the submission's limit, on lab 1).
        Here the kernel has ``interrupt_grace`` seconds to answer the
        interrupt (then nbgrader's ``CellTimeoutError`` is the cell's error, as without this
        override, and the notebook goes on); otherwise the kernel is killed and the notebook
        ends with ``DeadKernelError``: nbgrader then records no scores, and the trusted replay
        grades the checks that ran before (:func:`grading.trusted.replay`)."""
        self.log.error("Timeout waiting for execute reply (%is): interrupting the kernel", timeout)
        await ensure_async(self.km.interrupt_kernel())
        try:
            reply = await ensure_async(self.kc.shell_channel.get_msg(timeout=self.interrupt_grace))
        except Empty:
            reply = None
        if reply is not None:  # the kernel stopped the cell: nbgrader's timeout error says why
            return {"content": {**self.error_on_timeout, "status": "error"}} if self.error_on_timeout else reply
        self.log.error("%s (%d s after the cell's time limit of %d s): killing it", UNANSWERED_INTERRUPT,
                       self.interrupt_grace, timeout)
        await ensure_async(self.km.shutdown_kernel(now=True))
        raise DeadKernelError(f"{UNANSWERED_INTERRUPT}; the kernel was killed")

    def create_kernel_manager(self) -> Any:
        km = super().create_kernel_manager()
        # The client nbclient makes with km.client() gets a context of its own; give it one whose
        # sockets (pyzmq: Context.setsockopt sets defaults for new sockets) refuse oversized
        # messages and queue few of them.
        ctx = zmq.asyncio.Context()
        ctx.setsockopt(zmq.MAXMSGSIZE, self.output_bytes_per_cell + (256 << 10))
        ctx.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        make_client = km.client
        km.client = lambda **kw: make_client(**{"context": ctx, **kw})
        return km

    def process_message(self, msg: dict, cell: NotebookNode, cell_index: int) -> Any:
        if msg.get("msg_type") == "status" and msg.get("content", {}).get("execution_state") == "idle":
            self._idle_seen = True
        if msg.get("msg_type") not in self._PASS:
            if cell_index != self._cap_cell:
                self._cap_cell, self._cap_cell_bytes = cell_index, 0
            room = min(self.output_bytes_per_cell - self._cap_cell_bytes, self.output_bytes_total - self._cap_total)
            size = _message_bytes(msg.get("content"), max(room, 0)) + sum(len(b) for b in msg.get("buffers") or ())
            if size > room or cell_index in self._cap_noted:
                if cell_index not in self._cap_noted:
                    self._cap_noted.add(cell_index)
                    cell.outputs.append(new_output("stream", name="stderr", text=(
                        f"[grader] output limit reached ({self.output_bytes_per_cell} bytes per cell, "
                        f"{self.output_bytes_total} per notebook): further output of this cell was dropped\n")))
                return None
            self._cap_cell_bytes += size
            self._cap_total += size
        return super().process_message(msg, cell, cell_index)


def check_submission(path: Path) -> str | None:
    """Reason to refuse a submitted/<student>/<lab> folder (symlinks, devices, fifos, anything
    but regular files and directories; hard links; too large), or None if it is acceptable."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot read the submission folder: {exc}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a plain directory"
    total = files = 0
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(path)
            try:
                st = os.lstat(full)
            except OSError as exc:
                return f"cannot read {rel}: {exc}"
            if stat.S_ISLNK(st.st_mode):
                return f"{rel} is a symbolic link (only regular files and folders are accepted)"
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                return f"{rel} is not a regular file (device, fifo or socket)"
            if st.st_nlink > 1:
                return f"{rel} is a hard link (only regular files are accepted)"
            files += 1
            total += st.st_size
            if files > MAX_SUBMISSION_FILES:
                return f"more than {MAX_SUBMISSION_FILES} files"
            if total > MAX_SUBMISSION_BYTES:
                return f"larger than {MAX_SUBMISSION_BYTES >> 20} MiB"
    return None


def _preprocessor_names() -> list[str]:
    """nbgrader's autograde preprocessors with Execute replaced by CappedExecute."""
    out = []
    for cls in Autograde.class_traits()["autograde_preprocessors"].default():
        if isinstance(cls, str):
            out.append(cls)
        elif cls is Execute:
            out.append(f"{__name__}.CappedExecute")
        else:
            out.append(f"{cls.__module__}.{cls.__qualname__}")
    return out


def _write_kernelspec(root: Path) -> None:
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        # -P: the kernel's cwd is the student's folder; never import a "grading" package from it
        "argv": [sys.executable, "-P", "-m", "grading.sandbox_kernel", "-f", "{connection_file}"],
        "display_name": "Python 3 (grading sandbox)",
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))


def _reason_from_log(log: str, returncode: int) -> str:
    lines = log.splitlines()
    setup = [ln.split("grading sandbox:", 1)[1].strip() for ln in lines if "grading sandbox:" in ln
             and "not copied" not in ln]
    if setup or "Kernel died before replying" in log:
        detail = setup[-1] if setup else "see autograde.log in out_dir"
        return f"the sandboxed kernel could not start: {detail}"
    if "DeadKernelError" in log or "Kernel died" in log:
        return ("the kernel died while running the notebook (it exited, was killed, or ran out of memory); "
                "nbgrader recorded no autograde scores for this submission")
    errors = [ln.strip() for ln in lines if "[ERROR]" in ln or "Error" in ln]
    tail = errors[-3:] if errors else log.strip().splitlines()[-3:]
    return f"nbgrader autograde failed (exit status {returncode}): " + " | ".join(tail)


# RLIMIT_NPROC counts the processes and threads of a *user*: sandboxes running at the same time
# get users of their own, so a fork bomb in one cannot starve another. One at a time: nobody.
# Other grading processes on the machine (a second class run, parallel test workers) draw from
# the same pool: each uid in use is held with a lock file (released when its holder exits).
UID_POOL = (SANDBOX_UID, *range(64001, 64001 + 255))
UID_LOCKS = Path(tempfile.gettempdir()) / "course-grading-uids"
_free_uids = list(UID_POOL)
_uid_lock = threading.Lock()


def _claim(uid: int) -> int | None:
    """An open file descriptor holding ``uid`` for this process, or None if another holds it."""
    if os.geteuid() != 0:  # without root the kernel keeps the instructor's uid: nothing to share
        return os.open(os.devnull, os.O_RDONLY)
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(UID_LOCKS / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def _sandbox_uid() -> Iterator[int]:
    """A uid of :data:`UID_POOL` that no other sandbox on this machine is using."""
    with _uid_lock:
        for uid in _free_uids:
            fd = _claim(uid)
            if fd is not None:
                _free_uids.remove(uid)
                break
        else:
            raise SandboxError(f"more than {len(UID_POOL)} sandboxes at once on this machine")
    try:
        yield uid
    finally:
        with _uid_lock:
            os.close(fd)
            _free_uids.insert(0, uid) if uid == SANDBOX_UID else _free_uids.append(uid)


_RUNNING: set = set()
_run_lock = threading.Lock()
_stopped = threading.Event()


def stop_all() -> None:
    """Kill every autograde still running in this process (e.g. on Ctrl-C), and start no other
    until :func:`allow_runs`: :func:`autograde` called after this returns status ``"stopped"``."""
    with _run_lock:
        _stopped.set()
        for proc in list(_RUNNING):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def allow_runs() -> None:
    """Undo :func:`stop_all` (a new class run begins)."""
    _stopped.clear()


def _reap(run_dir: Path) -> None:
    """Kill any sandbox (bwrap) the run left behind; bwrap's --die-with-parent normally did it."""
    pids = run_dir / "pids"
    if not pids.is_dir():
        return
    for entry in pids.iterdir():
        try:
            pid = int(entry.name)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            if os.path.basename(cmdline) == b"bwrap":
                os.kill(pid, signal.SIGKILL)
        except (ValueError, OSError):
            continue


def preflight() -> None:
    """Raise :class:`SandboxError`, saying what to do, when this machine cannot start a sandbox
    as this user: bwrap, setpriv or prlimit missing, or (not root) no unprivileged user
    namespaces. A class run calls it before it grades anything."""
    bwrap = sandbox_kernel.find_bwrap()
    for tool in ("setpriv", "prlimit"):  # run inside the sandbox from /usr/bin
        if not os.access(f"/usr/bin/{tool}", os.X_OK):
            raise SandboxError(f"/usr/bin/{tool} is missing: run `apt-get install util-linux`")
    privileged = os.geteuid() == 0
    cmd = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--die-with-parent",
           *([] if privileged else ["--unshare-user", "--disable-userns"]),
           "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "/usr/bin/prlimit", "--nofile=64", "--", "true"]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        run = subprocess.CompletedProcess(cmd, -1, "", str(e))
    if run.returncode != 0:
        how = ("as root" if privileged else
               f"as {os.environ.get('USER') or os.geteuid()}, not root: the sandbox then needs unprivileged user "
               "namespaces (Debian/Ubuntu: `sysctl kernel.unprivileged_userns_clone=1`; everywhere: "
               "`sysctl user.max_user_namespaces` above 0; Ubuntu 24.04+: an AppArmor profile allowing "
               "bwrap to use them), or run the grading as root")
        raise SandboxError(f"bubblewrap cannot start a sandbox here ({run.stderr.strip() or run.returncode}), "
                           f"so no submission can be graded; running {how}")


def autograde(course: Path, lab: str, student: str, *, limits: Limits = Limits(),
              out_dir: Path, db_url: str | None = None) -> AutogradeResult:
    """Run `nbgrader autograde <lab> --student <student> --force` for one submission in a
    child process (own process group, killed after limits.submission_timeout), with every kernel
    started in the bubblewrap sandbox, writing to the gradebook ``db_url`` (default: the one
    nbgrader's configuration names). Never raises for a misbehaving submission (only
    :class:`SandboxError` when the machine cannot sandbox at all, e.g. bwrap is missing)."""
    start = time.monotonic()
    course = Path(course).resolve()
    out_dir = Path(out_dir).resolve()

    def result(status: str, reason: str = "") -> AutogradeResult:
        return AutogradeResult(student, status, reason, time.monotonic() - start, out_dir)

    submission = course / "submitted" / student / lab
    if not submission.exists():
        return result("rejected", f"no submission at {submission}")
    problem = check_submission(submission)
    if problem:
        return result("rejected", problem)
    sandbox_kernel.find_bwrap()
    for tool in ("setpriv", "prlimit"):  # run inside the sandbox from /usr/bin
        if not os.access(f"/usr/bin/{tool}", os.X_OK):
            raise SandboxError(f"/usr/bin/{tool} is missing: run `apt-get install util-linux`")

    with _sandbox_uid() as uid:
        return _run(course, lab, student, limits, out_dir, uid, result, db_url)


def _run(course: Path, lab: str, student: str, limits: Limits, out_dir: Path, uid: int, result,
         db_url: str | None) -> AutogradeResult:
    privileged = os.geteuid() == 0
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "records.bin").unlink(missing_ok=True)  # a stale record must not be read as this run's
    if privileged:
        os.chown(out_dir, uid, uid)
    # ipc socket paths are limited to ~107 bytes: keep the run directory short
    run_dir = Path(tempfile.mkdtemp(prefix="grading-", dir="/tmp"))
    try:
        kernel_dir = run_dir / "k"
        kernel_dir.mkdir(mode=0o700)
        if privileged:
            os.chown(kernel_dir, uid, uid)
        _write_kernelspec(run_dir / "jupyter")
        config = {"run_dir": str(run_dir), "kernel_dir": str(kernel_dir), "out_dir": str(out_dir),
                  "limits": asdict(limits), "uid": uid}
        env = dict(os.environ)
        env.update({
            sandbox_kernel.CONFIG_ENV: json.dumps(config),
            "JUPYTER_PATH": os.pathsep.join(filter(None, [str(run_dir / "jupyter"), env.get("JUPYTER_PATH")])),
            "JUPYTER_RUNTIME_DIR": str(kernel_dir),
            # jupyter_client writes connection files with tempfile.mkstemp (random name, O_EXCL):
            # they must be in the directory bound into the sandbox
            "TMPDIR": str(kernel_dir),
            # nbgrader runs `alembic` from PATH
            "PATH": os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")])),
        })
        env.setdefault("COURSE_ALEMBIC_VERSION", alembic_version())
        args = ["autograde", lab, "--student", student, "--force", "--log-level=INFO",
                f"--Execute.timeout={limits.cell_timeout}", "--Execute.interrupt_on_timeout=True",
                f"--CappedExecute.interrupt_grace={limits.interrupt_grace}",
                "--Execute.raise_on_iopub_timeout=False", f"--Execute.kernel_name={KERNEL_NAME}",
                # killed after its last cell, not asked to shut down (about 1 s of waiting): the
                # record is flushed frame by frame and nothing else of the kernel is kept
                "--Execute.shutdown_kernel=immediate",
                "--KernelManager.transport=ipc", f"--KernelManager.ip={kernel_dir}/ipc",
                f"--CappedExecute.output_bytes_per_cell={limits.output_bytes_per_cell}",
                f"--CappedExecute.output_bytes_total={limits.output_bytes_total}"]
        args += [f"--Autograde.autograde_preprocessors={name}" for name in _preprocessor_names()]
        if db_url is not None:
            args.append(f"--CourseDirectory.db_url={db_url}")
        log_path = run_dir / "nbgrader.log"
        with _run_lock:  # stop_all() either sees this run or has already refused it
            if _stopped.is_set():
                return result("stopped", "the grading run was stopped before this submission's autograde began")
            proc = nbgrader_run.start(args, str(course), env, str(log_path))
            _RUNNING.add(proc)
        try:
            proc.join(timeout=limits.submission_timeout)
            returncode: int | None = proc.exitcode
            if returncode is None:  # still running: the submission's time is up
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.join()
        finally:
            _RUNNING.discard(proc)
        _reap(run_dir)
        log = log_path.read_text(errors="replace")
        shutil.copy(log_path, out_dir / "autograde.log")
        if returncode is None:
            # like nbgrader's own failure handling: no half-written autograded notebook
            shutil.rmtree(course / "autograded" / student / lab, ignore_errors=True)
            return result("timeout", f"autograding took longer than {limits.submission_timeout} s and was "
                                     "stopped; nbgrader recorded no complete autograde scores")
        if returncode != 0 and UNANSWERED_INTERRUPT in log:
            return result("timeout", f"a cell passed its time limit ({limits.cell_timeout} s) and the kernel did not "
                                     f"answer the interrupt within {limits.interrupt_grace} s: it was killed there")
        if returncode != 0:
            return result("error", _reason_from_log(log, returncode))
        return result("ok")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
