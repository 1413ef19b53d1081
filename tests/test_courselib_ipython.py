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


def test_with_hint_adds_the_hint_once_as_a_note_to_a_name_error_only():
    try:
        checks  # noqa: B018 - the NameError a restarted kernel gives
    except NameError as error:
        original, hinted = error, with_hint(error)
    assert hinted is original and type(hinted) is NameError and hinted.name == "checks"
    assert str(hinted) == "name 'checks' is not defined" and hinted.__notes__ == [HINT]
    assert with_hint(hinted).__notes__ == [HINT]

    def counter():
        total += 1  # noqa: F821 - the UnboundLocalError students meet: no "run the cells above" here
        return total

    with pytest.raises(UnboundLocalError) as unbound:
        counter()
    assert not hasattr(with_hint(unbound.value), "__notes__")
    other = ValueError("bad shape")
    assert with_hint(other) is other and not hasattr(other, "__notes__")


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
    assert errors[0]["ename"] == "NameError" and errors[0]["evalue"] == "name 'checks' is not defined"
    shown = ANSI.sub("", "\n".join(errors[0]["traceback"]))
    assert shown.rstrip().endswith(f"NameError: name 'checks' is not defined\n{HINT}")
    assert 'checks.cell("test_compute_fans")' in shown
    # a typo inside a function: the traceback still ends at the line with the typo, then the hint
    status, errors = run(kernel, "def receptive_field(k):\n    return receptive_feild * k\n\nreceptive_field(3)")
    shown = ANSI.sub("", "\n".join(errors[0]["traceback"]))
    assert status == "error" and "----> 2     return receptive_feild * k" in shown
    assert shown.rstrip().endswith(f"NameError: name 'receptive_feild' is not defined\n{HINT}")
    # raised while handling another error: the chain is still shown
    status, errors = run(kernel, "try:\n    1 / 0\nexcept ZeroDivisionError:\n    undefined_name")
    shown = ANSI.sub("", "\n".join(errors[0]["traceback"]))
    assert "During handling of the above exception, another exception occurred" in shown and HINT in shown
    # UnboundLocalError (a NameError subclass) and other errors are not touched
    status, errors = run(kernel, "def counter():\n    total += 1\n\ncounter()")
    shown = ANSI.sub("", "\n".join(errors[0]["traceback"]))
    assert errors[0]["ename"] == "UnboundLocalError" and HINT not in shown
    status, errors = run(kernel, "raise ValueError('bad shape')")
    assert status == "error" and errors[0]["ename"] == "ValueError" and errors[0]["evalue"] == "bad shape"
    assert run(kernel, "x = 2\nassert x + 1 == 3") == ("ok", [])


def test_without_the_extension_a_kernel_gives_the_bare_error(kernel):
    """The control: unloading it gives Python's own message (so the test above sees the extension)."""
    run(kernel, "get_ipython().extension_manager.unload_extension('courselib_ipython')")
    status, errors = run(kernel, "checks")
    assert status == "error" and HINT not in "\n".join(errors[0]["traceback"])
    run(kernel, "get_ipython().extension_manager.load_extension('courselib_ipython')")
    assert HINT in "\n".join(run(kernel, "checks")[1][0]["traceback"])
    assert courselib_ipython.load_ipython_extension and courselib_ipython.unload_ipython_extension
