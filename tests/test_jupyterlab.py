"""JupyterLab as students and instructors use it (`make lab`), end to end, on loopback only.

One real `jupyter lab` server (from this environment) runs in a scratch root holding a copy of
the first chapter, the course's nbgrader_config.py and the instructor labs. Through its REST API
and a kernel websocket the tests
- start a python3 kernel of this environment and run every code cell of book/00_first_steps.ipynb
  (each execute_reply must be "ok"), then check that courselib and ipywidgets import in that kernel
  and that a widget really opens a comm and displays a widget view;
- check that the nbgrader server extensions answer (formgrader status, course list, the version
  handshake the lab extension does) and that the formgrader sees the course's labs;
- check that the /lab page ships the nbgrader and ipywidgets lab extensions with no nbgrader
  plugin disabled, and that the extension bundle is served;
- check `jupyter server extension list` / `jupyter labextension list` say the same;
- shut the kernel and the server down and check that both processes are gone.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

from grading.course import Course
from support import start_jupyter_lab, stop

pytestmark = pytest.mark.pipeline

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHAPTER = ROOT / "book" / "00_first_steps.ipynb"
LABS = tuple(Course.load().labs())  # every lab of the course, found by folder
NBGRADER_PLUGINS = ("formgrader", "course-list", "create-assignment", "assignment-list",
                    "validate-assignment")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTUP_TIMEOUT = 60
CELL_TIMEOUT = 180


class LabServer:
    def __init__(self, proc: subprocess.Popen, url: str, token: str, root: Path, log: Path, env: dict,
                 listings: dict[str, subprocess.Popen]):
        self.proc, self.url, self.token, self.root, self.log, self.env = proc, url.rstrip("/"), token, root, log, env
        self.listings = listings

    def listing(self, key: str) -> str:
        """Output of `jupyter server extension list` ("server") or `jupyter labextension list` ("lab")."""
        proc = self.listings[key]
        out, _ = proc.communicate(timeout=120)
        out = ANSI.sub("", out)
        assert proc.returncode == 0, f"{' '.join(proc.args[1:])} failed ({proc.returncode}):\n{out[-3000:]}"
        return out

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "\n".join(lines[-n:])

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 30):
        """(status, parsed JSON or text) for one REST call with token auth."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text

    def get_ok(self, path: str):
        status, body = self.request("GET", path)
        assert status == 200, f"GET {path} -> HTTP {status}: {str(body)[:500]}\n--- server log ---\n{self.log_tail()}"
        return body


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root = tmp / "course"
    (root / "book").mkdir(parents=True)
    shutil.copy2(CHAPTER, root / "book" / CHAPTER.name)
    shutil.copy2(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    for lab_name in LABS:
        shutil.copytree(ROOT / "solutions" / lab_name, root / "solutions" / lab_name)
    runtime = tmp / "runtime"
    # nbgrader's default exchange (/usr/local/share/nbgrader/exchange) may not exist or be
    # writable here: give the server's nbgrader a scratch one through the user config dir.
    exchange = tmp / "exchange"
    exchange.mkdir()
    (tmp / "config").mkdir()
    (tmp / "config" / "nbgrader_config.py").write_text(f"c.Exchange.root = {str(exchange)!r}\n")
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",   # the python3 kernelspec runs "python"
        JUPYTER_CONFIG_DIR=str(tmp / "config"),          # no user config; sys-prefix config stays
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(runtime),
        IPYTHONDIR=str(tmp / "ipython"),
        JUPYTER_PLATFORM_DIRS="0",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    env.pop("JUPYTER_TOKEN", None)
    env.pop("MPLBACKEND", None)   # the kernel uses the inline backend, as in a browser
    token = secrets.token_hex(16)
    log = tmp / "server.log"
    proc, url = start_jupyter_lab(["--ServerApp.open_browser=False"], token=token, root=root, env=env, log=log,
                                  timeout=STARTUP_TIMEOUT)
    listings: dict[str, subprocess.Popen] = {}
    server = LabServer(proc, url, token, root, log, env, listings)
    try:
        # The extension listings take several seconds each: run them while the chapter executes.
        for key, args in (("server", ("server", "extension", "list")), ("lab", ("labextension", "list"))):
            listings[key] = subprocess.Popen([str(BIN / "jupyter"), *args], env=env, cwd=root,
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, text=True)
        yield server
        # clean shutdown through the API (as the File > Shut Down menu does)
        status, _ = server.request("POST", "/api/shutdown")
        assert status in (200, 204), f"POST /api/shutdown -> HTTP {status}"
        proc.wait(30)
        assert proc.returncode == 0, f"server exited with {proc.returncode}:\n{server.log_tail()}"
    finally:
        stop(proc)
        for listing in listings.values():
            stop(listing, grace=2)
            if listing.stdout and not listing.stdout.closed:
                listing.stdout.close()


def test_server_answers_and_serves_the_course_kernel(lab):
    status = lab.get_ok("/api/status")
    assert status["started"]
    specs = lab.get_ok("/api/kernelspecs")
    assert specs["default"] == "python3", specs
    assert "python3" in specs["kernelspecs"], list(specs["kernelspecs"])
    listing = lab.get_ok("/api/contents/book")
    assert [c["name"] for c in listing["content"]] == [CHAPTER.name]


# --- kernel over the websocket -------------------------------------------------------------------

def _message(msg_type: str, content: dict, session: str) -> dict:
    return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "test",
                       "session": session, "date": "", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": content, "channel": "shell",
            "buffers": []}


async def _run_cells(ws_url: str, token: str, codes: list[str]) -> list[dict]:
    """Execute codes in order on one kernel channel; per cell: reply status, outputs, errors."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    session = uuid.uuid4().hex
    conn = await asyncio.wait_for(websocket_connect(HTTPRequest(
        f"{ws_url}?session_id={session}", headers={"Authorization": f"token {token}"})), 30)
    results = []
    try:
        for code in codes:
            msg = _message("execute_request", {"code": code, "silent": False, "store_history": True,
                                               "user_expressions": {}, "allow_stdin": False,
                                               "stop_on_error": True}, session)
            msg_id = msg["header"]["msg_id"]
            await conn.write_message(json.dumps(msg))
            result = {"code": code, "status": None, "stdout": "", "stderr": "", "error": None,
                      "msg_types": [], "data": []}
            idle = False
            deadline = time.monotonic() + CELL_TIMEOUT
            while result["status"] is None or not idle:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"cell did not finish within {CELL_TIMEOUT} s:\n{code[:500]}")
                raw = await asyncio.wait_for(conn.read_message(), remaining)
                if raw is None:
                    raise ConnectionError(f"kernel websocket closed while running:\n{code[:500]}")
                reply = json.loads(raw)
                if reply.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = reply["header"]["msg_type"]
                content = reply["content"]
                result["msg_types"].append(kind)
                if kind == "execute_reply":
                    result["status"] = content["status"]
                    if content["status"] != "ok":
                        result["error"] = result["error"] or content
                elif kind == "status" and content["execution_state"] == "idle":
                    idle = True
                elif kind == "stream":
                    result[content["name"]] += content["text"]
                elif kind == "error":
                    result["error"] = content
                elif kind in ("display_data", "execute_result"):
                    result["data"].append(content["data"])
                elif kind == "comm_open":
                    result.setdefault("comms", []).append(content)
            results.append(result)
            if result["status"] != "ok":
                break
    finally:
        conn.close()
    return results


def _describe(result: dict) -> str:
    err = result["error"] or {}
    tb = ANSI.sub("", "\n".join(err.get("traceback", [])))
    return (f"cell finished with status {result['status']!r}:\n{result['code'][:800]}\n"
            f"--- {err.get('ename')}: {err.get('evalue')}\n{tb[-3000:]}\n--- stderr ---\n{result['stderr'][-1500:]}")


def _ws_url(lab: LabServer, kernel_id: str) -> str:
    return lab.url.replace("http://", "ws://", 1) + f"/api/kernels/{kernel_id}/channels"


def _pid_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status   # a zombie has exited


CHECK_ENV = """
import json, os, sys
import ipywidgets, courselib
from IPython.display import display
print(json.dumps({"executable": sys.executable, "prefix": sys.prefix, "pid": os.getpid(),
                  "ipywidgets": ipywidgets.__version__, "courselib": courselib.__file__}))
display(ipywidgets.IntSlider(value=3, min=0, max=10, description="n"))
"""


def test_first_chapter_runs_in_a_kernel_started_through_the_server(lab):
    status, kernel = lab.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, f"POST /api/kernels -> HTTP {status}: {kernel}\n{lab.log_tail()}"
    kernel_id = kernel["id"]
    try:
        assert kernel["name"] == "python3"
        nb = nbformat.read(lab.root / "book" / CHAPTER.name, as_version=4)
        codes = [c.source for c in nb.cells if c.cell_type == "code"]
        assert len(codes) >= 5, f"{CHAPTER.name} has only {len(codes)} code cells"
        results = asyncio.run(_run_cells(_ws_url(lab, kernel_id), lab.token, codes + [CHECK_ENV]))
        for result in results:
            assert result["status"] == "ok", _describe(result)
        assert len(results) == len(codes) + 1
        # figures reached the client as PNG displays
        assert any("image/png" in d for r in results[:-1] for d in r["data"]), \
            "no cell of the chapter displayed a figure"

        env_check = results[-1]
        info = json.loads(env_check["stdout"].strip().splitlines()[-1])
        assert Path(info["prefix"]).resolve() == Path(sys.prefix).resolve(), \
            f"the kernel runs {info['executable']}, not this environment's Python ({sys.executable})"
        assert info["ipywidgets"].startswith("8."), info
        # a widget opens a comm with the frontend and displays as a widget view
        comms = env_check.get("comms", [])
        assert any(c.get("target_name") == "jupyter.widget" for c in comms), \
            f"no jupyter.widget comm was opened; messages: {env_check['msg_types']}"
        assert any("application/vnd.jupyter.widget-view+json" in d for d in env_check["data"]), \
            env_check["data"]
        kernel_pid = info["pid"]

        listed = lab.get_ok("/api/kernels")
        assert [k["id"] for k in listed] == [kernel_id]
    finally:
        status, _ = lab.request("DELETE", f"/api/kernels/{kernel_id}")
    assert status == 204, f"DELETE /api/kernels/{kernel_id} -> HTTP {status}"
    assert lab.get_ok("/api/kernels") == []
    deadline = time.monotonic() + 15
    while _pid_alive(kernel_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _pid_alive(kernel_pid), f"kernel process {kernel_pid} still runs after shutdown"


# --- nbgrader and the lab extensions -------------------------------------------------------------

def test_nbgrader_server_extensions_answer(lab):
    import nbgrader

    assert lab.get_ok("/formgrader/api/status") == {"status": True}
    # the course list the "Courses" tab shows: the local formgrader of this course
    courses = lab.get_ok("/formgraders")
    assert courses["success"], courses
    assert [(c["course_id"], c["kind"]) for c in courses["value"]] == [("dl-course", "local")], courses
    assert courses["value"][0]["url"].endswith("/formgrader")
    # the version handshake the lab extension performs
    handshake = lab.get_ok(f"/nbgrader_version?version={nbgrader.__version__}")
    assert handshake == {"success": True}, handshake
    # the formgrader reads nbgrader_config.py (source_directory = solutions)
    assignments = lab.get_ok("/formgrader/api/assignments")
    assert sorted(a["name"] for a in assignments) == sorted(LABS), assignments
    # the formgrader page itself renders
    status, page = lab.request("GET", "/formgrader")
    assert status == 200 and "formgrader" in str(page).lower(), f"GET /formgrader -> HTTP {status}"


def test_lab_page_ships_nbgrader_and_widget_extensions(lab):
    import nbgrader

    status, html = lab.request("GET", "/lab")
    assert status == 200, f"GET /lab -> HTTP {status}\n{lab.log_tail()}"
    found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                      html, re.S)
    assert found, "the /lab page has no jupyter-config-data"
    config = json.loads(found.group(1))
    extensions = {e["name"]: e for e in config["federated_extensions"]}
    for name in ("@jupyter/nbgrader", "@jupyter-widgets/jupyterlab-manager"):
        assert name in extensions, f"{name} is not loaded by /lab; loaded: {sorted(extensions)}"
    disabled = config.get("disabledExtensions") or []
    if isinstance(disabled, dict):      # {name: true} in the config files, a list in the page
        disabled = [k for k, v in disabled.items() if v]
    assert "@jupyter/nbgrader" not in disabled, disabled
    off = [p for p in NBGRADER_PLUGINS if f"@jupyter/nbgrader:{p}" in disabled]
    assert not off, f"nbgrader lab plugins disabled: {off}"
    # the browser can fetch the nbgrader bundle and the labextension matches the server extension
    bundle = extensions["@jupyter/nbgrader"]["load"]
    status, js = lab.request("GET", f"/lab/extensions/@jupyter/nbgrader/{bundle}")
    assert status == 200 and len(str(js)) > 1000, f"nbgrader bundle {bundle}: HTTP {status}"
    status, pkg = lab.request("GET", "/lab/extensions/@jupyter/nbgrader/package.json")
    assert status == 200 and pkg["version"] == nbgrader.__version__, (status, pkg)


def test_extension_lists_show_nbgrader_enabled(lab):
    import nbgrader

    server = lab.listing("server")
    for ext in ("formgrader", "course_list", "assignment_list", "validate_assignment"):
        name = f"nbgrader.server_extensions.{ext}"
        assert re.search(rf"^\s*{re.escape(name)} enabled\s*$", server, re.M), \
            f"{name} is not enabled:\n{server}"
        assert re.search(rf"^\s*{re.escape(name)}\s+OK\s*$", server, re.M), \
            f"{name} does not validate:\n{server}"
    assert re.search(r"^\s*jupyterlab enabled\s*$", server, re.M), server

    labext = lab.listing("lab")
    for name, version in (("@jupyter/nbgrader", nbgrader.__version__),
                          ("@jupyter-widgets/jupyterlab-manager", None)):
        line = next((ln for ln in labext.splitlines() if ln.split()[:1] == [name]), None)
        assert line, f"{name} is not installed:\n{labext}"
        assert " enabled " in f"{line} " and " OK" in line, f"{name}: {line.strip()}"
        if version:
            assert f"v{version}" in line, f"{name}: {line.strip()} (nbgrader is {version})"
    if "Disabled extensions:" in labext:   # e.g. "@jupyter/nbgrader:course-list (all plugins)"
        section = labext.split("Disabled extensions:", 1)[1]
        assert "@jupyter/nbgrader" not in section, f"nbgrader plugins disabled:\n{section}"
