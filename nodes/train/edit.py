"""`python -m nodes.train edit`: train the instruction-conditioned edit generator on a folder of photos."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .run_options import add_run_options, add_source_holdout

    parser = subparsers.add_parser(
        "edit",
        help="train the instruction-conditioned edit GAN (remove, recolour, relight, harmonise_paste, blur_background)",
        description="Train one generator for several masked edits on pairs synthesised from the photos in --data "
        "(see models/edit_pairs.py for each recipe): L1 over the edited region x --hole-weight + L1 elsewhere + "
        "--adv-weight x LSGAN with a PatchGAN conditioned on the input.",
    )
    g = parser.add_argument_group("data")
    g.add_argument("--data", required=True, help="folder of training photos (searched recursively)")
    g.add_argument("--holdout", type=float, default=0.0,
                   help="fraction of images set aside by a stable hash of their path (never trained on)")
    g.add_argument("--max-side", type=int, default=512, help="downscale larger images to this on load")
    add_source_holdout(g, scoring=False)
    m = parser.add_argument_group("model and losses")
    m.add_argument("--instructions", default="remove,recolour,relight,harmonise_paste,blur_background",
                   help="comma-separated instructions to learn (stored in the weights file)")
    m.add_argument("--crop", type=int, default=128, help="training crop size")
    m.add_argument("--batch-size", type=int, default=8)
    m.add_argument("--lr", type=float, default=2e-4, help="generator learning rate (Adam, beta1 0.5)")
    m.add_argument("--d-lr-ratio", type=float, default=0.5, help="discriminator lr = lr x this")
    m.add_argument("--adv-weight", type=float, default=0.005, help="weight of the LSGAN loss")
    m.add_argument("--hole-weight", type=float, default=4.0, help="L1 weight of the edited region")
    m.add_argument("--mask-kinds", default="blocks,strokes,irregular,blobs", help="training mask generators")
    m.add_argument("--base-channels", type=int, default=32, help="width of the first layer")
    m.add_argument("--downsamplings", type=int, default=2, help="stride-2 layers (stride 2^n)")
    m.add_argument("--blocks", type=int, default=4, help="FiLM residual blocks at the lowest resolution")
    m.add_argument("--embed-dim", type=int, default=32, help="instruction embedding size")
    m.add_argument("--norm", choices=("instance", "batch", "none"), default="instance", help="norm layers")
    m.add_argument("--d-width", type=int, default=32, help="PatchGAN width")
    m.add_argument("--harmonise-transfer", action="store_true",
                   help="harmonise_paste: the network sees the region after a mean/std colour transfer from a ring "
                   "of context around it and learns what that leaves (stored in the model's config)")
    m.add_argument("--init", default=None, metavar="FILE",
                   help="fine-tune: start the generator from this edit model (its config replaces the width options "
                   "above; --instructions and --harmonise-transfer still apply)")
    add_run_options(parser, steps=4000)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from .run_options import train

    return train(*prepare(args))


def prepare(args: argparse.Namespace):
    """The task and run options of this command's arguments (shared with the GAN Train node)."""
    from models.archs.edit import EditConfig
    from models.train.data import load_images
    from models.train.edit import EditSettings, EditTask, parse_instructions

    from .run_options import run_options

    generator = EditConfig(
        base_channels=args.base_channels, downsamplings=args.downsamplings, blocks=args.blocks,
        embed_dim=args.embed_dim, norm=args.norm, instructions=parse_instructions(args.instructions),
        harmonise_transfer=args.harmonise_transfer,
    )
    if args.init:
        import dataclasses

        from models import weights

        generator = dataclasses.replace(weights.load(args.init).config, harmonise_transfer=args.harmonise_transfer)
    settings = EditSettings(
        batch_size=args.batch_size, crop=args.crop, lr=args.lr, d_lr_ratio=args.d_lr_ratio,
        adv_weight=args.adv_weight, hole_weight=args.hole_weight,
        mask_kinds=tuple(k.strip() for k in args.mask_kinds.split(",") if k.strip()),
        generator=generator, discriminator_width=args.d_width, init=args.init,
    )
    options = run_options(args)
    data = load_images(args.data, min_side=32, max_side=args.max_side, holdout=args.holdout,
                       holdout_sources=args.holdout_sources)
    log.info("training on %d images from %s (%d skipped, %d held out)", len(data), args.data, len(data.skipped),
             len(data.held_out))
    return EditTask(settings, data), options
