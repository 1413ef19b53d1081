import random

import numpy as np
import pytest
import torch
from torch import nn

from courselib.utils import count_parameters, get_device, seed_everything


def test_seed_everything_makes_all_generators_repeat():
    seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(3))
    g = seed_everything(7)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=torch.Generator().manual_seed(7)))


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError):
        seed_everything(bad)


def test_get_device():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_count_parameters_counts_shared_and_frozen_correctly():
    lin = nn.Linear(10, 5)
    m = nn.Sequential(lin, nn.ReLU(), lin, nn.Conv2d(3, 4, 3))
    assert count_parameters(m) == 55 + (4 * 3 * 9 + 4)
    m[3].weight.requires_grad_(False)
    assert count_parameters(m) == 55 + 4
    assert count_parameters(m, trainable_only=False) == 55 + 112


def test_seed_everything_pins_the_thread_count_so_every_machine_gets_the_same_numbers():
    before = torch.get_num_threads()
    try:
        seed_everything(0)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        seed_everything(0, threads=None)                # leaves it alone
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="threads"):
            seed_everything(0, threads=0)
    finally:
        torch.set_num_threads(before)
