"""courselib.checking: what crosses the boundary is plain data, and replaying a record runs the
same test code to the same verdict without any student code."""
import math

import numpy as np
import pytest
import torch

from courselib import checking


def run_recorded(tmp_path, monkeypatch, answers: dict, test, guard=None):
    """Run test(ns) against the answers with recording on; return (result, log)."""
    record = tmp_path / "records.bin"
    monkeypatch.setenv(checking.RECORD_ENV, str(record))
    ns = dict(answers)
    ns["checks"] = checking.Session(ns, list(answers), guard=guard)
    assert ns["checks"].mode == "record"
    outcome = _outcome(test, ns)
    monkeypatch.delenv(checking.RECORD_ENV)
    return outcome, checking.read_log(record)


def replay(log, names, test, guard=None):
    ns: dict = {}
    with checking.replaying(log):
        ns["checks"] = checking.Session(ns, names, guard=guard)
        assert ns["checks"].mode == "replay"
        return _outcome(test, ns)


def _outcome(test, ns):
    try:
        return ("ok", test(ns))
    except AssertionError as e:
        return ("fail", str(e).split("\n")[0])  # pytest adds operands (addresses) to bare asserts


def init_test(ns):
    ns["checks"].cell("test_init")
    torch.manual_seed(3)
    w = torch.full((20, 30), float("nan"))
    ptr = w.data_ptr()
    out = ns["fill_"](w)
    assert out is w, "must return the tensor it filled"
    assert w.data_ptr() == ptr, "in place"
    assert torch.isfinite(w).all(), "every entry"
    assert abs(w.std().item() - 0.5) < 0.05, f"std {w.std().item()}"
    big = torch.zeros(6, 8)
    ns["fill_"](big[:, 2:5])
    assert (big[:, 2:5] != 0).all() and (big[:, :2] == 0).all(), "only the view"
    return w.sum().item()


def good_fill(t):
    with torch.no_grad():
        return t.normal_(0, 0.5)


def test_record_then_replay_gives_the_same_verdict_and_values(tmp_path, monkeypatch):
    (status, value), log = run_recorded(tmp_path, monkeypatch, {"fill_": good_fill}, init_test)
    assert status == "ok"
    assert replay(log, ["fill_"], init_test) == ("ok", value)


def test_direct_mode_is_what_grading_sees():
    ns = {"fill_": good_fill}
    ns["checks"] = checking.Session(ns, ["fill_"])
    assert ns["checks"].mode == "direct"
    assert _outcome(init_test, ns)[0] == "ok"


@pytest.mark.parametrize("fill, message", [
    (lambda t: torch.randn(t.shape) * 0.5, "must return the tensor it filled"),
    (lambda t: setattr(t, "data", torch.randn(t.shape) * 0.5) or t, "in place"),
    (lambda t: t.normal_(0, 1.0), "std"),
])
def test_wrong_answers_fail_alike_in_both_processes(tmp_path, monkeypatch, fill, message):
    (status, msg), log = run_recorded(tmp_path, monkeypatch, {"fill_": fill}, init_test)
    assert status == "fail" and message in msg
    assert replay(log, ["fill_"], init_test) == (status, msg)


class Liar:
    def __eq__(self, other):
        return True

    def __bool__(self):
        return True


class LyingTensor(torch.Tensor):
    def __eq__(self, other):
        return torch.ones_like(other, dtype=torch.bool)


def test_values_that_lie_arrive_as_what_they_hold(tmp_path, monkeypatch):
    def test(ns):
        ns["checks"].cell("test_lie")
        a = ns["f"]()
        b = ns["g"]()
        return type(a).__name__, type(b) is torch.Tensor, bool((b == torch.tensor([1.0, 2.0])).all())

    (status, value), log = run_recorded(tmp_path, monkeypatch,
                                        {"f": lambda: Liar(), "g": lambda: torch.zeros(2).as_subclass(LyingTensor)},
                                        test)
    assert (status, value) == ("ok", ("Liar", True, False))
    assert replay(log, ["f", "g"], test) == ("ok", ("Liar", True, False))
    assert checking.decode(checking.encode(Liar(), []), []) != 1


def test_exceptions_effects_grad_mode_and_rng_carry_over(tmp_path, monkeypatch):
    def student(param, grad, state, lr=0.1):
        if lr < 0:
            raise ValueError(f"bad lr {lr}")
        state.setdefault("step", 0)
        state["step"] += 1
        param.sub_(lr * grad)
        torch.rand(3)              # consumes the default generator
        torch.set_grad_enabled(False)

    def test(ns):
        ns["checks"].cell("test_step")
        p, g, state = torch.ones(3), torch.full((3,), 2.0), {}
        ns["step"](p, g, state)
        ns["step"](p, g, state)
        assert torch.allclose(p, torch.full((3,), 0.6)) and state["step"] == 2
        after = torch.rand(2)      # depends on what the student's calls consumed
        grad_mode = torch.is_grad_enabled()
        torch.set_grad_enabled(True)
        try:
            ns["step"](p, g, state, lr=-1)
        except ValueError as e:
            return after.tolist(), grad_mode, str(e)

    (status, value), log = run_recorded(tmp_path, monkeypatch, {"step": student}, test)
    torch.set_grad_enabled(True)
    assert status == "ok" and value[1] is False and value[2] == "bad lr -1"
    assert replay(log, ["step"], test) == ("ok", value)
    torch.set_grad_enabled(True)


def test_a_changed_call_or_a_missing_cell_is_a_replay_error(tmp_path, monkeypatch):
    (_, _), log = run_recorded(tmp_path, monkeypatch, {"fill_": good_fill}, init_test)

    def other(ns):
        ns["checks"].cell("test_init")
        ns["fill_"](torch.zeros(3, 3))

    status, msg = replay(log, ["fill_"], other)
    assert status == "fail" and "different call" in msg
    status, msg = replay(checking.Log(), ["fill_"], init_test)
    assert status == "fail" and "did not run the test cell test_init" in msg


def test_nested_answers_and_guards_run_on_the_student_side(tmp_path, monkeypatch):
    calls = []

    class Forbidden(AssertionError):
        pass

    def guard(name, target):
        calls.append(name)
        if name == "bad":
            raise Forbidden("bad is not allowed")
        import contextlib
        return contextlib.nullcontext()

    def test(ns):
        ns["checks"].cell("t")
        assert ns["outer"](2) == 5
        ns["bad"]()

    answers = {"inner": lambda x: x + 1}
    answers["outer"] = lambda x: answers_ns["inner"](x) * 2 - 1
    answers["bad"] = lambda: None
    answers_ns = answers  # outer looks inner up at call time, as notebook globals do
    (status, msg), log = run_recorded(tmp_path, monkeypatch, answers, test, guard=guard)
    assert status == "fail" and "bad is not allowed" in msg
    assert calls == ["outer", "bad"]  # the nested call to inner did not cross the boundary
    assert replay(log, list(answers), test) == (status, msg)


def test_read_log_is_strict(tmp_path, monkeypatch):
    (_, _), log = run_recorded(tmp_path, monkeypatch, {"fill_": good_fill}, init_test)
    record = tmp_path / "records.bin"
    data = record.read_bytes()
    record.write_bytes(data[: len(data) // 2])
    assert "damaged" in checking.read_log(record).problem
    record.write_bytes(b"garbage" * 10)
    assert checking.read_log(record).problem
    assert "no record" in checking.read_log(tmp_path / "missing.bin").problem
    with pytest.raises(ValueError):
        checking.decode({"t": "tensor", "i": 0, "dtype": "float32", "shape": [3]}, [np.zeros(2, np.float32)])
    assert math.isnan(checking.decode(checking.encode(float("nan"), []), []))


def test_an_error_ends_at_the_students_line_and_an_unanswered_stub_is_named():
    """What a student sees: the error raised in their own function (its traceback ends at their
    line, the checking frames are marked hidden for IPython), and an unanswered stub's
    NotImplementedError names the function to write."""
    import traceback

    def compute_fans(weight):
        return receptive_feild(weight)  # noqa: F821 - the student's typo

    def xavier_uniform_(tensor):
        raise NotImplementedError()

    ns = {"compute_fans": compute_fans, "xavier_uniform_": xavier_uniform_}
    checks = checking.Session(ns, ["compute_fans", "xavier_uniform_"])
    checks.cell("test_compute_fans")
    with pytest.raises(NameError, match="receptive_feild") as info:
        ns["compute_fans"](torch.empty(3, 5))
    frames = traceback.extract_tb(info.value.__traceback__)
    assert frames[-1].name == "compute_fans" and "receptive_feild" in frames[-1].line
    hidden = [f for f in traceback.walk_tb(info.value.__traceback__) if f[0].f_locals.get("__tracebackhide__")]
    assert {f[0].f_code.co_name for f in hidden} == {"__call__", "_call", "_run", "_apply"}
    assert type(info.value) is NameError  # still plain data: the built-in type and message
    checks.cell("test_xavier_uniform_")
    with pytest.raises(NotImplementedError, match=r"^xavier_uniform_ is not written yet: write it in its answer cell"):
        ns["xavier_uniform_"](torch.empty(3, 5))
