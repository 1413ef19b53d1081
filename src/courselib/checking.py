"""The boundary between a lab's test cells and the student's code, made of plain data.

A lab's helper cell creates one :class:`Session`; every test cell starts with
``checks.cell("<grade_id>")``. From then on each call that test code makes into a student's
answer (``conv2d(x, w)``) goes through a proxy, which runs the answer and hands back *plain
data*: tensors become fresh ``torch.Tensor`` objects rebuilt from their bytes, numbers and
strings their exact built-in types, exceptions their built-in type and message. In-place
effects on tensor and dict arguments, the autograd switch and the random generator's state are
carried over the same way. So an answer cannot lie to a test (an object whose ``__eq__`` always
says yes arrives as what it really holds), and the same test code can be run again elsewhere.

Three modes, chosen by the environment, never by the notebook:

* **direct** (a student working, the in-process lab tests): calls run, results are round-tripped
  through the plain-data codec, nothing is written;
* **record** (grading, inside the sandbox; ``COURSELIB_RECORD`` names a file): as direct, and
  every call is appended to that file as plain data (see :func:`read_log`);
* **replay** (the trusted grader, inside :func:`replaying`): no student code runs at all; each
  call returns what the record says, after checking that the test made it with the same
  arguments (:class:`ReplayError` otherwise). The grader runs the instructor's test cells this
  way in its own process, so the verdict cannot be changed by anything the student's code did to
  its own interpreter (patched builtins, hooks, rewritten cells): it can only change the data.

Only depth-0 calls (from test code) cross the boundary; an answer calling another answer, or a
probe (:meth:`Session.probe`, instructor code that drives a student's class and returns plain
data) calling into student code, runs directly on the student's side.
"""
from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import struct
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["Session", "Opaque", "ReplayError", "read_log", "replaying", "encode", "decode", "Log"]

RECORD_ENV = "COURSELIB_RECORD"
_MAGIC = b"CLR1"
_MAX_HEADER = 64 << 20
_MAX_DEPTH = 32
_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)}
_BUILTIN_EXCEPTIONS = {name: obj for name, obj in vars(builtins).items()
                       if isinstance(obj, type) and issubclass(obj, BaseException)}


class ReplayError(AssertionError):
    """The record does not hold the call a test made: the notebook ran something else."""


class Opaque:
    """Stands for a value that is not plain data (a student's own object); holds its type name."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name} object (not plain data)>"


# ---------------------------------------------------------------------------------------------
# plain-data codec: a JSON tree plus a list of arrays
# ---------------------------------------------------------------------------------------------

def _tensor_bytes(t: torch.Tensor) -> tuple[dict, np.ndarray]:
    with torch._C.DisableTorchFunctionSubclass():
        data = torch.Tensor.detach(t).cpu().contiguous()
        # numpy has no bfloat16: its bits travel as int16
        array = (data.view(torch.int16) if data.dtype == torch.bfloat16 else data).numpy().copy()
        meta = {"dtype": str(data.dtype).removeprefix("torch."), "shape": list(data.shape),
                "requires_grad": bool(t.requires_grad), "grad_fn": t.grad_fn is not None,
                "param": isinstance(t, torch.nn.Parameter)}
    return meta, array


def encode(obj: Any, arrays: list[np.ndarray] | None, refs: dict[int, str] | None = None, depth: int = 0) -> Any:
    """obj as a JSON-able tree; tensors go to ``arrays`` (``None``: keep shapes, not values).
    ``refs`` maps id(tensor) -> a name for
    objects that the other side already holds (encoded as references). Uses true types only."""
    if depth > _MAX_DEPTH:
        return {"t": "opaque", "type": "too deeply nested"}
    kind = type(obj)
    if refs and id(obj) in refs:
        return {"t": "ref", "v": refs[id(obj)]}
    if obj is None or kind is bool:
        return obj
    if issubclass(kind, int):
        return {"t": "int", "v": str(int.__int__(obj))}
    if issubclass(kind, float):
        return {"t": "float", "v": float.hex(float.__float__(obj))}
    if issubclass(kind, str):
        return {"t": "str", "v": str.__str__(obj)}
    if issubclass(kind, complex):
        z = complex.__complex__(obj)
        return {"t": "complex", "v": [float.hex(z.real), float.hex(z.imag)]}
    if issubclass(kind, torch.Tensor):
        if arrays is None:  # structure only (fingerprints)
            return {"t": "tensor", "dtype": str(obj.dtype), "shape": list(obj.shape)}
        meta, array = _tensor_bytes(obj)
        arrays.append(array)
        return {"t": "tensor", "i": len(arrays) - 1, **meta}
    if issubclass(kind, torch.Size):
        return {"t": "size", "v": [int(v) for v in tuple.__iter__(obj)]}
    if kind is torch.dtype:
        return {"t": "dtype", "v": str(obj).removeprefix("torch.")}
    if issubclass(kind, np.generic) and kind().dtype.kind in "biufc":
        return {"t": "np", "dtype": np.dtype(kind).str,
                "v": encode(np.asarray(obj).item(), arrays, None, depth + 1)}
    if issubclass(kind, np.ndarray) and obj.dtype.kind in "biufc":
        if arrays is None:
            return {"t": "ndarray", "dtype": obj.dtype.str, "shape": list(obj.shape)}
        arrays.append(np.ascontiguousarray(np.ndarray.copy(obj)))
        return {"t": "ndarray", "i": len(arrays) - 1}
    if issubclass(kind, tuple):
        return {"t": "tuple", "v": [encode(v, arrays, refs, depth + 1) for v in tuple.__iter__(obj)]}
    if issubclass(kind, list):
        return {"t": "list", "v": [encode(v, arrays, refs, depth + 1) for v in list.__iter__(obj)]}
    if issubclass(kind, dict):
        items = list(dict.items(obj))
        return {"t": "dict", "k": [encode(k, arrays, refs, depth + 1) for k, _ in items],
                "v": [encode(v, arrays, refs, depth + 1) for _, v in items]}
    return {"t": "opaque", "type": getattr(kind, "__qualname__", "object")[:200]}


def _array(desc: dict, arrays: list[np.ndarray]) -> np.ndarray:
    i = desc["i"]
    if not isinstance(i, int) or not 0 <= i < len(arrays):
        raise ValueError("bad array index in record")
    return arrays[i]


def decode(tree: Any, arrays: list[np.ndarray], refs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """The inverse of :func:`encode`: fresh plain objects (``refs`` resolves references)."""
    if depth > _MAX_DEPTH:
        raise ValueError("record nested too deeply")
    if tree is None or type(tree) is bool:
        return tree
    if type(tree) is not dict:
        raise ValueError(f"not plain data: {type(tree).__name__}")
    t = tree.get("t")
    if t == "ref":
        if refs is None or tree["v"] not in refs:
            raise ValueError("unknown reference in record")
        return refs[tree["v"]]
    if t == "int":
        return int(str(tree["v"]))
    if t == "float":
        return float.fromhex(str(tree["v"]))
    if t == "str":
        return str(tree["v"])
    if t == "complex":
        return complex(float.fromhex(str(tree["v"][0])), float.fromhex(str(tree["v"][1])))
    if t == "tensor":
        dtype = _DTYPES[str(tree["dtype"])]
        shape = [int(s) for s in tree["shape"]]
        array = _array(tree, arrays)
        tensor = torch.from_numpy(array.copy())
        if dtype == torch.bfloat16:
            tensor = tensor.view(torch.bfloat16)
        if tensor.dtype != dtype or list(tensor.shape) != shape:
            raise ValueError("tensor bytes do not match their dtype and shape")
        if tree.get("param"):
            return torch.nn.Parameter(tensor, requires_grad=bool(tree.get("requires_grad")))
        if tree.get("requires_grad") and dtype.is_floating_point:
            tensor.requires_grad_(True)
            if tree.get("grad_fn"):
                tensor = tensor * 1  # not a leaf, as the original was
        return tensor
    if t == "size":
        return torch.Size([int(v) for v in tree["v"]])
    if t == "dtype":
        return _DTYPES[str(tree["v"])]
    if t == "np":
        return np.dtype(str(tree["dtype"])).type(decode(tree["v"], arrays, None, depth + 1))
    if t == "ndarray":
        return _array(tree, arrays).copy()
    if t in ("tuple", "list"):
        items = [decode(v, arrays, refs, depth + 1) for v in tree["v"]]
        return tuple(items) if t == "tuple" else items
    if t == "dict":
        return {decode(k, arrays, refs, depth + 1): decode(v, arrays, refs, depth + 1)
                for k, v in zip(tree["k"], tree["v"], strict=True)}
    if t == "opaque":
        name = str(tree.get("type", "object"))[:200]
        return type(name if name.isidentifier() else "Opaque", (Opaque,), {"__slots__": ()})(name)
    raise ValueError(f"unknown plain-data tag {t!r}")


def _digest(tree: Any) -> str:
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# the record file: frames of (JSON header, arrays)
# ---------------------------------------------------------------------------------------------

def _write_frame(fh, header: dict, arrays: list[np.ndarray]) -> None:
    header = dict(header, arrays=[[a.dtype.str, list(a.shape)] for a in arrays])
    head = json.dumps(header).encode()
    blob = b"".join(memoryview(np.ascontiguousarray(a)).cast("B").tobytes() for a in arrays)
    fh.write(_MAGIC + struct.pack("<IQ", len(head), len(blob)) + head + blob)
    fh.flush()


@dataclass
class Log:
    """A record read back: for each test cell, its start state and its calls, in order."""

    cells: dict[str, dict] = field(default_factory=dict)  # grade_id -> {"state": frame, "calls": [frames]}
    problem: str = ""  # why reading stopped early ("" if the whole file was read)


def read_log(path: Path, max_bytes: int = 1 << 30) -> Log:
    """Parse a record file strictly (sizes, dtypes, shapes); never unpickles anything.
    When a test cell appears more than once, its last run counts."""
    log = Log()
    path = Path(path)
    if not path.is_file():
        log.problem = "no record: the notebook's test cells did not run"
        return log
    size = path.stat().st_size
    if size > max_bytes:
        log.problem = f"record too large ({size} bytes)"
        return log
    current = None
    with open(path, "rb") as fh:
        while True:
            start = fh.read(16)
            if not start:
                break
            try:
                if len(start) < 16 or start[:4] != _MAGIC:
                    raise ValueError("bad frame marker")
                head_len, blob_len = struct.unpack("<IQ", start[4:])
                if head_len > _MAX_HEADER or blob_len > size:
                    raise ValueError("frame too large")
                header = json.loads(fh.read(head_len))
                blob = fh.read(blob_len)
                if type(header) is not dict or len(blob) != blob_len:
                    raise ValueError("truncated frame")
                arrays, offset = [], 0
                for dtype, shape in header.pop("arrays"):
                    dt = np.dtype(str(dtype))
                    if dt.kind not in "biufc" or dt.hasobject:
                        raise ValueError(f"dtype {dtype} not allowed")
                    shape = tuple(int(s) for s in shape)
                    if any(s < 0 for s in shape):
                        raise ValueError("negative shape")
                    n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
                    if offset + n > blob_len:
                        raise ValueError("array overruns its frame")
                    arrays.append(np.frombuffer(blob, dtype=dt, count=n // dt.itemsize if dt.itemsize else 0,
                                                offset=offset).reshape(shape))
                    offset += n
                header["_arrays"] = arrays
            except (ValueError, TypeError, KeyError, struct.error, json.JSONDecodeError) as e:
                log.problem = f"record damaged after {len(log.cells)} cells: {e}"
                break
            if header.get("kind") == "cell":
                current = {"state": header, "calls": []}
                log.cells[str(header.get("cell"))] = current
            elif header.get("kind") == "call" and current is not None:
                current["calls"].append(header)
    return log


_REPLAY: list[Log] = []


@contextlib.contextmanager
def replaying(log: Log) -> Iterator[Log]:
    """Sessions created inside this block replay ``log`` instead of running student code."""
    _REPLAY.append(log)
    try:
        yield log
    finally:
        _REPLAY.pop()


# ---------------------------------------------------------------------------------------------
# the session
# ---------------------------------------------------------------------------------------------

def _arguments(args: tuple, kwargs: dict) -> list:
    found: list = []
    for i, a in enumerate(args):
        _walk(a, f"a{i}", found)
    for k, v in kwargs.items():
        _walk(v, f"k{k}", found)
    return found


def _walk(obj: Any, path: str, out: list, depth: int = 0) -> None:
    """(path, object) of every tensor and plain dict reachable through tuples, lists and dicts."""
    if depth > 8:
        return
    kind = type(obj)
    if issubclass(kind, torch.Tensor) or kind is dict:
        out.append((path, obj))
    if kind in (tuple, list):
        for i, v in enumerate(obj):
            _walk(v, f"{path}.{i}", out, depth + 1)
    elif kind is dict:
        for k, v in list(obj.items()):
            if type(k) is str:
                _walk(v, f"{path}.{k}", out, depth + 1)


def _tensor_state(t: torch.Tensor) -> tuple:
    return (t.data_ptr(), t.dtype, tuple(t.shape), t.requires_grad, t.grad_fn is not None, t._version)


class _Proxy:
    """Stands in the notebook for a student's answer (or an instructor's probe)."""

    def __init__(self, session: Session, name: str, target: Callable | None, probe: bool = False):
        self._session, self._target, self._probe = session, target, probe
        self.__name__ = self.__qualname__ = name
        self.__doc__ = getattr(target, "__doc__", None)
        if target is not None:
            self.__wrapped__ = target  # inspect.unwrap() finds the student's function

    def __call__(self, *args, **kwargs):
        __tracebackhide__ = True  # IPython leaves the frames that set this out of tracebacks
        return self._session._call(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<checked {self.__name__}>"


class Session:
    """The checks of one notebook. ``namespace``: the notebook's ``globals()``; ``answers``: the
    names the answer cells define; ``guard(name, target)``: an optional context manager run around
    every student call on the student's side (e.g. one that forbids built-in routines), whose
    exception is recorded like any other; ``exceptions``: exception classes (besides the
    built-in ones) that keep their type across the boundary."""

    def __init__(self, namespace: dict, answers: list[str] | tuple[str, ...], *,
                 guard: Callable[[str, Callable], contextlib.AbstractContextManager] | None = None,
                 exceptions: tuple[type[BaseException], ...] = ()):
        self.namespace, self.answers, self.guard = namespace, tuple(answers), guard
        self.exceptions = {e.__name__: e for e in exceptions}
        self._depth, self._cell, self._seq = 0, None, 0
        self._replay: Log | None = _REPLAY[-1] if _REPLAY else None
        path = os.environ.get(RECORD_ENV) if self._replay is None else None
        self._record = open(path, "ab") if path else None  # noqa: SIM115 - lives as long as the kernel
        self.mode = "replay" if self._replay is not None else "record" if self._record else "direct"

    # -- test cells -------------------------------------------------------------------------
    def cell(self, grade_id: str) -> None:
        """Start the checks of test cell ``grade_id``: wrap the answers, note the start state."""
        self._cell, self._seq = str(grade_id), 0
        for name in self.answers:
            current = self.namespace.get(name)
            if self._replay is not None:
                self.namespace[name] = _Proxy(self, name, None)
            elif current is not None and not isinstance(current, _Proxy):
                self.namespace[name] = _Proxy(self, name, current)
        if self._replay is not None:
            entry = self._replay.cells.get(self._cell)
            if entry is None:
                raise ReplayError(f"the notebook did not run the test cell {grade_id} (or its record is missing)"
                                  + (f": {self._replay.problem}" if self._replay.problem else ""))
            self._restore(entry["state"])
        elif self._record is not None:
            state, arrays = self._globals_state()
            _write_frame(self._record, {"kind": "cell", "cell": self._cell, **state}, arrays)

    def probe(self, fn: Callable) -> _Proxy:
        """Decorator: ``fn`` is instructor code that runs on the student's side (it may use the
        student's classes freely) and returns plain data; in replay its result is the record."""
        return _Proxy(self, fn.__name__, fn, probe=True)

    # -- global state ---------------------------------------------------------------------------
    @staticmethod
    def _globals_state() -> tuple[dict, list[np.ndarray]]:
        rng = torch.get_rng_state().numpy().copy()
        return {"grad_enabled": torch.is_grad_enabled(), "rng": 0}, [rng]

    @staticmethod
    def _restore(frame: dict) -> None:
        torch.set_grad_enabled(bool(frame.get("grad_enabled", True)))
        if frame.get("rng") is not None:
            rng = _array({"i": frame["rng"]}, frame["_arrays"])
            torch.set_rng_state(torch.from_numpy(rng.astype(np.uint8).copy()))

    # -- calls ----------------------------------------------------------------------------------
    def _call(self, proxy: _Proxy, args: tuple, kwargs: dict):
        __tracebackhide__ = True
        if self._depth > 0:  # student code calling an answer: no boundary
            target = proxy._target if proxy._target is not None else None
            if target is None:
                raise ReplayError(f"{proxy.__name__} called from inside another call during replay")
            return target(*args, **kwargs)
        if self._cell is None:
            raise RuntimeError("call checks.cell(<grade_id>) at the start of the test cell first")
        name, seq = proxy.__name__, self._seq
        self._seq += 1
        # The fingerprint covers the call's structure (names, types, shapes, dtypes, numbers), not
        # tensor contents: those may be uninitialized (torch.empty). Diverging contents cannot help
        # a submission anyway: the grader judges the recorded results against its own inputs.
        fingerprint = _digest(encode((name, list(args), kwargs), None))
        if self._replay is not None:
            return self._replay_call(proxy, seq, fingerprint, args, kwargs)
        return self._run(proxy, seq, fingerprint, args, kwargs)

    def _run(self, proxy: _Proxy, seq: int, fingerprint: str, args: tuple, kwargs: dict):
        __tracebackhide__ = True
        found = _arguments(args, kwargs)
        before = {path: (_tensor_state(o), o.detach().clone()) if isinstance(o, torch.Tensor) else None
                  for path, o in found}
        rng_before = torch.get_rng_state()
        passed = args
        if not proxy._probe:  # iterators (e.g. model.parameters()) arrive as fresh iterators
            passed = tuple(iter(list(a)) if isinstance(a, types.GeneratorType) else a for a in args)
        error, result = None, None
        self._depth += 1
        try:
            guard = self.guard(proxy.__name__, proxy._target) if (self.guard and not proxy._probe) \
                else contextlib.nullcontext()
            with guard:
                result = proxy._target(*passed, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - whatever the student's code raises is recorded
            error = e
        finally:
            self._depth -= 1
        arrays: list[np.ndarray] = []
        header: dict = {"kind": "call", "cell": self._cell, "seq": seq, "name": proxy.__name__,
                        "fingerprint": fingerprint}
        if error is not None:
            header["error"] = self._error_tree(error, _raised_in(error, proxy.__name__))
        else:
            ids = {id(o): path for path, o in found}
            header["result"] = encode(result, arrays, ids)
        effects = []
        for path, obj in found:
            if isinstance(obj, torch.Tensor):
                state, copy = before[path]
                now = _tensor_state(obj)
                if now != state or not _same_bits(obj, copy):
                    effects.append([path, now[0] != state[0], encode(obj, arrays)])
            else:
                effects.append([path, False, encode(obj, arrays)])
        header["effects"] = effects
        header["grad_enabled"] = torch.is_grad_enabled()
        rng_after = torch.get_rng_state()
        if not torch.equal(rng_after, rng_before):
            arrays.append(rng_after.numpy().copy())
            header["rng"] = len(arrays) - 1
        if self._record is not None:
            _write_frame(self._record, header, arrays)
        return self._apply(header, arrays, found, replay=False,
                           traceback=_student_frames(error.__traceback__) if error is not None else None)

    def _replay_call(self, proxy, seq, fingerprint, args, kwargs):
        calls = self._replay.cells[self._cell]["calls"]
        if seq >= len(calls):
            raise ReplayError(f"{proxy.__name__}: the notebook's run of this test stopped before this call "
                              "(it raised, timed out, or the cell was changed)")
        frame = calls[seq]
        if frame.get("name") != proxy.__name__ or frame.get("fingerprint") != fingerprint:
            raise ReplayError(f"{proxy.__name__}: the notebook made a different call here than the test makes "
                              "(the test cell, its inputs or the random state were changed)")
        return self._apply(frame, frame["_arrays"], _arguments(args, kwargs), replay=True)

    def _apply(self, header: dict, arrays: list[np.ndarray], found: list, replay: bool,
               traceback: types.TracebackType | None = None):
        """Make the recorded outcome happen on this side: effects, global state, result. On the
        student's side the tensors already changed; dicts get their round-tripped contents. An
        error is raised as its plain built-in type, with ``traceback`` (the student's own frames,
        where their code raised it) so that the notebook shows the student's line."""
        __tracebackhide__ = True
        by_path = dict(found)
        with torch.no_grad():
            for path, replaced, tree in header.get("effects", []):
                obj = by_path.get(path)
                if isinstance(obj, torch.Tensor) and not replay:
                    continue
                value = decode(tree, arrays)
                if isinstance(obj, torch.Tensor) and isinstance(value, torch.Tensor):
                    if replaced or obj.dtype != value.dtype or obj.shape != value.shape:
                        obj.data = value.detach()
                    else:
                        obj.copy_(value)
                    if obj.is_leaf and obj.requires_grad != value.requires_grad:
                        obj.requires_grad_(value.requires_grad)
                elif type(obj) is dict and type(value) is dict:
                    obj.clear()
                    obj.update(value)
        torch.set_grad_enabled(bool(header.get("grad_enabled", True)))
        if replay and header.get("rng") is not None:
            torch.set_rng_state(torch.from_numpy(_array({"i": header["rng"]}, arrays).astype(np.uint8).copy()))
        if "error" in header:
            raise self._error_from(header["error"]).with_traceback(traceback) from None
        return decode(header.get("result"), arrays, {path: obj for path, obj in found})

    def _error_tree(self, error: BaseException, proxy_name: str = "") -> dict:
        kind = type(error)
        if kind.__name__ in self.exceptions and self.exceptions[kind.__name__] is kind:
            name = kind.__name__
        else:
            name = next(c.__name__ for c in kind.__mro__ if _BUILTIN_EXCEPTIONS.get(c.__name__) is c)
        try:
            message = BaseException.__str__(error)
        except Exception:  # noqa: BLE001
            message = ""
        if name == "NotImplementedError" and not message.strip() and proxy_name:
            message = (f"{proxy_name} is not written yet: write it in its answer cell (in place of "
                       "`raise NotImplementedError()`), run that cell, then run this test again")
        return {"type": name, "message": message[:4000]}

    def _error_from(self, tree: dict) -> BaseException:
        name = str(tree.get("type"))
        message = str(tree.get("message", ""))
        cls = self.exceptions.get(name) or _BUILTIN_EXCEPTIONS.get(name) or RuntimeError
        if issubclass(cls, (KeyboardInterrupt, GeneratorExit)):
            cls = RuntimeError
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError needs five arguments
            return RuntimeError(f"{name}: {message}")


def _ours(frame: types.FrameType) -> bool:
    """A frame of the checking machinery (this module, labcheck's guard, contextlib's with-blocks)."""
    return Path(frame.f_code.co_filename).name in ("checking.py", "labcheck.py", "contextlib.py")


def _student_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` without the checking machinery's frames: the student's own frames, and the frame
    that raised (even if it is ours, e.g. a forbidden routine's refusal)."""
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    kept = [e for i, e in enumerate(entries) if not _ours(e.tb_frame) or i == len(entries) - 1]
    rebuilt = None
    for e in reversed(kept):
        rebuilt = types.TracebackType(rebuilt, e.tb_frame, e.tb_lasti, e.tb_lineno)
    return rebuilt


def _raised_in(error: BaseException, default: str) -> str:
    """The student's function (or method) that raised ``error``: the innermost frame not ours."""
    tb, name = error.__traceback__, default
    while tb is not None:
        if not _ours(tb.tb_frame) and tb.tb_frame.f_code.co_name != "<module>":
            name = getattr(tb.tb_frame.f_code, "co_qualname", tb.tb_frame.f_code.co_name).rsplit("<locals>.", 1)[-1]
        tb = tb.tb_next
    return name


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.is_floating_point or a.dtype.is_complex:
        return bool(torch.equal(a.detach().nan_to_num(0.5, 1.5, -1.5), b.nan_to_num(0.5, 1.5, -1.5))
                    and torch.equal(a.detach().isnan(), b.isnan()))
    return bool(torch.equal(a.detach(), b))
