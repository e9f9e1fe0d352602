"""What the evaluation commands share: the held-out images they score, how they are resized, ST-LPIPS."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .run_options import add_source_holdout


def add_scoring_options(parser: argparse.ArgumentParser) -> None:
    """--holdout-sources (scored), --resize and --no-stlpips."""
    from models.metrics import RESIZE_MODES

    add_source_holdout(parser, scoring=True)
    parser.add_argument("--resize", choices=RESIZE_MODES, default="lanczos",
                        help="how images become --size squares: lanczos (default), bilinear (smoother: flatters "
                        "denoisers), or crop (the centre square at native scale, no resampling)")
    parser.add_argument("--no-stlpips", action="store_true",
                        help="skip the ST-LPIPS column (it needs the VGG-16 file of stlpips-pytorch, the [train] "
                        "extra)")


def held_out_images(args: argparse.Namespace):
    """(ImageSet, description) of the images to score: the --holdout share and/or the --holdout-sources."""
    from models.train.data import load_images

    held_out = args.holdout > 0 or bool(args.holdout_sources)
    data = load_images(args.data, min_side=32, max_side=args.max_side, holdout=args.holdout,
                       use_held_out=held_out, holdout_sources=args.holdout_sources)
    split = "held-out split" if held_out else "all images"
    if args.holdout_sources:
        split += f" (sources {', '.join(args.holdout_sources)})"
    return data, split


def perceptual_distance(args: argparse.Namespace) -> Callable | None:
    """The ST-LPIPS distance, or None with --no-stlpips; FileNotFoundError (saying what to install) without it."""
    if args.no_stlpips:
        return None
    from models import perceptual

    perceptual.load_stlpips()  # fails now, with the message, rather than after the first method is scored
    return perceptual.stlpips
