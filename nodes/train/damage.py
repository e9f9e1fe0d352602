"""`python -m nodes.train damage`: train the old-photo damage detector on synthetic damage over photos."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .run_options import add_run_options, add_source_holdout

    parser = subparsers.add_parser(
        "damage",
        help="train a damage_unet detector of old-photo damage (scratches, specks, creases, stains, tears)",
        description="Train the U-Net of the Detect Damage node. Each step crops the photos in --data and renders "
        "synthetic old-photo damage over the crops (models/damage/render.py): scratches, hairs, dust specks, "
        "creases, stains and torn corners, which are the mask the detector learns, over black and white, sepia, "
        "fading, grain, scan blur and JPEG, which it must learn to ignore.",
    )
    g = parser.add_argument_group("data")
    g.add_argument("--data", required=True, help="folder of clean photos, searched recursively")
    g.add_argument("--holdout", type=float, default=0.0,
                   help="fraction of images set aside by a stable hash of their path (never trained on)")
    add_source_holdout(g, scoring=False)
    g.add_argument("--max-side", type=int, default=1024, help="downscale larger images to this on load")
    m = parser.add_argument_group("model and loss")
    m.add_argument("--crop", type=int, default=128, help="training crop size")
    m.add_argument("--batch-size", type=int, default=12)
    m.add_argument("--no-zoom", action="store_true", help="crop at native scale only")
    m.add_argument("--lr", type=float, default=1e-3, help="learning rate (Adam)")
    m.add_argument("--positive-weight", type=float, default=3.0, help="BCE weight of damaged pixels")
    m.add_argument("--dice-weight", type=float, default=0.5, help="weight of the soft Dice loss")
    m.add_argument("--base-channels", type=int, default=16, help="width after the 2x2 unshuffle")
    m.add_argument("--levels", type=int, default=3, help="stride-2 levels of the U-Net")
    m.add_argument("--max-channels", type=int, default=96, help="widths stop doubling here")
    add_run_options(parser, steps=4000, checkpoint_every=200)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from .run_options import train

    return train(*prepare(args))


def prepare(args: argparse.Namespace):
    from models.archs.damage import DamageNetConfig
    from models.train.damage import DamageSettings, DamageTask
    from models.train.data import load_images

    from .run_options import run_options

    settings = DamageSettings(
        net=DamageNetConfig(base_channels=args.base_channels, levels=args.levels, max_channels=args.max_channels),
        batch_size=args.batch_size, crop=args.crop, zoom=not args.no_zoom, lr=args.lr,
        positive_weight=args.positive_weight, dice_weight=args.dice_weight,
    )
    options = run_options(args)
    data = load_images(args.data, min_side=32, max_side=args.max_side, holdout=args.holdout,
                       holdout_sources=args.holdout_sources)
    log.info("training on %d images from %s (%d held out)", len(data), args.data, len(data.held_out))
    return DamageTask(settings, data), options
