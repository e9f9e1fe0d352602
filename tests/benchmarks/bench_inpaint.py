"""Time inpainting: ms per call (median of N runs) on 2 CPU threads, fp32, batch 1.

Run from the repository root: ``python tests/benchmarks/bench_inpaint.py [--runs N]``.
Rows: the paper Context Encoder (bottleneck 4000) at its 128x128 input, raw and through `inpaint`;
the any-mask model (default config, and with ``prefill="harmonic"`` like the shipped file) through
`inpaint` on 512^2 with a 128^2 hole (target <= 50 ms) and on 1024^2 with a 256^2 hole;
and cv2.inpaint Telea for reference when OpenCV is importable.
Weights are random: the speed does not depend on them.

Also printed: the peak RSS of a fresh process that inpaints a 4096^2 image with a small hole
(target <= 2 GB), and training steps/s of the paper configuration (batch 64, bottleneck 4000 and
512, with its local discriminator; reference implementation: 3.30 / 1.63 s per step) in fp32 and bf16.
"""

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from timing import median_ms, steps_per_s  # noqa: E402

from models import masks, weights  # noqa: E402
from models.archs.context_encoder import (  # noqa: E402
    AnyMaskConfig,
    AnyMaskContextEncoder,
    ContextEncoder,
    ContextEncoderConfig,
)
from models.inpaint import inpaint  # noqa: E402


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
    prefill_cfg = AnyMaskConfig(prefill="harmonic")
    prefilled = weights.LoadedModel(AnyMaskContextEncoder(prefill_cfg).eval(), "context_encoder_anymask", prefill_cfg,
                                    "inpaint")
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
        "any-mask prefill=harmonic, inpaint 512^2, 128^2 hole": lambda: inpaint(prefilled, img512, hole128),
        "any-mask prefill=harmonic, inpaint 1024^2, 256^2 hole": lambda: inpaint(prefilled, img1024, hole256),
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


RSS_SCRIPT = """
import resource, sys, torch
sys.path.insert(0, {root!r})
from models import masks
from models.archs.context_encoder import AnyMaskConfig, AnyMaskContextEncoder
from models.inpaint import inpaint
from models.weights import LoadedModel
torch.set_num_threads(2)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = torch.rand(1, 3, 4096, 4096)
mask = masks.box_mask(4096, 4096, 1, 2000, 1800, 96, 160)
config = AnyMaskConfig()
model = LoadedModel(AnyMaskContextEncoder(config).eval(), "context_encoder_anymask", config, "inpaint")
out = inpaint(model, image, mask)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{{before / 1024:.0f}} {{peak / 1024:.0f}}")
"""


def peak_rss_4096() -> tuple[float, float]:
    """(MB after imports, peak MB) of a fresh process inpainting a 4096^2 image with a 96x160 hole."""
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", RSS_SCRIPT.format(root=root)], capture_output=True, text=True,
                          check=True)
    before, peak = done.stdout.split()
    return float(before), float(peak)


def paper_training_steps_per_s(bottleneck: int, precision: str, steps: int = 4) -> float:
    """Median steps/s of the paper model's training step (G + local D, batch 64, 128^2 crops), first
    step (warm-up) excluded, read from the engine's own metrics."""

    from models.train.data import ImageSet
    from models.train.inpaint import InpaintSettings, InpaintTask

    images = [torch.randint(0, 256, (3, 160, 160), dtype=torch.uint8) for _ in range(8)]
    data = ImageSet(root=Path("."), images=images, paths=[])
    settings = InpaintSettings(variant="paper", batch_size=64, paper=ContextEncoderConfig(bottleneck=bottleneck))
    return steps_per_s(InpaintTask(settings, data), steps, precision)


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
    before, peak = peak_rss_4096()
    print(f"{'peak RSS, inpaint 4096^2 with a 96x160 hole':<56} {peak:8.0f} MB (after imports {before:.0f} MB)")
    for bottleneck in (4000, 512):
        for precision in ("fp32", "bf16"):
            rate = paper_training_steps_per_s(bottleneck, precision)
            name = f"paper training, batch 64, bottleneck {bottleneck}, {precision}"
            print(f"{name:<56} {1 / rate:8.2f} s/step ({rate:.2f} steps/s)")


if __name__ == "__main__":
    main()
