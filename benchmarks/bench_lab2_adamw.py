"""Benchmark for lab2-adamw: the reference adamw_step, looped over the parameters of a ResNet-18
(62 tensors, 11.7M values), against torch.optim.AdamW on the same tensors, single-tensor
(foreach=False) and default settings. Goal: one optimizer step at most 1.5x slower.

    python benchmarks/bench_lab2_adamw.py [--repeats 15] [--threads N]

All optimizers run in the same process, interleaved (reference, built-in, built-in default,
reference, ...), so a machine that gets busier during the run slows them alike; each timing is the
median of the repeats. Each optimizer steps its own copy of the parameters with the same gradients,
after a warm-up step that creates the state (the timed steps are steady-state steps).
``main()`` returns the table as a dict.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from grading import labs

LAB = "lab2-adamw"
GOAL = 1.5  # the reference may be at most this many times slower than torch.optim.AdamW
HYPER = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)


def resnet18_shapes(num_classes: int = 1000) -> list[tuple[int, ...]]:
    """Parameter shapes of torchvision's resnet18, in model.parameters() order (built by hand)."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]          # conv1, bn1 weight and bias
    in_ch = 64
    for out_ch, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):           # layer1 .. layer4
        for block in range(2):                                               # two BasicBlocks each
            s = stride if block == 0 else 1
            shapes += [(out_ch, in_ch, 3, 3), (out_ch,), (out_ch,),          # conv1, bn1
                       (out_ch, out_ch, 3, 3), (out_ch,), (out_ch,)]         # conv2, bn2
            if block == 0 and (s != 1 or in_ch != out_ch):
                shapes += [(out_ch, in_ch, 1, 1), (out_ch,), (out_ch,)]      # downsample conv, bn
            in_ch = out_ch
    shapes += [(num_classes, 512), (num_classes,)]                           # fc
    return shapes


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(repeats: int = 15, threads: int | None = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    solution = labs.solution_module(LAB)
    shapes = resnet18_shapes()
    assert len(shapes) == 62 and sum(torch.Size(s).numel() for s in shapes) == 11_689_512

    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(s, generator=gen) * 0.05 for s in shapes]
    grads = [torch.randn(s, generator=gen) * 1e-3 for s in shapes]

    # the reference: a list of tensors, one state dict each
    ref_params = [p.clone() for p in start]
    ref_states = [{} for _ in shapes]

    def reference_step():
        for p, g, s in zip(ref_params, grads, ref_states):
            solution.adamw_step(p, g, s, **HYPER)

    def builtin(**options):
        params = [p.clone().requires_grad_(True) for p in start]
        for p, g in zip(params, grads):
            p.grad = g
        return params, torch.optim.AdamW(params, **HYPER, **options)

    single_params, single = builtin(foreach=False)
    default_params, default = builtin()

    # warm-up step (creates the state), then check that the reference matches PyTorch
    reference_step(), single.step(), default.step()
    worst = max((a - b.detach()).abs().max().item() for a, b in zip(ref_params, single_params))
    assert worst < 1e-6, f"the reference adamw_step differs from torch.optim.AdamW by {worst:.3g}"

    runs = {"reference": reference_step, "foreach=False": single.step, "default": default.step}
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        for _ in range(repeats):
            for name, fn in runs.items():
                times[name].append(_seconds(fn))
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    ratios = {name: ms["reference"] / ms[name] for name in ("foreach=False", "default")}

    n = sum(p.numel() for p in start)
    print(f"lab2-adamw: reference adamw_step looped over ResNet-18's parameters ({len(shapes)} tensors, "
          f"{n / 1e6:.1f}M values, float32) vs torch.optim.AdamW; {torch.get_num_threads()} threads, "
          f"median of {repeats} steps; goal: ratio <= {GOAL:g}")
    print(f"{'optimizer':34s} {'ms/step':>9s} {'ratio':>7s}")
    print(f"{'reference adamw_step (loop)':34s} {ms['reference']:9.1f}")
    for name in ("foreach=False", "default"):
        flag = "ok" if ratios[name] <= GOAL else "SLOWER THAN GOAL"
        print(f"{'torch.optim.AdamW(' + name + ')':34s} {ms[name]:9.1f} {ratios[name]:7.2f}  {flag}")
    return {"lab": LAB, "goal": GOAL, "threads": torch.get_num_threads(), "repeats": repeats,
            "tensors": len(shapes), "values": n, "ms": ms, "ratios": ratios,
            "ok": all(r <= GOAL for r in ratios.values())}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    main(args.repeats, args.threads)
