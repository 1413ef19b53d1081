import math

import pytest
import torch
from torch import nn

from courselib.probes import ActivationProbe, layer_stats, weight_grad_stats


def deep_mlp(depth=6, width=64, std=None):
    layers = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        if std is not None:
            nn.init.normal_(lin.weight, std=std)
            nn.init.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def test_stats_match_direct_computation():
    torch.manual_seed(0)
    model = deep_mlp(3)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    with ActivationProbe(model) as probe:
        probe.keep_tensors = True
        nn.functional.cross_entropy(model(x), y).backward()
    st = probe.stats()
    assert [s.name for s in st] == ["0", "2", "4", "6"]
    out0 = model[0](x)
    assert st[0].act_mean == pytest.approx(out0.mean().item(), rel=1e-5)
    assert st[0].act_std == pytest.approx(out0.std().item(), rel=1e-5)
    assert torch.equal(probe.activations["0"], out0.detach())
    # gradient w.r.t. the last layer's output is (softmax - onehot) / B
    logits = model(x).detach()
    g = (logits.softmax(1) - nn.functional.one_hot(y, 10)) / 32
    assert st[-1].grad_std == pytest.approx(g.std().item(), rel=1e-4)
    assert all(math.isfinite(s.grad_std) for s in st)


def test_zero_fraction_sees_dead_relus():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)
    st = layer_stats(model, torch.randn(8, 4), types=(nn.ReLU,))
    assert st[0].act_zero_frac == 1.0 and math.isnan(st[0].grad_std)


def test_signal_vanishes_with_small_init_and_is_kept_with_kaiming():
    torch.manual_seed(0)
    x = torch.randn(256, 64)
    small = [s.act_std for s in layer_stats(deep_mlp(10, std=0.01), x)]
    kaiming = [s.act_std for s in layer_stats(deep_mlp(10, std=math.sqrt(2 / 64)), x)]
    assert small[-2] < 1e-10 < kaiming[-2]
    assert 0.3 < kaiming[-2] / kaiming[0] < 3


def test_named_layers_hooks_removed_and_errors():
    model = deep_mlp(2)
    with ActivationProbe(model, layers=["2"]) as probe:
        model(torch.randn(4, 64))
    assert [s.name for s in probe.stats()] == ["2"]
    assert not model[2]._forward_hooks and not model[2]._backward_hooks
    with pytest.raises(KeyError, match="no submodule"):
        ActivationProbe(model, layers=["nope"])
    with pytest.raises(ValueError, match="nothing to probe"):
        ActivationProbe(nn.ReLU())
    with pytest.raises(RuntimeError, match="forward pass"):
        with ActivationProbe(model) as p:
            pass
        p.stats()


def test_weight_grad_stats_and_model_left_clean():
    model = deep_mlp(2)
    x, y = torch.randn(8, 64), torch.randint(0, 10, (8,))
    layer_stats(model, x, y)
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(RuntimeError, match="backward"):
        weight_grad_stats(model)
    nn.functional.cross_entropy(model(x), y).backward()
    ws = weight_grad_stats(model)
    assert set(ws) == {"0", "2", "4"}
    assert ws["4"] == pytest.approx(model[4].weight.grad.std().item())
