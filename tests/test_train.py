import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from courselib.train import DivergedError, History, evaluate, fit


def toy_loaders(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    tr = DataLoader(TensorDataset(x[:300], y[:300]), batch_size=32, shuffle=True,
                    generator=torch.Generator().manual_seed(seed))
    va = DataLoader(TensorDataset(x[300:], y[300:]), batch_size=50)
    return tr, va


def test_fit_learns_a_separable_problem_and_records_history():
    tr, va = toy_loaders()
    model = nn.Linear(2, 2)
    h = fit(model, tr, va, epochs=5, lr=0.05, seed=0, progress=False)
    assert isinstance(h, History) and h.epoch == [1, 2, 3, 4, 5]
    assert len(h.train_loss) == len(h.val_acc) == len(h.lr) == len(h.seconds) == 5
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.val_acc[-1] > 0.9
    assert h.final["val_acc"] == h.val_acc[-1]
    assert set(h.as_dict()) >= {"train_loss", "val_acc"}


def test_fit_is_deterministic_when_seeded():
    """With the same seed, two runs (dropout included) give identical histories; another seed differs."""
    def run(seed):
        tr, va = toy_loaders()
        torch.manual_seed(123)  # identical initial weights for every run
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
        return fit(model, tr, va, epochs=2, seed=seed, progress=False)
    a, b, c = run(5), run(5), run(6)
    assert a.train_loss == b.train_loss and a.val_acc == b.val_acc
    assert a.train_loss != c.train_loss


def test_fit_uses_the_given_optimizer_and_scheduler():
    tr, va = toy_loaders()
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    h = fit(model, tr, va, epochs=3, optimizer=opt, scheduler=sched, progress=False)
    assert h.lr == [0.1, 0.05, 0.025]


def test_fit_clip_grad_norm_is_applied(monkeypatch):
    tr, _ = toy_loaders()
    seen = []
    orig = nn.utils.clip_grad_norm_
    monkeypatch.setattr(nn.utils, "clip_grad_norm_", lambda p, m: seen.append(m) or orig(p, m))
    fit(nn.Linear(2, 2), tr, epochs=1, clip_grad_norm=0.5, progress=False, max_batches=3)
    assert seen == [0.5, 0.5, 0.5]


def test_max_batches_limits_work():
    tr, va = toy_loaders()
    calls = []
    model = nn.Linear(2, 2)
    model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    fit(model, tr, epochs=1, max_batches=2, progress=False)
    assert calls == [32, 32]


def test_divergence_is_reported_not_hidden():
    tr, va = toy_loaders()
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    h = fit(model, tr, va, epochs=3, progress=False)
    assert h.diverged and len(h) == 0
    with pytest.raises(DivergedError, match="learning rate"):
        fit(model, tr, va, epochs=3, progress=False, raise_on_divergence=True)


def test_evaluate_restores_mode_and_computes_exact_metrics():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1, 1])
    model = nn.Sequential(nn.Identity(), nn.Dropout(0.5))
    model.train()
    loader = DataLoader(TensorDataset(x, y), batch_size=3)
    loss, acc = evaluate(model, loader, device="cpu")
    assert model.training  # restored
    assert acc == pytest.approx(0.75)
    expected = nn.functional.cross_entropy(x, y).item()
    assert loss == pytest.approx(expected)
    assert math.isfinite(loss)


def test_bad_arguments_raise_clear_errors():
    tr, _ = toy_loaders()
    with pytest.raises(ValueError, match="epochs"):
        fit(nn.Linear(2, 2), tr, epochs=0)
    with pytest.raises(ValueError, match="empty"):
        evaluate(nn.Linear(2, 2), [], device="cpu")
