"""The command line of `python -m nodes.train`: one sub-command per task, shared run options."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import (
    adain,
    convert,
    cyclegan,
    damage,
    edit,
    enhance,
    evaluate,
    evaluate_damage,
    evaluate_edit,
    evaluate_enhance,
    evaluate_style,
    evaluate_translate,
    inpaint,
    photos,
    pix2pix,
    style,
)

COMMANDS = (
    inpaint, enhance, evaluate, evaluate_enhance, photos, convert, pix2pix, cyclegan, evaluate_translate, style, adain,
    edit, evaluate_edit, damage, evaluate_damage, evaluate_style,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nodes.train",
        description="Train GAN Edit models. Each command writes a .safetensors file the ComfyUI nodes load "
        "unchanged. Multi-GPU / multi-node: torchrun --nproc_per_node N -m nodes.train ...",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if "models.train.engine" in sys.modules:  # only a training command can have joined a process group
            sys.modules["models.train.engine"].leave_process_group()
