"""Time enhancement: ms per megapixel on 2 CPU threads, peak RSS at 2048^2, training steps/s.

Run from the repository root: ``python tests/benchmarks/bench_enhance.py [--runs N]``.
Rows: the default `enhance_unet` config through `models.enhance.enhance` on 512^2 (one tile), 1024^2
and 2048^2 (tiles of 512 with 32 px overlap), fp32 and bf16 autocast, as ms per megapixel (median of
N runs); OpenCV's non-local means on 512^2 for reference when importable. Weights are random (with
the zero-initialised output heads perturbed): speed does not depend on them.

Also printed: the peak RSS of a fresh process enhancing one 2048^2 image (target <= 1.5 GB), and the
training steps/s of the default recipe (batch 16, 128^2 crops, restore degradations) in fp32 and bf16.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from timing import median_ms, steps_per_s  # noqa: E402

from models.archs.enhance import ARCHITECTURE, EnhanceConfig, EnhanceNet  # noqa: E402
from models.enhance import enhance  # noqa: E402
from models.weights import LoadedModel  # noqa: E402


def model() -> LoadedModel:
    torch.manual_seed(0)
    config = EnhanceConfig()
    net = EnhanceNet(config).eval()
    for head in (net.tail, net.context.colour, net.context.film):
        nn.init.normal_(head.weight, std=0.02)
    return LoadedModel(net, ARCHITECTURE.id, config, "enhance")


RSS_SCRIPT = """
import sys, torch
sys.path.insert(0, {root!r})
from models.archs.enhance import ARCHITECTURE, EnhanceConfig, EnhanceNet
from models.enhance import enhance
from models.weights import LoadedModel
def high_water_mb():  # VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak over
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
torch.set_num_threads(2)
before = high_water_mb()
image = torch.rand(1, 3, 2048, 2048)
config = EnhanceConfig()
out = enhance(LoadedModel(EnhanceNet(config).eval(), ARCHITECTURE.id, config, "enhance"), image, tile={tile})
print(f"{{before:.0f}} {{high_water_mb():.0f}}")
"""


def peak_rss_2048(tile: int) -> tuple[float, float]:
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", RSS_SCRIPT.format(root=root, tile=tile)], capture_output=True,
                          text=True, check=True)
    before, peak = done.stdout.split()
    return float(before), float(peak)


def training_steps_per_s(precision: str, steps: int = 6) -> float:
    """Median steps/s of the default enhance training step (G + PatchGAN, batch 16, 128^2), first excluded."""
    from models.train.data import ImageSet
    from models.train.enhance import EnhanceSettings, EnhanceTask

    images = [torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8) for _ in range(8)]
    data = ImageSet(root=Path("."), images=images, paths=[])
    return steps_per_s(EnhanceTask(EnhanceSettings(), data), steps, precision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    m = model()
    params = sum(p.numel() for p in m.module.parameters())
    print(f"torch {torch.__version__}, 2 threads, enhance_unet default config: {params:,} parameters")
    for side in (512, 1024, 2048):
        image = torch.rand(1, 3, side, side)
        mp = side * side / 1e6
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            runs = max(1, args.runs // (side // 512))
            ms = median_ms(lambda image=image, dtype=dtype: enhance(m, image, dtype=dtype), runs)
            print(f"{f'enhance {side}^2, tile 512, {name}':<44} {ms:9.1f} ms  {ms / mp:8.1f} ms/MP")
    try:
        import cv2
        import numpy as np

        cv2.setNumThreads(2)
        rgb = (torch.rand(512, 512, 3).numpy() * 255).astype(np.uint8)
        ms = median_ms(lambda: cv2.fastNlMeansDenoisingColored(rgb, None, 10, 10, 7, 21), args.runs)
        print(f"{'cv2 NL-means 512^2 (reference)':<44} {ms:9.1f} ms  {ms / 0.262144:8.1f} ms/MP")
    except ImportError:
        print("(opencv-python-headless not importable: no NL-means reference row)")
    for tile in (512, 2048):
        before, peak = peak_rss_2048(tile)
        print(f"{f'peak RSS, enhance 2048^2, tile {tile}':<44} {peak:9.0f} MB (after imports {before:.0f} MB)")
    for precision in ("fp32", "bf16"):
        rate = training_steps_per_s(precision)
        print(f"{f'training, batch 16, 128^2, {precision}':<44} {rate:9.2f} steps/s")


if __name__ == "__main__":
    main()
