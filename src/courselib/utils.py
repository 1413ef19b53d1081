"""Seeding, device choice and parameter counts."""
from __future__ import annotations

import os
import random

import numpy as np
import torch
from torch import nn

__all__ = ["seed_everything", "get_device", "count_parameters"]


def seed_everything(seed: int = 0, *, threads: int | None = 1) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a torch.Generator seeded alike.

    ``threads`` (default 1) also sets PyTorch's number of CPU threads. A sum split across
    threads rounds differently, so one seed gives slightly different numbers on machines
    with different core counts; with one thread every machine reproduces the book's numbers
    (its asserts are checked at one thread). ``threads=None`` leaves the thread count alone.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    return torch.Generator().manual_seed(seed)


def get_device(prefer: str | None = None) -> torch.device:
    """CUDA when present, else CPU. ``prefer="cpu"`` forces the CPU."""
    if prefer is not None:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
