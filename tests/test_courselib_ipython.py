"""The course's IPython extension (src/courselib_ipython): a NameError says how to get the name
defined again (after a kernel restart, running a lab's test cell alone gives "name 'checks' is
not defined"). Checked in a real kernel of the course environment, which loads the extension
through the configuration `make venv` writes."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import courselib_ipython
from courselib_ipython import HINT, with_hint

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_with_hint_appends_the_hint_once_and_keeps_the_name():
    try:
        checks  # noqa: B018 - the NameError a restarted kernel gives
    except NameError as error:
        hinted = with_hint(error)
    assert type(hinted) is NameError and hinted.name == "checks"
    assert str(hinted) == f"name 'checks' is not defined. {HINT}"
    assert hinted.__traceback__ is not None
    assert with_hint(hinted) is hinted


def test_the_course_environment_loads_it_in_every_kernel():
    config = Path(sys.prefix, "etc", "ipython", "ipython_kernel_config.py")
    assert config.is_file(), f"{config} is missing: `make venv` writes it (course.mk)"
    assert '"courselib_ipython"' in config.read_text()


@pytest.fixture(scope="module")
def kernel():
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=120)
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def run(client, code: str) -> tuple[str, list[dict]]:
    """(the reply's status, the error outputs) of running ``code``."""
    msg_id = client.execute(code)
    errors = []
    while True:
        msg = client.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            errors.append(msg["content"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    while True:
        reply = client.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]["status"], errors


def test_a_name_error_in_a_kernel_says_to_run_the_cells_above(kernel):
    status, errors = run(kernel, 'checks.cell("test_compute_fans")')
    assert status == "error" and len(errors) == 1  # Run All still stops there
    assert errors[0]["ename"] == "NameError"
    assert errors[0]["evalue"] == f"name 'checks' is not defined. {HINT}"
    shown = ANSI.sub("", "\n".join(errors[0]["traceback"]))
    assert "Run > Run All Above Selected Cell" in shown and 'checks.cell("test_compute_fans")' in shown
    # a typo inside a function: the traceback still ends at the line with the typo
    status, errors = run(kernel, "def receptive_field(k):\n    return receptive_feild * k\n\nreceptive_field(3)")
    shown = ANSI.sub("", "\n".join(errors[0]["traceback"]))
    assert status == "error" and "check its spelling" in errors[0]["evalue"]
    assert shown.rstrip().splitlines()[-1].startswith("NameError: name 'receptive_feild' is not defined.")
    assert "----> 2     return receptive_feild * k" in shown
    # other errors are not touched, and the kernel goes on working
    status, errors = run(kernel, "raise ValueError('bad shape')")
    assert status == "error" and errors[0]["ename"] == "ValueError" and errors[0]["evalue"] == "bad shape"
    assert run(kernel, "x = 2\nassert x + 1 == 3") == ("ok", [])


def test_without_the_extension_a_kernel_gives_the_bare_error(kernel):
    """The control: unloading it gives Python's own message (so the test above sees the extension)."""
    run(kernel, "get_ipython().extension_manager.unload_extension('courselib_ipython')")
    status, errors = run(kernel, "checks")
    assert status == "error" and errors[0]["evalue"] == "name 'checks' is not defined"
    run(kernel, "get_ipython().extension_manager.load_extension('courselib_ipython')")
    assert run(kernel, "checks")[1][0]["evalue"].endswith(HINT)
    assert courselib_ipython.load_ipython_extension and courselib_ipython.unload_ipython_extension
