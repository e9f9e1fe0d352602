"""Time the mask generators: ms per batch of 16 masks at 1024x1024 on 2 CPU threads.

Run from the repository root: ``python tests/benchmarks/bench_masks.py [--runs N] [--size S]``.
Prints one row per generator (median and min of N runs); the target is < 500 ms per row.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models import masks  # noqa: E402


def cases(size: int, batch: int) -> dict:
    s, b = size, batch
    return {
        "center_box": lambda seed: masks.center_box(s, s, b),
        "outpaint_border (feather 32)": lambda seed: masks.outpaint_border(s, s, b, 128, 64, 128, 64, feather=32),
        "random_blocks": lambda seed: masks.random_blocks(s, s, b, seed),
        "random_blocks coverage 40-50%": lambda seed: masks.random_blocks(s, s, b, seed, coverage=(0.4, 0.5)),
        "free_form_strokes": lambda seed: masks.free_form_strokes(s, s, b, seed),
        "free_form_strokes coverage 1-10%": lambda seed: masks.free_form_strokes(s, s, b, seed, coverage=(0.01, 0.1)),
        "free_form_strokes coverage 50-60%": lambda seed: masks.free_form_strokes(s, s, b, seed, coverage=(0.5, 0.6)),
        "irregular thin": lambda seed: masks.irregular(s, s, b, seed, preset="thin"),
        "irregular medium": lambda seed: masks.irregular(s, s, b, seed, preset="medium"),
        "irregular thick": lambda seed: masks.irregular(s, s, b, seed, preset="thick"),
        "irregular thin coverage 1-10%": lambda seed: masks.irregular(s, s, b, seed, preset="thin",
                                                                      coverage=(0.01, 0.1)),
        "irregular thick coverage 50-60%": lambda seed: masks.irregular(s, s, b, seed, preset="thick",
                                                                        coverage=(0.5, 0.6)),
    }


def maths_cases(size: int, batch: int) -> dict:
    m = masks.free_form_strokes(size, size, batch, 0)
    return {
        "grow +8 (maths)": lambda seed: masks.grow(m, 8),
        "grow -32 (maths)": lambda seed: masks.grow(m, -32),
        "feather 16 (maths)": lambda seed: masks.feather(m, 16),
        "refine bin+grow 8+feather 8": lambda seed: masks.refine(m, 0.5, 8, 8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch} at {args.size}x{args.size}, {args.threads} threads, {args.runs} runs "
          f"(torch {torch.__version__})")
    print(f"{'generator':<36} {'median ms':>10} {'min ms':>8}")
    for name, fn in {**cases(args.size, args.batch), **maths_cases(args.size, args.batch)}.items():
        fn(0)  # warm-up
        times = []
        for run in range(args.runs):
            t0 = time.perf_counter()
            fn(run + 1)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{name:<36} {statistics.median(times):>10.1f} {min(times):>8.1f}")


if __name__ == "__main__":
    main()
