"""Benchmark for lab3-conv: the reference vectorized conv2d (im2col + one batched matrix product)
against PyTorch's F.conv2d, on the layer shapes of small CNNs. Goal: at most 2x slower.

    python benchmarks/bench_lab3_conv.py [--repeats 21] [--threads N] [--cpu-time]

Both run in the same process, interleaved (reference, built-in, reference, ...), so a machine
that gets busier during the run slows both alike; each timing is the median of the repeats.
On a shared, busy machine wall-clock times of multi-threaded kernels are erratic: ``--cpu-time``
measures the CPU time of the (single) thread instead, on one thread, which the load barely
affects. The result is a table of milliseconds per call and ratios; ``main()`` returns it as a dict.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from grading import labs

LAB = "lab3-conv"
GOAL = 2.0  # the reference may be at most this many times slower than F.conv2d
# (name, x shape, weight shape, stride, padding): layers of CNNs for 28x28 and 64x64 images
SHAPES = [
    ("28x28 input layer, 1 -> 16, 3x3, pad 1", (64, 1, 28, 28), (16, 1, 3, 3), 1, 1),
    ("14x14 layer, 16 -> 32, 3x3, no pad", (64, 16, 14, 14), (32, 16, 3, 3), 1, 0),
    ("16x16 layer, 64 -> 64, 3x3, pad 1", (32, 64, 16, 16), (64, 64, 3, 3), 1, 1),
    ("16x16 layer, 64 -> 64, 3x3, pad 1, stride 2", (32, 64, 16, 16), (64, 64, 3, 3), 2, 1),
    ("64x64 RGB input, 3 -> 32, 5x5, pad 2", (8, 3, 64, 64), (32, 3, 5, 5), 1, 2),
]


def _seconds_per_call(fn, number: int, clock=time.perf_counter) -> float:
    start = clock()
    for _ in range(number):
        fn()
    return (clock() - start) / number


def compare(reference, builtin, repeats: int, min_sample: float = 0.02,
            clock=time.perf_counter) -> tuple[float, float]:
    """Median seconds per call of reference() and builtin(), measured interleaved."""
    reference(), builtin()                                        # warm-up (allocations, kernel choice)
    number = max(1, int(min_sample / max(_seconds_per_call(builtin, 3, clock), 1e-7)))
    ref_times, builtin_times = [], []
    for _ in range(repeats):
        ref_times.append(_seconds_per_call(reference, number, clock))
        builtin_times.append(_seconds_per_call(builtin, number, clock))
    return statistics.median(ref_times), statistics.median(builtin_times)


def main(repeats: int = 21, threads: int | None = None, cpu_time: bool = False) -> dict:
    if cpu_time:
        threads = 1  # the CPU time of the calling thread covers all the work only on one thread
    if threads:
        torch.set_num_threads(threads)
    clock = time.thread_time if cpu_time else time.perf_counter
    solution = labs.solution_module(LAB)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for name, x_shape, w_shape, stride, padding in SHAPES:
        x = torch.randn(x_shape, generator=gen)
        w = torch.randn(w_shape, generator=gen) / w_shape[1] ** 0.5
        b = torch.randn(w_shape[0], generator=gen)
        expected = F.conv2d(x, w, b, stride=stride, padding=padding)
        got = solution.conv2d(x, w, b, stride=stride, padding=padding)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4), f"{name}: the reference solution is wrong"
        t_ref, t_builtin = compare(lambda: solution.conv2d(x, w, b, stride=stride, padding=padding),  # noqa: B023 - timed now
                                   lambda: F.conv2d(x, w, b, stride=stride, padding=padding), repeats,  # noqa: B023
                                   clock=clock)
        rows.append({"name": name, "x": x_shape, "weight": w_shape, "stride": stride, "padding": padding,
                     "reference_ms": 1e3 * t_ref, "builtin_ms": 1e3 * t_builtin, "ratio": t_ref / t_builtin})

    print(f"lab3-conv: reference conv2d vs F.conv2d ({torch.get_num_threads()} thread(s), "
          f"{'thread CPU time' if cpu_time else 'wall clock'}, median of {repeats}; goal: ratio <= {GOAL:g})")
    print(f"{'layer':46s} {'reference':>10s} {'F.conv2d':>10s} {'ratio':>6s}")
    for r in rows:
        flag = "ok" if r["ratio"] <= GOAL else "SLOWER THAN GOAL"
        print(f"{r['name']:46s} {r['reference_ms']:8.2f}ms {r['builtin_ms']:8.2f}ms {r['ratio']:6.2f}  {flag}")
    worst = max(r["ratio"] for r in rows)
    print(f"worst ratio {worst:.2f} (goal <= {GOAL:g})")
    return {"lab": LAB, "goal": GOAL, "threads": torch.get_num_threads(), "cpu_time": cpu_time, "rows": rows,
            "worst_ratio": worst, "meets_goal": worst <= GOAL}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--cpu-time", action="store_true", help="time the CPU time of one thread (busy machines)")
    args = ap.parse_args()
    main(args.repeats, args.threads, args.cpu_time)
