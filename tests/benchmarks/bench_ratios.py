"""Speed ratios measured in one process and one run: the pack's defaults against a reference configuration.

Run from the repository root: ``python tests/benchmarks/bench_ratios.py [--steps N] [--runs N]``.

Figures from different runs (another day, another load on the machine) do not compare; these do.
Each pair is timed alternately in this process, reference then pack, and the ratio of the medians
is printed (> 1: the pack's way is faster).

* **Training steps** of every task the GAN Train node offers (`models.train.quick`, batch 4,
  128 px crops): the reference configuration is fp32, channels-first, Adam's default per-tensor
  loop (``foreach=False, fused=False``); the pack's default is the same but with the fused Adam
  kernel (`models.train.engine.adam`).
* **Inference paths** at 512^2: the reference is one bare fp32 forward of the network (no padding,
  tiling, compositing or checks); the pack's is its task function with its defaults
  (`models.enhance.enhance`, `models.inpaint.inpaint`, `models.translate.translate`,
  `models.stylize.one_style`, `models.stylize.adain_style`), so the ratio is what the pack's
  handling costs or saves.
"""

import argparse
import contextlib
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from timing import median_ms, steps_per_s  # noqa: E402

from models.train import quick  # noqa: E402

REFERENCE_ADAM = torch.optim.Adam


@contextlib.contextmanager
def per_tensor_adam() -> Iterator[None]:
    """Every Adam made inside uses the per-tensor loop (neither foreach nor fused kernels)."""

    class LoopAdam(REFERENCE_ADAM):
        def __init__(self, params, **kwargs):
            kwargs.update(foreach=False, fused=False)
            super().__init__(params, **kwargs)

    torch.optim.Adam = LoopAdam
    try:
        yield
    finally:
        torch.optim.Adam = REFERENCE_ADAM


def quick_steps_per_s(task: str, photos: Path, style: Path | None, steps: int) -> float:
    """Median steps/s of the quick recipe of `task` (batch 4, 128 px crops), fp32."""
    return steps_per_s(quick.make_task(task, photos, batch_size=4, crop=128, lr=1e-4, style=style), steps)


def alternate(reference: Callable[[], float], pack: Callable[[], float], rounds: int) -> tuple[float, float]:
    """Medians of `rounds` alternating calls of each (reference first)."""
    a, b = [], []
    for _ in range(rounds):
        a.append(reference())
        b.append(pack())
    return statistics.median(a), statistics.median(b)


def training_rows(photos: Path, style_image: Path, steps: int, rounds: int) -> None:
    print(f"\ntraining steps/s (batch 4, 128^2 crops, {steps} steps a run, median of {rounds} alternating runs)")
    print(f"{'task':<10} {'reference':>10} {'pack':>10} {'ratio':>7}")
    for task in quick.TASKS:
        style = {"style": style_image, "adain": photos}.get(task)

        def reference(task=task, style=style) -> float:
            with per_tensor_adam():
                return quick_steps_per_s(task, photos, style, steps)

        ref, pack = alternate(reference, lambda task=task, style=style: quick_steps_per_s(task, photos, style, steps),
                              rounds)
        print(f"{task:<10} {ref:>10.3f} {pack:>10.3f} {pack / ref:>6.2f}x")


def inference_rows(runs: int) -> None:
    from models import weights
    from models.enhance import enhance
    from models.inpaint import inpaint
    from models.stylize import adain_style, one_style
    from models.translate import translate

    root = Path(__file__).resolve().parents[2] / "models" / "weights"
    image = torch.rand(1, 3, 512, 512)
    mask = torch.zeros(1, 1, 512, 512)
    mask[..., 192:320, 192:320] = 1
    signed = image * 2 - 1
    cases = []
    restorer = weights.load(root / "enhance_restore.safetensors")
    cases.append(("enhance", lambda: restorer.module(signed), lambda: enhance(restorer, image)))
    inpainter = weights.load(root / "context_encoder_anymask.safetensors")
    holed = torch.cat([signed * (1 - mask), mask], dim=1)
    cases.append(("inpaint", lambda: inpainter.module(holed), lambda: inpaint(inpainter, image, mask)))
    colouriser = weights.load(root / "pix2pix_colorize.safetensors")
    grey = signed.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    cases.append(("translate", lambda: colouriser.module(grey), lambda: translate(colouriser, image)))
    poster = weights.load(root / "pix2pix_poster.safetensors")
    cases.append(("stylize", lambda: poster.module(signed), lambda: one_style(poster, image)))
    adain = weights.load(root / "adain_vgg16_paintings.safetensors")
    cases.append(("adain", lambda: adain.module(image, image), lambda: adain_style(adain, image, [image])))
    print(f"\ninference at 512^2, ms (median of {runs}; reference: one bare fp32 forward of the network)")
    print(f"{'path':<10} {'reference':>10} {'pack':>10} {'ratio':>7}")
    for name, reference, pack in cases:
        with torch.inference_mode():
            for module in {m.module for m in (restorer, inpainter, colouriser, poster, adain)}:
                module.eval()
            ref = median_ms(reference, runs)
            ours = median_ms(pack, runs)
        print(f"{name:<10} {ref:>10.1f} {ours:>10.1f} {ref / ours:>6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="training steps per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per training configuration")
    parser.add_argument("--runs", type=int, default=5, help="timed inference calls per path")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        generator = torch.Generator().manual_seed(0)
        for i in range(4):
            pixels = (torch.rand(192, 256, 3, generator=generator) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(photos / f"p{i}.png")
        training_rows(photos, photos / "p0.png", args.steps, args.rounds)
    inference_rows(args.runs)


if __name__ == "__main__":
    main()
