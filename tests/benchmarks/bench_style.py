"""Time style transfer: ms per call (median of N runs) on 2 CPU threads, fp32, batch 1.

Run from the repository root: ``python tests/benchmarks/bench_style.py [--runs N]``.
Rows, at 512^2 and 1024^2: fast style (`transformer_net`, the public widths) through
`stylize.fast_style`; AdaIN through `stylize.adain_style` with a 512^2 style image, for the VGG-16
(anti-aliased) encoder our training writes and the reference VGG-19 one; a CycleGAN resnet_9blocks
generator through `translate.translate`. Weights are random: the speed does not depend on them.

Also printed: the peak RSS of a fresh process that runs each family once on a 1024^2 image, and the
training steps/s of `python -m nodes.train style` and `adain` at the starter-weight settings
(style: crop 192, batch 2; adain: crop 128, batch 4) in fp32 and bf16, read from the engine's metrics.
"""

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from timing import median_ms, steps_per_s  # noqa: E402

from models import stylize, translate, weights  # noqa: E402
from models.archs.adain import AdaIN, AdaINConfig  # noqa: E402
from models.archs.pix2pix import RESNET, ResnetGenerator, ResnetGeneratorConfig  # noqa: E402
from models.archs.transformer_net import TransformerNet, TransformerNetConfig  # noqa: E402

SIZES = (512, 1024)


def models() -> dict[str, weights.LoadedModel]:
    torch.manual_seed(0)
    fast = TransformerNetConfig()
    cyclegan = ResnetGeneratorConfig()
    return {
        "transformer_net": weights.LoadedModel(TransformerNet(fast).eval(), "transformer_net", fast, "stylize"),
        "adain vgg16_blurpool": weights.LoadedModel(AdaIN(AdaINConfig("vgg16_blurpool")).eval(), "adain",
                                                    AdaINConfig("vgg16_blurpool"), "stylize"),
        "adain vgg19_normalised": weights.LoadedModel(AdaIN(AdaINConfig()).eval(), "adain", AdaINConfig(), "stylize"),
        "cyclegan resnet_9blocks": weights.LoadedModel(ResnetGenerator(cyclegan).eval(), RESNET.id, cyclegan,
                                                       "translate"),
    }


def run_once(name: str, model: weights.LoadedModel, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    if name.startswith("adain"):
        return stylize.adain_style(model, image, [style])
    if name == "transformer_net":
        return stylize.fast_style(model, image)
    return translate.translate(model, image)


def cases() -> dict[str, Callable[[], object]]:
    style = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(1))
    rows = {}
    for name, model in models().items():
        for size in SIZES:
            image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
            rows[f"{name}, {size}^2"] = lambda n=name, m=model, x=image: run_once(n, m, x, style)
    return rows


RSS_SCRIPT = """
import sys, torch
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
import bench_style
def high_water_mb():  # VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak over
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
torch.set_num_threads(2)
before = high_water_mb()
name = {name!r}
model = bench_style.models()[name]
image = torch.rand(1, 3, 1024, 1024)
style = torch.rand(1, 3, 512, 512)
bench_style.run_once(name, model, image, style)
print(f"{{before:.0f}} {{high_water_mb():.0f}}")
"""


def peak_rss(name: str) -> tuple[float, float]:
    """(MB after imports, peak MB) of a fresh process running family `name` once on 1024^2."""
    root, here = str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)
    done = subprocess.run([sys.executable, "-c", RSS_SCRIPT.format(root=root, here=here, name=name)],
                          capture_output=True, text=True, check=True)
    before, peak = done.stdout.split()
    return float(before), float(peak)


def training_steps_per_s(task_name: str, precision: str, steps: int = 4) -> float:
    """Median steps/s (first step excluded) of a short run with random weights and synthetic images."""
    from models.archs.vgg import VGG16Features
    from models.train.adain import AdaINSettings, AdaINTask
    from models.train.data import ImageSet
    from models.train.style import StyleSettings, StyleTask

    images = [torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8) for _ in range(8)]
    data = ImageSet(root=Path("."), images=images, paths=[])
    torch.manual_seed(0)
    if task_name == "style":
        vgg = VGG16Features("blur", last="relu4_3").requires_grad_(False).eval()
        task = StyleTask(StyleSettings(batch_size=2, crop=192), data, torch.rand(1, 3, 409, 512), vgg)
    else:
        state = VGG16Features("blur", last="relu4_1").state_dict()
        task = AdaINTask(AdaINSettings(batch_size=4, crop=128), data, data, state)
    return steps_per_s(task, steps, precision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, 2 threads, fp32, batch 1, random weights")
    for name, fn in cases().items():
        print(f"{name:<44} {median_ms(fn, args.runs):9.1f} ms")
    for name in models():
        before, peak = peak_rss(name)
        print(f"{'peak RSS, ' + name + ', 1024^2':<44} {peak:9.0f} MB (after imports {before:.0f} MB)")
    for task_name, what in (("style", "crop 192, batch 2"), ("adain", "crop 128, batch 4")):
        for precision in ("fp32", "bf16"):
            rate = training_steps_per_s(task_name, precision)
            print(f"{f'training {task_name}, {what}, {precision}':<44} {rate:9.3f} steps/s ({1 / rate:.2f} s/step)")


if __name__ == "__main__":
    main()
