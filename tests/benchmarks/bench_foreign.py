"""Speed of public architectures (through spandrel) in the pack's task functions at 512^2 on this CPU.

Run from the repository root: ``python tests/benchmarks/bench_foreign.py [--runs N] [--threads N]``.

Each network is built at the size its public weights have (random values: speed does not depend on
them), saved as a plain state dict, loaded with `models.weights.load` and timed in the path a node
takes: restorers in `models.enhance.enhance` (one 512 px tile), inpainters in `models.inpaint.inpaint`
with a centred 128 px hole (the crop around it, padded as the network needs) and with a 512 px
hole that covers the whole image. MAT needs `spandrel_extra_arches`; it is skipped when missing.
The pack's own starters are timed the same way for comparison.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from timing import median_ms  # noqa: E402

from models import enhance, inpaint, weights  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def restorers() -> dict[str, torch.nn.Module]:
    from spandrel.architectures.DnCNN import DnCNN
    from spandrel.architectures.DRUNet import DRUNet
    from spandrel.architectures.FBCNN import FBCNN
    from spandrel.architectures.NAFNet import NAFNet
    from spandrel.architectures.SCUNet import SCUNet

    return {  # the configurations of the released colour models
        "SCUNet (scunet_color_real_psnr)": SCUNet(),
        "NAFNet (NAFNet-SIDD-width32)": NAFNet(width=32, middle_blk_num=12, enc_blk_nums=[2, 2, 4, 8],
                                                dec_blk_nums=[2, 2, 2, 2]),
        "FBCNN (fbcnn_color)": FBCNN(),
        "DnCNN (dncnn_color_blind)": DnCNN(in_nc=3, out_nc=3, nc=64, nb=20, act_mode="R"),
        "DRUNet (drunet_color)": DRUNet(in_nc=4, out_nc=3),
    }


def inpainters() -> dict[str, torch.nn.Module]:
    from spandrel.architectures.LaMa import LaMa

    nets = {"LaMa (big-lama)": LaMa(in_nc=4, out_nc=3)}
    try:
        from spandrel_extra_arches.architectures.MAT import MAT
    except ImportError:
        print("MAT: skipped (spandrel_extra_arches is not installed)")
    else:
        nets["MAT (Places512)"] = MAT()
    return nets


def _loaded(net: torch.nn.Module, folder: Path) -> weights.LoadedModel:
    path = folder / "net.pth"
    torch.save({k: v.contiguous() for k, v in net.eval().state_dict().items()}, path)
    return weights.load(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = torch.rand(1, 3, 512, 512)
    centre = torch.zeros(1, 1, 512, 512)
    centre[..., 192:320, 192:320] = 1.0
    everything = torch.ones(1, 1, 512, 512)
    print(f"512x512, {args.threads} threads, median of {args.runs} runs after one warm-up\n")
    print("| network | node | parameters (M) | ms |")
    print("|---|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [(name, "GAN Enhance", _loaded(net, Path(tmp))) for name, net in restorers().items()]
        rows += [(name, "GAN Inpaint", _loaded(net, Path(tmp))) for name, net in inpainters().items()]
    rows += [("pack: enhance_guided", "GAN Enhance", weights.load(REPO / "models/weights/enhance_guided.safetensors")),
             ("pack: enhance_blind", "GAN Enhance", weights.load(REPO / "models/weights/enhance_blind.safetensors")),
             ("pack: context_encoder_anymask", "GAN Inpaint",
              weights.load(REPO / "models/weights/context_encoder_anymask.safetensors"))]
    for name, node, model in rows:
        params = sum(p.numel() for p in model.module.parameters()) / 1e6
        if node == "GAN Enhance":
            ms = median_ms(lambda model=model: enhance.enhance(model, image), args.runs)
            print(f"| {name} | {node} | {params:.1f} | {ms:.0f} |")
            continue
        for label, mask in (("128 px hole", centre), ("whole image", everything)):
            ms = median_ms(lambda model=model, mask=mask: inpaint.inpaint(model, image, mask), args.runs)
            print(f"| {name} | {node}, {label} | {params:.1f} | {ms:.0f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    with torch.inference_mode():
        main()
