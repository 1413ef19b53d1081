"""Kernel launcher for the ``course-sandbox`` kernelspec: starts ipykernel inside bubblewrap.

Jupyter runs ``python -P -m grading.sandbox_kernel -f <connection file>`` on the host (as the
instructor, normally root) with the working directory nbgrader chose for the kernel
(``autograded/<student>/<lab>/``), and with the settings of :func:`grading.sandbox.autograde`
in the environment variable ``GRADING_SANDBOX`` (JSON). This module then

1. copies that directory, without any ``.ipynb`` (the notebook being graded holds the hidden
   tests) and without symlinks or special files, to a staging directory of the run;
2. ``exec``\\ s ``bwrap`` (so the kernel manager's process *is* bwrap, and ``--die-with-parent``
   ties the sandbox to nbgrader), which builds a new root with read-only ``/usr``, a few files
   of ``/etc``, the Python installation, the venv and courselib, a size-limited tmpfs ``/tmp``
   holding a writable copy of the submission (the kernel's cwd, ``/tmp/work``), the run's
   kernel directory (connection file and ipc sockets) and ``out_dir`` at ``/grading-out``; and
   no network, own pid/ipc/uts namespaces;
3. inside, as root, copies the submission into the tmpfs and hands it to uid 65534, then drops
   to uid/gid 65534 with ``setpriv`` (no groups, no capabilities, no_new_privs) and applies the
   resource limits with ``prlimit`` before exec'ing ``python -m ipykernel_launcher``.

When not run as root, bwrap uses an unprivileged user namespace instead (``--unshare-user``):
the same mounts, but the kernel keeps the instructor's uid (nothing of theirs is visible in the
sandbox, but a kernel escape would be the instructor's). Only the standard library is used here:
this runs once per kernel start.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import stat
import sys
from pathlib import Path

CONFIG_ENV = "GRADING_SANDBOX"
SANDBOX_UID = 65534
WORKDIR = "/tmp/work"
HOME = "/tmp/home"
OUT_MOUNT = "/grading-out"
SUBMISSION_MOUNT = "/run/submission"
RECORD_FILE = f"{OUT_MOUNT}/records.bin"
INSTALL_HINT = "bubblewrap (bwrap) is not installed: run `apt-get install bubblewrap`"
# Environment variables passed through to the kernel (everything else is cleared).
PASS_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
            "NBGRADER_EXECUTION", "PYDEVD_DISABLE_FILE_VALIDATION", "PYTHONHASHSEED")
# The part of /etc a Python kernel needs (users for getpwuid, the dynamic loader's cache, ...).
ETC_FILES = ("passwd", "group", "nsswitch.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
             "localtime", "timezone", "fonts", "alternatives", "mime.types", "hosts")
SHM_BYTES = 64 << 20


class SandboxError(RuntimeError):
    """The sandbox cannot be set up (missing tool, bad configuration)."""


def find_bwrap() -> str:
    """Path of the bwrap executable, or :class:`SandboxError` saying how to install it."""
    path = shutil.which("bwrap") or ("/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None)
    if path is None:
        raise SandboxError(INSTALL_HINT)
    return path


def stage_submission(src: Path, dest: Path, max_bytes: int) -> list[str]:
    """Copy ``src`` to ``dest`` without notebooks, symlinks or special files; returns what was skipped."""
    skipped: list[str] = []
    total = 0
    dest.mkdir(parents=True)
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = Path(dirpath).relative_to(src)
        for name in list(dirnames):
            st = os.lstat(Path(dirpath, name))
            if not stat.S_ISDIR(st.st_mode):  # a symlink to a directory
                skipped.append(str(rel / name))
                dirnames.remove(name)
            else:
                (dest / rel / name).mkdir()
        for name in filenames:
            path = Path(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or name.endswith(".ipynb"):
                skipped.append(str(rel / name))
                continue
            total += st.st_size
            if total > max_bytes:
                raise SandboxError(f"the submission is larger than the sandbox's scratch space ({max_bytes} bytes)")
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fin, open(dest / rel / name, "wb") as fout:
                shutil.copyfileobj(fin, fout)
    return skipped


def _dirs_for(path: str, made: set[str]) -> list[str]:
    """bwrap arguments creating the missing parents of ``path`` as 0755 (bwrap's default is 0700)."""
    out: list[str] = []
    parts = Path(path).parts
    for i in range(2, len(parts)):
        parent = str(Path(*parts[:i]))
        if parent not in made:
            made.add(parent)
            out += ["--perms", "0755", "--dir", parent]
    return out


def courselib_root() -> str | None:
    """The directory holding the ``courselib`` package (the editable install's src/), if any."""
    spec = importlib.util.find_spec("courselib")
    if spec is None or not spec.origin:
        return None
    return str(Path(spec.origin).resolve().parent.parent)


def bwrap_command(*, bwrap: str, connection_file: str, kernel_dir: str, staging: str, out_dir: str,
                  limits: dict, privileged: bool, python: str = sys.executable,
                  uid: int = SANDBOX_UID) -> list[str]:
    """The full command line: bwrap, the in-sandbox setup script, setpriv, prlimit, ipykernel.
    ``uid``: the unprivileged user the kernel runs as (one per concurrent sandbox)."""
    made: set[str] = set()
    args = [bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--hostname", "sandbox"]
    if not privileged:
        # --unshare-all would also do this as root, and then setpriv cannot drop to 65534
        # (the uid is not mapped): a user namespace only pretends to change users.
        args += ["--unshare-user", "--disable-userns"]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(limits["scratch_bytes"]), "--tmpfs", "/tmp",
             "--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
             "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--perms", "0755", "--dir", "/etc"]
    made.add("/etc")
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    ro = [os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)]
    lib = courselib_root()
    if lib is not None:
        ro.append(lib)
    for path in dict.fromkeys(ro):
        if not path.startswith("/usr/"):
            args += _dirs_for(path, made) + ["--ro-bind", path, path]
    conn_dir = os.path.dirname(os.path.abspath(connection_file))
    for path in dict.fromkeys([kernel_dir, conn_dir]):
        args += _dirs_for(path, made) + ["--bind", path, path]
    args += ["--perms", "0755", "--dir", "/run", "--ro-bind", staging, SUBMISSION_MOUNT,
             "--bind", out_dir, OUT_MOUNT]
    env = {"PATH": f"{os.path.dirname(python)}:/usr/bin:/bin", "HOME": HOME, "TMPDIR": "/tmp",
           "USER": "nobody" if privileged else os.environ.get("USER", "student"), "LANG": "C.UTF-8",
           "MPLCONFIGDIR": f"{HOME}/.config/matplotlib", "IPYTHONDIR": f"{HOME}/.ipython",
           "XDG_CACHE_HOME": f"{HOME}/.cache", "COURSELIB_RECORD": RECORD_FILE}
    env.update({k: os.environ[k] for k in PASS_ENV if k in os.environ})
    args += ["--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--chdir", "/tmp"]

    script = (f"set -e; mkdir -p {WORKDIR} {HOME}/.config/matplotlib; "
              f"cp -R {SUBMISSION_MOUNT}/. {WORKDIR}/; ")
    if privileged:
        script += f"chown -R {uid}:{uid} {WORKDIR} {HOME}; "
    script += f'cd {WORKDIR}; exec "$@"'
    drop = ["setpriv"]
    if privileged:
        drop += ["--reuid", str(uid), "--regid", str(uid), "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all"]
    drop += ["--no-new-privs"]
    rlimits = ["prlimit", f"--as={limits['memory']}", f"--nproc={limits['processes']}",
               f"--cpu={limits['cpu_seconds']}", f"--fsize={limits['file_size']}",
               f"--nofile={limits['open_files']}", "--core=0", "--"]
    kernel = [python, "-m", "ipykernel_launcher", "-f", connection_file,
              "--HistoryManager.hist_file=:memory:"]
    return args + ["/bin/sh", "-c", script, "sandbox-setup"] + drop + rlimits + kernel


def main(argv: list[str] | None = None) -> None:
    """Entry point of the kernelspec: stage the submission and exec bwrap (never returns)."""
    ap = argparse.ArgumentParser(description="start ipykernel in the grading sandbox")
    ap.add_argument("-f", dest="connection_file", required=True)
    ns = ap.parse_args(argv)
    try:
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise SandboxError(f"{CONFIG_ENV} is not set: start sandboxed kernels through grading.sandbox.autograde()")
        cfg = json.loads(raw)
        bwrap = find_bwrap()
        conn_file = os.path.abspath(ns.connection_file)
        with open(conn_file) as fh:
            conn = json.load(fh)
        kernel_dir = os.path.abspath(cfg["kernel_dir"])
        if conn.get("transport") != "ipc" or not str(conn.get("ip", "")).startswith(kernel_dir + "/"):
            raise SandboxError("sandboxed kernels need KernelManager.transport='ipc' with the ip prefix "
                               f"inside {kernel_dir} (the sandbox has no network)")
        staging = Path(cfg["run_dir"]) / f"stage-{os.getpid()}"
        skipped = stage_submission(Path.cwd(), staging, int(cfg["limits"]["scratch_bytes"]))
        if skipped:
            print(f"grading sandbox: not copied into the kernel's directory: {', '.join(skipped)}", file=sys.stderr)
        privileged = os.geteuid() == 0
        uid = int(cfg.get("uid", SANDBOX_UID))
        if privileged:
            os.chown(conn_file, uid, uid)
        pids = Path(cfg["run_dir"]) / "pids"
        pids.mkdir(exist_ok=True)
        (pids / str(os.getpid())).touch()  # this process becomes bwrap: autograde() reaps leftovers
        cmd = bwrap_command(bwrap=bwrap, connection_file=conn_file, kernel_dir=kernel_dir,
                            staging=str(staging), out_dir=cfg["out_dir"], limits=cfg["limits"],
                            privileged=privileged, uid=uid)
    except (SandboxError, OSError, ValueError, KeyError) as exc:
        print(f"grading sandbox: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
