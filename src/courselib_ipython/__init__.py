"""The course's IPython extension: a ``NameError`` also says how to get the name defined again.

After a kernel restart nothing is defined any more, and running a lab's test cell alone gives
``NameError: name 'checks' is not defined``, which does not say that the helper cell above
defines it. With this extension loaded a note under the message says: run the cells above first
(or, for a name no cell defines, check its spelling). The error, its message and its traceback are
otherwise unchanged.

The course environment loads it in every kernel: ``make venv`` (any ``make`` target that installs
the course, course.mk) writes ``.venv/etc/ipython/ipython_kernel_config.py`` with
``c.InteractiveShellApp.extensions = ["courselib_ipython"]``. Elsewhere (Colab, another
environment) ``%load_ext courselib_ipython`` loads it. A package of its own, beside ``courselib``:
loading it at every kernel's start imports nothing else (``courselib`` imports torch).
"""
from __future__ import annotations

from typing import Any

HINT = ("If a cell above defines it, run that cell first (after a kernel restart, nothing is defined: "
        "Run > Run All Above Selected Cell); otherwise check its spelling.")


def with_hint(error: BaseException) -> BaseException:
    """``error`` itself, with :data:`HINT` added once as a note (shown under its message) when it
    is exactly a ``NameError``: not its subclass ``UnboundLocalError`` (``x += 1`` in a function
    without ``global``), for which the hint would be wrong. Its type, message and chain stay."""
    if type(error) is NameError and HINT not in getattr(error, "__notes__", ()):
        error.add_note(HINT)
    return error


def _show(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> None:
    """IPython's custom exception handler: shows IPython's usual traceback of the error, hinted
    (IPython 9 does not show what a handler returns)."""
    shell.showtraceback((etype, with_hint(value), tb), tb_offset=tb_offset, running_compiled_code=True)


def load_ipython_extension(ipython: Any) -> None:
    ipython.set_custom_exc((NameError,), _show)


def unload_ipython_extension(ipython: Any) -> None:
    ipython.set_custom_exc((), None)
