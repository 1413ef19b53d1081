"""courselib.labcheck: the checks every lab's test cells share, each shown to fail when it should."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from courselib import labcheck
from courselib.labcheck import Forbidden, ForbiddenFunctionError, assert_close, expect_error

CONV = (r"\.(conv\w*|Conv\w*|\w*[pP]ool\w*|im2col|col2im)$|(^|\.)(functional|F|nn)\.(un)?fold$|(^|\.)(Unfold|Fold)$")
INIT = r"(^|\.)init(\.(_?calculate\w*|xavier\w*|kaiming\w*))?$"


def test_assert_close_passes_rounding_and_fails_real_differences():
    x = torch.randn(5, 4, dtype=torch.float64)
    assert_close(x * (1 + 1e-12), x, "rounded")
    assert_close(x.float(), x.float() + 1e-7, "float32 rounding")
    with pytest.raises(AssertionError, match=r"differs from the reference by up to 0\.001"):
        assert_close(x + torch.eye(5, 4, dtype=torch.float64) * 1e-3, x, "off")
    with pytest.raises(AssertionError, match=r"shape \(4, 5\), expected \(5, 4\)"):
        assert_close(x.t(), x, "transposed")
    with pytest.raises(AssertionError, match="expected a tensor, got list"):
        assert_close(x.tolist(), x, "a list")
    with pytest.raises(AssertionError, match="dtype torch.float32, expected torch.float64"):
        assert_close(x.float(), x, "float32", dtype=True)
    assert_close(x.float(), x.float(), "float32 without a dtype check")
    nan = torch.tensor([1.0, math.nan])
    assert_close(nan.clone(), nan, "NaN where the reference has NaN")
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0, 2.0]), nan, "a number where the reference has NaN")


def test_expect_error_requires_the_error_a_message_and_the_numbers():
    def checks_channels(c_in, c_w, message=True):
        if c_in != c_w:
            raise ValueError(f"x has {c_in} channels but weight expects {c_w}" if message else "")
        return c_in

    expect_error(ValueError, checks_channels, 3, 7, mentions=(3, 7))
    expect_error(ValueError, lambda: (_ for _ in ()).throw(ValueError("x has 3 channels, weight expects 7.")),
                 mentions=(3, 7))  # a full stop after a number is not a decimal point
    with pytest.raises(AssertionError, match="should name 3"):
        expect_error(ValueError, lambda: (_ for _ in ()).throw(ValueError("scale 0.3 or 3.5")), mentions=(3,))
    with pytest.raises(AssertionError, match="should name 3, 30"):
        expect_error(ValueError, checks_channels, 3, 300, mentions=(3, 30))  # 30 is not in 300
    with pytest.raises(AssertionError, match="empty message"):
        expect_error(ValueError, checks_channels, 3, 7, message=False)
    with pytest.raises(AssertionError, match="should raise ValueError, but it returned normally"):
        expect_error(ValueError, checks_channels, 3, 3)
    with pytest.raises(AssertionError, match="should raise ValueError, but raised IndexError: boom"):
        expect_error(ValueError, lambda: [][0] if False else (_ for _ in ()).throw(IndexError("boom")), what="f")
    assert expect_error(ValueError, checks_channels, 1, 2) is None  # a test cell ending with it shows no Out[n]

    def unanswered(*args):
        raise NotImplementedError()
    with pytest.raises(NotImplementedError):  # passes through: it says what to do
        expect_error(ValueError, unanswered)


def my_conv(x, w):
    return F.conv2d(x, w)


def calls_helper(x, w):
    return my_conv(x, w)


def uses_unfold_method(x, w):
    patches = x.unfold(2, w.shape[2], 1).unfold(3, w.shape[3], 1)  # Tensor.unfold is allowed
    return torch.einsum("nchwij,ocij->nohw", patches, w)


def sneaky(x, w):
    f = getattr(F, "con" + "v2d")  # no name in the code: switched off while it runs
    return f(x, w)


def caught(x, w):
    try:
        return getattr(F, "con" + "v2d")(x, w)
    except Exception:  # noqa: BLE001 - what a student might write to hide the refusal
        return uses_unfold_method(x, w)


def test_forbidden_refers_calls_and_ops():
    rule = Forbidden(CONV, forbidden_ops=r"convolution|im2col|pool")
    assert rule.references(my_conv) == {".conv2d"}
    assert rule.references(calls_helper) == {".conv2d"}  # through the notebook's own helper
    assert rule.references(uses_unfold_method) == set()
    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    with rule.guard("uses_unfold_method", uses_unfold_method):
        got = uses_unfold_method(x, w)
    torch.testing.assert_close(got, F.conv2d(x, w))  # switched back on after the call
    with pytest.raises(ForbiddenFunctionError, match=r"my_conv refers to \['.conv2d'\]"), \
            rule.guard("my_conv", my_conv):
        my_conv(x, w)
    with pytest.raises(ForbiddenFunctionError, match=r"conv2d is not allowed"), rule.guard("sneaky", sneaky):
        sneaky(x, w)
    with pytest.raises(ForbiddenFunctionError, match=r"caught ran \['torch.nn.functional.conv2d'\]"), \
            rule.guard("caught", caught):
        caught(x, w)
    layer = nn.Conv2d(2, 3, 3)
    with pytest.raises(ForbiddenFunctionError, match="ran .*aten.convolution"), rule.guard("layer", lambda: 0):
        torch.ops.aten.convolution(x, layer.weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    assert F.conv2d(x, w).shape == (1, 3, 3, 3) and layer(x).shape == (1, 3, 3, 3)  # restored


def test_forbidden_init_switches_off_torch_nn_init_only():
    rule = Forbidden(INIT)
    names = {f"{owner.__name__}.{attr}" for owner, attr in rule.targets()}
    assert "torch.nn.init.kaiming_normal_" in names and "torch.nn.init.calculate_gain" in names
    assert "torch.nn.init.normal_" not in names and not any("conv" in n for n in names)

    def via_init(t):
        return torch.nn.init.kaiming_normal_(t)

    def by_hand(t):
        with torch.no_grad():
            return t.normal_(0, math.sqrt(2 / t.shape[1]))

    assert rule.references(via_init) == {".init"}  # the attribute that leads to the routines
    with rule.guard("by_hand", by_hand):
        by_hand(torch.empty(4, 5))


def test_forbidden_class_bases_are_references():
    rule = Forbidden(r"(^|\.)optim\.(Adam|AdamW)$|(^|\.)adamw?\.AdamW?$")

    class MyAdamW(torch.optim.AdamW):
        pass

    class Mine(torch.optim.Optimizer):
        def step(self, closure=None):
            return None

    assert any("AdamW" in r for r in rule.references(MyAdamW))
    assert rule.references(Mine) == set()


def test_op_recorder_and_one_thread():
    with labcheck.OpRecorder() as rec:
        torch.ones(2, 2).mm(torch.ones(2, 2))
    assert "aten.mm.default" in rec.ops
    before = torch.get_num_threads()
    with labcheck.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_an_optimizer_built_while_switched_off_is_restored_after():
    """torch.optim.Optimizer wraps a class's step for its profiler when its first instance is made;
    a blocker it wrapped would stay in the class after the call: the blocker is marked as wrapped."""
    rule = Forbidden(r"(^|\.)(AdamW?|adamw?|_(single_tensor|multi_tensor|fused)_adamw?_?)$")

    class Fresh(torch.optim.AdamW):  # never instantiated yet: its step is Adam's, switched off below
        pass

    with rule.switched_off():
        Fresh([torch.zeros(2, requires_grad=True)])
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.ones(2)
    Fresh([p], lr=0.1).step()  # works again
    assert p.detach().abs().sum() > 0


def test_references_look_behind_decorators():
    rule = Forbidden(r"(^|\.)optim\.AdamW$|(^|\.)AdamW$")

    class Mine(torch.optim.Optimizer):
        @torch.no_grad()
        def step(self, closure=None):
            return torch.optim.AdamW

    assert rule.references(Mine)


ANSWER_CELLS = '''
import torch
from torch import nn


def blank(x):
    """Docstring."""
    # YOUR CODE HERE
    raise NotImplementedError()


def written(x):
    if x is None:
        raise NotImplementedError("not for None")
    return x


class BlankLayer(nn.Module):
    def __init__(self, n):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x):
        # YOUR CODE HERE
        raise NotImplementedError


class DoneLayer(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.n = n

    def forward(self, x):
        return blank(x)  # calls a blank function, but is written itself
'''


def test_require_written_names_each_blank_answer_and_passes_written_ones(tmp_path, monkeypatch):
    (tmp_path / "answers_cells.py").write_text(ANSWER_CELLS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import answers_cells as cells

    labcheck.require_written(cells.written, cells.DoneLayer)          # nothing blank: returns None
    assert labcheck.require_written() is None
    with pytest.raises(NotImplementedError) as one:
        labcheck.require_written(cells.written, cells.blank)
    assert str(one.value).startswith("This experiment runs your code, and `blank` is not written yet: write it in "
                                     "its answer cell above")
    with pytest.raises(NotImplementedError) as many:
        labcheck.require_written(cells.blank, cells.BlankLayer, cells.DoneLayer)
    assert ("`blank`, `BlankLayer.__init__` and `BlankLayer.forward` are not written yet: write them in their "
            "answer cells above") in str(many.value)
    wrapped = lambda *a: cells.blank(*a)  # noqa: E731 - a checked version, as the test cells' proxies
    wrapped.__wrapped__ = cells.blank
    with pytest.raises(NotImplementedError, match="`blank` is not written"):
        labcheck.require_written(wrapped)
    # no readable source (e.g. built by exec): never stops an experiment by mistake
    namespace: dict = {}
    exec("def nosource(x):\n    raise NotImplementedError()\n", namespace)
    labcheck.require_written(namespace["nosource"], len, torch.relu)
