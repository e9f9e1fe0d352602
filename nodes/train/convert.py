"""`python -m nodes.train convert` / `convert-adain`: public checkpoints -> gan-edit .safetensors files.

`convert --src X.pth --out Y.safetensors` converts a single-file public checkpoint of a supported
architecture (detected from its keys and shapes, see `models.weights.convert`).
`convert-adain --vgg vgg_normalised.pth --decoder decoder.pth --out Z.safetensors` joins the two files
of pytorch-AdaIN into one `adain` model (`models.weights.convert_adain_pair`). The nodes load the result
from `ComfyUI/models/gan_edit/`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `convert` and `convert-adain`; returns the `convert` parser."""
    parser = subparsers.add_parser(
        "convert",
        help="convert a public .pth checkpoint into a .safetensors file the nodes load",
        description="Convert a single-file public checkpoint (.pth, read with torch.load(weights_only=True)) "
        "of a supported architecture into a gan-edit .safetensors file with its config inside. The "
        "architecture is recognised from the keys and shapes.",
    )
    parser.add_argument("--src", type=Path, required=True, help="the public checkpoint (.pth / .pt)")
    parser.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    parser.set_defaults(func=run_convert)

    adain = subparsers.add_parser(
        "convert-adain",
        help="join pytorch-AdaIN's vgg_normalised.pth and decoder.pth into one AdaIN .safetensors file",
        description="Join the two public AdaIN files (the VGG encoder vgg_normalised.pth and the trained "
        "decoder.pth of naoto0804/pytorch-AdaIN) into one 'adain' model file for GAN Style Transfer.",
    )
    adain.add_argument("--vgg", type=Path, required=True, help="the VGG encoder, vgg_normalised.pth")
    adain.add_argument("--decoder", type=Path, required=True, help="the decoder, decoder.pth")
    adain.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    adain.set_defaults(func=run_convert_adain)
    return parser


def _check_out(out: Path) -> None:
    if out.suffix != ".safetensors":
        raise ValueError(f"--out must name a .safetensors file, got {out}")


def _report(written: Path) -> None:
    """One line saying what was written, read back from the file's metadata."""
    from models import weights

    metadata = weights.read_metadata(written)
    print(f"wrote {written}: {metadata['arch']} model for '{metadata['task']}'")


def run_convert(args: argparse.Namespace) -> int:
    from models import weights

    _check_out(args.out)
    _report(weights.convert(args.src, args.out))
    return 0


def run_convert_adain(args: argparse.Namespace) -> int:
    from models import weights

    _check_out(args.out)
    for option, path in (("--vgg", args.vgg), ("--decoder", args.decoder)):
        if not path.is_file():
            raise FileNotFoundError(f"{option} {path}: no such file")
    _report(weights.convert_adain_pair(args.vgg, args.decoder, args.out))
    return 0
