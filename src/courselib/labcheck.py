"""The checks the labs' test cells share. Reading this file tells you what the tests check.

Every lab's helper cell builds on these; the checks that belong to one lab (e.g. comparing your
convolution with ``F.conv2d`` on many shapes) stay in that lab's notebook, where you can read them.

* :func:`assert_close`: your tensor equals the reference up to rounding (tolerance by dtype).
* :func:`expect_error`: a call must raise a given error, with a message that says why.
* :class:`Forbidden`: the lab's rule against calling the built-in routine you are asked to write.
  Its :meth:`~Forbidden.guard` runs around every call a test makes to one of your functions: it
  fails if your code *refers* to a forbidden routine, *calls* one (they are switched off while
  your function runs), or runs one of the forbidden low-level operations.
* :class:`OpRecorder`: lists the tensor operations (ATen ops) that run inside it; labs use it to
  check that a function is vectorized.
* :func:`require_written`: an experiment cell first checks that the answers it uses are written,
  and else says which ones to write (instead of failing somewhere inside the experiment).

A lab declares its rule once, as a literal in its helper cell::

    POLICY = {"forbidden": r"(^|\\.)init\\.(xavier\\w*|kaiming\\w*)$"}

``forbidden`` is a regular expression over dotted names (``F.conv2d``, ``torch.nn.init.xavier_normal_``,
``torch.nn.modules.conv.Conv2d``); ``forbidden_ops`` (optional) one over ATen operation names
(``aten.convolution.default``). The grader reads the same literal to flag forbidden calls in a
submission's source.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import dis
import functools
import importlib
import inspect
import math
import re
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["TOLERANCES", "assert_close", "expect_error", "Forbidden", "ForbiddenFunctionError", "OpRecorder",
           "one_thread", "require_written"]

# dtype -> (rtol, atol as a fraction of the largest reference value): rounding differences only.
TOLERANCES = {torch.float64: (1e-10, 1e-12), torch.float32: (1e-5, 1e-6),
              torch.float16: (1e-3, 1e-3), torch.bfloat16: (1e-2, 1e-2)}


def assert_close(actual: Any, expected: torch.Tensor, what: str, *, dtype: bool = False,
                 rtol: float | None = None, atol: float | None = None) -> None:
    """Fail with a readable message unless ``actual`` is a tensor of ``expected``'s shape whose
    values match up to rounding: ``|a - e| <= atol * max|e| + rtol * |e|`` elementwise, with
    (rtol, atol) from :data:`TOLERANCES` for ``expected.dtype`` unless given.
    ``dtype=True`` also requires ``actual.dtype == expected.dtype``. NaNs must match NaNs."""
    assert isinstance(actual, torch.Tensor), f"{what}: expected a tensor, got {type(actual).__name__}"
    assert actual.shape == expected.shape, (
        f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    if dtype:
        assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, expected {expected.dtype}"
    default_rtol, default_atol = TOLERANCES.get(expected.dtype, TOLERANCES[torch.float32])
    rtol = default_rtol if rtol is None else rtol
    scale = expected.detach().abs().nan_to_num(0.0).max().item() if expected.numel() else 0.0
    atol = (default_atol if atol is None else atol) * max(scale, torch.finfo(torch.float32).tiny)
    got, want = actual.detach().double(), expected.detach().double()
    if not torch.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        diff = (got - want).abs().flatten().nan_to_num(math.inf)
        i = int(diff.argmax())
        raise AssertionError(
            f"{what}: differs from the reference by up to {diff[i].item():.3g} "
            f"(e.g. {got.flatten()[i].item():.10g} instead of {want.flatten()[i].item():.10g})")


def expect_error(error: type[BaseException], fn: Callable, *args: Any, what: str = "",
                 mentions: tuple = (), **kwargs: Any) -> None:
    """``fn(*args, **kwargs)`` must raise ``error`` with a message that says why (not empty) and
    names each of ``mentions`` (numbers are matched as whole numbers: 3 is not found in 30).
    A ``NotImplementedError`` or a forbidden call passes through unchanged: it says what to do."""
    __tracebackhide__ = True  # IPython shows the test's line and the student's, not this frame
    what = what or getattr(fn, "__name__", "the call")
    try:
        fn(*args, **kwargs)
    except error as e:
        message = str(e)
    except (NotImplementedError, ForbiddenFunctionError):
        raise
    except Exception as e:  # noqa: BLE001 - any other error fails the check
        raise AssertionError(f"{what} should raise {error.__name__}, but raised "
                             f"{type(e).__name__}: {e}") from None
    else:
        raise AssertionError(f"{what} should raise {error.__name__}, but it returned normally")
    assert message.strip(), f"{what} raised {error.__name__} with an empty message: say what was wrong"
    for item in mentions:
        pattern = rf"(?<![\d.]){re.escape(str(item))}(?!\.?\d)" if isinstance(item, int | float) \
            else re.escape(str(item))
        assert re.search(pattern, message), (
            f"{what}: the {error.__name__} message should name {', '.join(map(str, mentions))}; got: {message!r}")


def _is_stub(fn: Any) -> bool:
    """Whether ``fn``'s body, its docstring, comments and ``super()`` calls aside, is only
    ``raise NotImplementedError`` (the blank answer cell). A function whose source cannot be read counts as written."""
    try:
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
        node = ast.parse(source).body[0]
    except (OSError, TypeError, SyntaxError, ValueError, IndexError):
        return False
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    body = [stmt for stmt in body if not _calls_super(stmt)]  # a stub __init__ may call super().__init__()
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    raised = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


def _calls_super(stmt: ast.stmt) -> bool:
    """``super().<method>(...)`` as a statement of its own."""
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Call) and isinstance(call.func.value.func, ast.Name)
            and call.func.value.func.id == "super")


def _not_written(missing: list[str]) -> str:
    quoted = [f"`{name}`" for name in missing]
    names = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
    one = len(missing) == 1
    return (f"This experiment runs your code, and {names} {'is' if one else 'are'} not written yet: write "
            f"{'it in its answer cell' if one else 'them in their answer cells'} above (in place of "
            f"`raise NotImplementedError()`), run {'that cell and its' if one else 'those cells and their'} "
            "tests, then run this cell again.")


def require_written(*answers: Callable) -> None:
    """Raise ``NotImplementedError`` naming every one of ``answers`` (functions, or classes: their
    own methods) that is still the blank ``raise NotImplementedError()``; else do nothing. The
    first line of an experiment cell, so that on a lab not finished yet it says what to write.
    (IPython shows the frame an error is raised in, so the raise is one short line.)"""
    missing = []
    for answer in answers:
        if isinstance(answer, type):
            missing += [f"{answer.__name__}.{name}" for name, member in vars(answer).items()
                        if inspect.isfunction(member) and _is_stub(member)]
        elif _is_stub(answer):
            missing.append(getattr(inspect.unwrap(answer), "__name__", repr(answer)))
    if missing:
        raise NotImplementedError(_not_written(missing))  # (the message says what to write)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (small tensors; a busy machine slows threads)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class OpRecorder(TorchDispatchMode):
    """Inside ``with OpRecorder() as r:``, ``r.ops`` lists the name of every ATen operation (the
    C++ kernels behind torch: views, copies, products, ...) that runs, e.g. ``aten.mm.default``."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


class ForbiddenFunctionError(AssertionError):
    """Your code used a built-in routine that this lab asks you to write yourself."""


# Where built-in routines live: their callables are switched off during a guarded call when their
# dotted name matches the lab's rule (as are ``forward`` and ``step`` of matching torch classes).
_MODULES = ("torch", "torch.nn.functional", "torch._C._nn", "torch.nn.init", "torch.optim.adam",
            "torch.optim.adamw", "torch.optim._functional", "torch.func")


def _dotted(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None) or ''}.{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}"


class Forbidden:
    """A lab's rule against built-in routines: ``Forbidden(**POLICY)``.

    ``forbidden``: regex over dotted names; ``forbidden_ops``: regex over ATen op names (or None).
    ``rules`` is how the error messages point students to the lab's rules."""

    def __init__(self, forbidden: str, forbidden_ops: str | None = None, rules: str = "see the rules at the top"):
        self.names = re.compile(forbidden)
        self.ops = re.compile(forbidden_ops) if forbidden_ops else None
        self.rules = rules
        self._targets: list[tuple[Any, str]] | None = None
        if self.ops:  # the first dispatch mode of a process takes seconds to set up: here, not in a test
            with OpRecorder():
                torch.ones(2).add(1)

    # -- what the code refers to ----------------------------------------------------------------
    def references(self, fn: Callable, _seen: set | None = None) -> set[str]:
        """Forbidden routines that fn's code (and the notebook functions it calls) refers to."""
        seen = set() if _seen is None else _seen
        if isinstance(fn, type):  # a class written in the notebook: its methods and its bases
            found = {f"{base.__name__} (= {_dotted(base).strip('.')})" for base in fn.__mro__[1:]
                     if self.names.search(_dotted(base))}
            for member in vars(fn).values():
                member = getattr(member, "__func__", member)
                member = inspect.unwrap(member) if callable(member) else member  # behind decorators
                if isinstance(member, types.FunctionType):
                    found |= self.references(member, seen)
            return found
        fn = getattr(fn, "__func__", fn)
        fn = inspect.unwrap(fn) if callable(fn) else fn
        if not isinstance(fn, types.FunctionType):
            return {f"{fn!r} (not a Python function written in this notebook)"}
        if fn in seen:
            return set()
        seen.add(fn)
        found: set[str] = set()
        codes = [fn.__code__]
        while codes:
            code = codes.pop()
            codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]  # inner functions
            for ins in _instructions(code):
                if ins.opname == "LOAD_GLOBAL":
                    obj = fn.__globals__.get(ins.argval, getattr(builtins, ins.argval, None))
                    obj = inspect.unwrap(obj) if callable(obj) else obj  # the function behind a checked answer
                    if isinstance(obj, types.FunctionType | type) and getattr(obj, "__module__", None) == \
                            fn.__globals__.get("__name__"):
                        found |= self.references(obj, seen)  # a helper or class written in the notebook
                    elif isinstance(obj, types.ModuleType):
                        if self.names.search(obj.__name__):
                            found.add(f"{ins.argval} (= {obj.__name__})")
                    elif obj is not None and self.names.search(_dotted(obj)):
                        found.add(f"{ins.argval} (= {_dotted(obj).strip('.')})")
                elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM", "IMPORT_NAME"):
                    name = str(ins.argval)
                    if self.names.search(name if ins.opname == "IMPORT_NAME" else "." + name):
                        found.add(name if ins.opname == "IMPORT_NAME" else "." + name)
        return found

    # -- what the code runs ---------------------------------------------------------------------
    def targets(self) -> list[tuple[Any, str]]:
        """(owner, attribute) of every built-in callable the rule switches off during a call."""
        if self._targets is None:
            targets: list[tuple[Any, str]] = []
            for module_name in _MODULES:
                try:
                    module = importlib.import_module(module_name)
                except ImportError:
                    continue
                for attr in dir(module):
                    obj = getattr(module, attr, None)
                    if attr.startswith("__") or not callable(obj):
                        continue
                    if isinstance(obj, type):
                        if obj.__module__.startswith("torch") and self.names.search(_dotted(obj)):
                            targets += [(obj, m) for m in ("forward", "step") if m in vars(obj)]
                    elif self.names.search(f"{module_name}.{attr}"):
                        targets.append((module, attr))
            for cls in _torch_classes():
                if self.names.search(_dotted(cls)):
                    targets += [(cls, m) for m in ("forward", "step") if m in vars(cls)]
            self._targets = list(dict.fromkeys(targets))
        return self._targets

    @contextlib.contextmanager
    def switched_off(self, calls: list[str] | None = None) -> Iterator[None]:
        """Inside the block every forbidden built-in raises :class:`ForbiddenFunctionError`
        (each attempted call is appended to ``calls``)."""
        calls = [] if calls is None else calls
        saved = []

        def blocker(qualname: str) -> Callable:
            def blocked(*args, **kwargs):
                calls.append(qualname)
                raise ForbiddenFunctionError(f"{qualname} is not allowed in this lab ({self.rules})")
            # torch.optim.Optimizer wraps a subclass's step for its profiler the first time one is
            # created (and never unwraps it); marked as wrapped, the blocker is left alone
            blocked.hooked = True
            return blocked

        try:
            for owner, attr in self.targets():
                saved.append((owner, attr, getattr(owner, attr)))
                setattr(owner, attr, blocker(f"{getattr(owner, '__name__', owner)}.{attr}"))
            yield
        finally:
            for owner, attr, original in reversed(saved):
                setattr(owner, attr, original)

    @contextlib.contextmanager
    def guard(self, name: str, fn: Callable) -> Iterator[None]:
        """Around a call to your function ``name``: fails if its code refers to a forbidden routine
        (before it runs), calls one, or runs a forbidden ATen operation."""
        names = self.references(fn)
        if names:
            raise ForbiddenFunctionError(f"{name} refers to {sorted(names)}: not allowed in this lab ({self.rules})")
        calls: list[str] = []
        recorder = OpRecorder() if self.ops else contextlib.nullcontext()
        with self.switched_off(calls), recorder:
            yield
        ran = set(calls) | ({op for op in recorder.ops if self.ops.search(op)} if self.ops else set())
        if ran:
            raise ForbiddenFunctionError(f"{name} ran {sorted(ran)}: not allowed in this lab ({self.rules})")


@functools.lru_cache(maxsize=4096)
def _instructions(code: types.CodeType) -> tuple[dis.Instruction, ...]:
    """The bytecode of ``code`` (disassembled once: the guard reads it on every call)."""
    return tuple(dis.get_instructions(code))


def _torch_classes() -> list[type]:
    """torch.nn's modules and torch.optim's optimizers (classes whose forward/step can be switched off)."""
    classes = [getattr(torch.nn, n) for n in dir(torch.nn)] + [getattr(torch.optim, n) for n in dir(torch.optim)]
    return [c for c in classes if isinstance(c, type)]
