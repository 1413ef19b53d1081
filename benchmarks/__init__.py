"""Ratio benchmarks: reference implementations against PyTorch built-ins, measured in one run."""
