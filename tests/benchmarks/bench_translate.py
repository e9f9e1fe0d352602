"""Time pix2pix / CycleGAN generators and training on 2 CPU threads.

Run from the repository root: ``python tests/benchmarks/bench_translate.py [--runs N] [--steps N]``.

Inference, ms per image (median of N runs, batch 1, ngf 64, random weights: the speed does not
depend on them), at 256^2 and 512^2, for unet_256 (batch norm, pix2pix's default) and resnet_9blocks
(instance norm, CycleGAN's default):

* ``translate fp32``: `models.translate.translate`, the path the node takes (eval mode, pad mode);
* ``translate bf16``: the same with ``dtype=torch.bfloat16`` (a bf16 copy of the weights);
* ``raw autocast bf16``: the module's forward alone under ``torch.autocast("cpu", bfloat16)``.

Training, s per step (median of the engine's own steps/s after the first step), 256^2 crops of random
images: pix2pix (unet_256 + 70x70 PatchGAN, L1 x 100, BCE) and CycleGAN (2 x resnet_9blocks + 2
PatchGANs, cycle 10, identity 0.5, LSGAN, pool 50), at batch 1 and 4, fp32 and bf16 autocast.
Reference figures, the public pytorch-CycleGAN-and-pix2pix code timed the same way on the same kind
of machine (2 cores, fp32): unet_256 131 / 318 ms at 256 / 512; resnet_9blocks 577 ms / 2.54 s;
pix2pix step 0.84 s at batch 1, 2.28 s at batch 4; CycleGAN step 11.3 s at batch 1.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from timing import median_ms, steps_per_s  # noqa: E402

from models.translate import translate  # noqa: E402
from models.weights import LoadedModel  # noqa: E402

REFERENCE = {
    ("unet_256", 256): 131.0, ("unet_256", 512): 318.0, ("resnet_9blocks", 256): 577.0, ("resnet_9blocks", 512): 2540.0,
    ("pix2pix", 1): 0.84, ("pix2pix", 4): 2.28, ("cyclegan", 1): 11.3,
}


def generator(net: str) -> LoadedModel:
    from models.train.pix2pix import build_generator, generator_arch, generator_config

    norm = "batch" if net.startswith("unet") else "instance"
    config = generator_config(net, ngf=64, norm=norm, dropout=net.startswith("unet"))
    torch.manual_seed(0)
    return LoadedModel(build_generator(config).eval(), generator_arch(config), config, "translate")


def inference_rows(runs: int) -> None:
    for net in ("unet_256", "resnet_9blocks"):
        model = generator(net)
        for size in (256, 512):
            image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
            signed = image * 2 - 1

            def raw_autocast(module=model.module, x=signed) -> object:
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return module(x)

            fp32 = median_ms(lambda m=model, x=image: translate(m, x), runs)
            bf16 = median_ms(lambda m=model, x=image: translate(m, x, dtype=torch.bfloat16), runs)
            auto = median_ms(raw_autocast, runs)
            ref = REFERENCE[(net, size)]
            print(f"{net:<15} {size:>4}^2  translate fp32 {fp32:8.1f} ms  translate bf16 {bf16:8.1f} ms  "
                  f"raw autocast bf16 {auto:8.1f} ms   (reference fp32 {ref:.0f} ms: fp32 x{ref / fp32:.2f}, "
                  f"best x{ref / min(fp32, bf16, auto):.2f})")


def training_seconds_per_step(kind: str, batch: int, precision: str, steps: int) -> float:
    from models.train.cyclegan import CycleGANSettings, CycleGANTask
    from models.train.data import ImageSet
    from models.train.pix2pix import PairSet, Pix2PixSettings, Pix2PixTask

    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 288, 288), dtype=torch.uint8, generator=g) for _ in range(8)]
    if kind == "pix2pix":
        data = PairSet(root=Path("."), kind="side_by_side", b=images, a=[255 - x for x in images],
                       names=[str(i) for i in range(8)], held_out=[])
        task = Pix2PixTask(Pix2PixSettings(net_g="unet_256", batch_size=batch), data)
    else:
        data = ImageSet(root=Path("."), images=images, paths=[])
        task = CycleGANTask(CycleGANSettings(net_g="resnet_9blocks", batch_size=batch), data, data)
    return 1.0 / steps_per_s(task, steps, precision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed inference runs per row (default 10)")
    parser.add_argument("--steps", type=int, default=4, help="training steps per row, the first untimed (default 4)")
    parser.add_argument("--no-training", action="store_true", help="inference rows only")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1, ngf 64")
    inference_rows(args.runs)
    if args.no_training:
        return
    for kind in ("pix2pix", "cyclegan"):
        for batch in (1, 4):
            for precision in ("fp32", "bf16"):
                seconds = training_seconds_per_step(kind, batch, precision, args.steps)
                ref = REFERENCE.get((kind, batch))
                versus = f"   (reference {ref:.2f} s: x{ref / seconds:.2f})" if ref else ""
                print(f"{kind} training, batch {batch}, {precision:<4} {seconds:8.2f} s/step "
                      f"({1 / seconds:.2f} steps/s){versus}")


if __name__ == "__main__":
    main()
