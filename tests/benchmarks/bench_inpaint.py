"""Time inpainting: ms per call (median of N runs) on 2 CPU threads, fp32, batch 1.

Run from the repository root: ``python tests/benchmarks/bench_inpaint.py [--runs N]``.
Rows: the paper Context Encoder (bottleneck 4000) at its 128x128 input, raw and through `inpaint`;
the any-mask model (default config) through `inpaint` on 512^2 with a 128^2 hole (target <= 50 ms)
and on 1024^2 with a 256^2 hole; and cv2.inpaint Telea for reference when OpenCV is importable.
Weights are random: the speed does not depend on them.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models import masks, weights  # noqa: E402  (weights first: it loads the registry)
from models.archs.context_encoder import (  # noqa: E402
    AnyMaskConfig,
    AnyMaskContextEncoder,
    ContextEncoder,
    ContextEncoderConfig,
)
from models.inpaint import inpaint  # noqa: E402


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: allocator, oneDNN primitive cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def centred_hole(size: int, hole: int) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    start = (size - hole) // 2
    return image, masks.box_mask(size, size, 1, start, start, hole, hole)


def cases() -> dict[str, Callable[[], object]]:
    torch.manual_seed(0)
    paper_cfg = ContextEncoderConfig()
    paper = weights.LoadedModel(ContextEncoder(paper_cfg).eval(), "context_encoder", paper_cfg, "inpaint")
    any_cfg = AnyMaskConfig()
    anymask = weights.LoadedModel(AnyMaskContextEncoder(any_cfg).eval(), "context_encoder_anymask", any_cfg, "inpaint")
    paper_in = torch.rand(1, 3, 128, 128) * 2 - 1
    img128, hole54 = centred_hole(128, 54)
    img512, hole128 = centred_hole(512, 128)
    img1024, hole256 = centred_hole(1024, 256)

    def raw_paper() -> object:
        with torch.inference_mode():
            return paper.module(paper_in)

    rows = {
        "paper netG (bottleneck 4000), raw forward 128^2": raw_paper,
        "paper netG (bottleneck 4000), inpaint 128^2, 54^2 hole": lambda: inpaint(paper, img128, hole54),
        "any-mask default, inpaint 512^2, 128^2 hole": lambda: inpaint(anymask, img512, hole128),
        "any-mask default, inpaint 1024^2, 256^2 hole": lambda: inpaint(anymask, img1024, hole256),
    }
    try:
        import cv2
        import numpy as np
    except ImportError:
        print("(opencv-python-headless not importable: no cv2.inpaint reference row)")
        return rows
    rgb = (img512[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    hole = (hole128[0, 0].numpy() * 255).astype(np.uint8)
    rows["cv2.inpaint Telea (radius 3), 512^2, 128^2 hole"] = lambda: cv2.inpaint(rgb, hole, 3, cv2.INPAINT_TELEA)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)
    try:
        import cv2

        cv2.setNumThreads(2)
    except ImportError:
        pass
    params = sum(p.numel() for p in AnyMaskContextEncoder(AnyMaskConfig()).parameters())
    print(f"torch {torch.__version__}, 2 threads, any-mask default config: {params:,} parameters")
    for name, fn in cases().items():
        print(f"{name:<56} {median_ms(fn, args.runs):8.1f} ms")


if __name__ == "__main__":
    main()
