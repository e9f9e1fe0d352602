"""`python -m nodes.train inpaint`: train a Context Encoder on a folder of photos."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .run_options import add_run_options, add_source_holdout

    parser = subparsers.add_parser(
        "inpaint",
        help="train a Context Encoder (any-mask variant or the paper's centre-hole model)",
        description="Train a Context Encoder (Pathak et al. 2016) on random crops of the photos in --data. "
        "'anymask' learns holes of any shape (random blocks, free-form strokes, LaMa-style irregular masks); "
        "'paper' is the paper's 128px model with the central 64px missing.",
    )
    g = parser.add_argument_group("data")
    g.add_argument("--data", required=True, help="folder of training images (searched recursively)")
    g.add_argument("--holdout", type=float, default=0.0,
                   help="fraction of images set aside by a stable hash of their path (never trained on)")
    add_source_holdout(g, scoring=False)
    g.add_argument("--max-side", type=int, default=1024, help="downscale larger images to this on load")
    m = parser.add_argument_group("model and losses")
    m.add_argument("--variant", choices=("anymask", "paper"), default="anymask")
    m.add_argument("--crop", type=int, default=None, help="training crop size (default 128)")
    m.add_argument("--batch-size", type=int, default=16)
    m.add_argument("--lr", type=float, default=2e-4, help="generator learning rate (Adam, beta1 0.5)")
    m.add_argument("--d-lr-ratio", type=float, default=0.1, help="discriminator lr = lr x this")
    m.add_argument("--adv-weight", type=float, default=0.001, help="weight of the adversarial loss")
    m.add_argument("--hole-weight", type=float, default=6.0, help="anymask: L1 weight of hole pixels")
    m.add_argument("--mask-kinds", default="blocks,strokes,irregular", help="anymask: training mask generators, from "
                   "blocks, strokes, irregular and box (one rectangle of 30-75 %% of the crop's side)")
    m.add_argument("--base-channels", type=int, default=32, help="anymask: width of the first layer")
    m.add_argument("--downsamplings", type=int, default=3, help="anymask: stride-2 layers (stride 2^n)")
    m.add_argument("--bottleneck-blocks", type=int, default=4, help="anymask: dilated residual blocks")
    m.add_argument("--norm", choices=("batch", "instance", "none"), default="batch", help="anymask: norm layers")
    m.add_argument("--upsample", choices=("resize_conv", "transposed"), default="resize_conv",
                   help="anymask: decoder upsampling (resize + conv avoids checkerboard artefacts)")
    m.add_argument("--prefill", choices=("none", "harmonic"), default="none",
                   help="anymask: start from the harmonic (Laplace) fill of the hole and learn a correction to it")
    m.add_argument("--perceptual-weight", type=float, default=0.0,
                   help="anymask: weight of a VGG-16 feature loss on the filled image (relu2_2 + relu3_3, relative "
                   "L1; 0 = off, e.g. 0.1): asks for texture where L1 alone settles for a blur")
    m.add_argument("--vgg", default=None, metavar="FILE",
                   help="VGG-16 weights for --perceptual-weight: torchvision vgg16-*.pth or the stlpips file "
                   "(default: the one in the installed stlpips-pytorch package)")
    m.add_argument("--init", default=None, metavar="FILE",
                   help="anymask: fine-tune this saved any-mask model (its config replaces the width options above)")
    m.add_argument("--bottleneck", type=int, default=4000, help="paper: bottleneck channels")
    m.add_argument("--width", type=int, default=64, help="paper: nef = ngf; also the discriminator width")
    add_run_options(parser, steps=20000)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from .run_options import train

    return train(*prepare(args))


def prepare(args: argparse.Namespace):
    """The task and run options of this command's arguments (shared with the GAN Train node)."""
    from models.archs.context_encoder import AnyMaskConfig, ContextEncoderConfig
    from models.train.data import load_images
    from models.train.inpaint import InpaintSettings, InpaintTask

    from .run_options import run_options

    anymask = AnyMaskConfig(args.base_channels, args.downsamplings, args.bottleneck_blocks, args.norm, args.upsample,
                            args.prefill)
    if args.init:
        from models import weights

        anymask = weights.load(args.init).config
    settings = InpaintSettings(
        variant=args.variant,
        batch_size=args.batch_size,
        crop=args.crop or 128,
        lr=args.lr,
        d_lr_ratio=args.d_lr_ratio,
        adv_weight=args.adv_weight,
        hole_weight=args.hole_weight,
        mask_kinds=tuple(k.strip() for k in args.mask_kinds.split(",") if k.strip()),
        anymask=anymask,
        paper=ContextEncoderConfig(nef=args.width, ngf=args.width, bottleneck=args.bottleneck),
        discriminator_width=args.width,
        perceptual_weight=args.perceptual_weight,
        init=args.init,
    )
    vgg = None
    if args.perceptual_weight > 0:
        from models.pretrained import load_vgg16

        vgg = load_vgg16(args.vgg, last="relu3_3")
    options = run_options(args)
    data = load_images(args.data, min_side=32, max_side=args.max_side, holdout=args.holdout,
                       holdout_sources=args.holdout_sources)
    log.info("training on %d images from %s (%d skipped, %d held out)", len(data), args.data, len(data.skipped),
             len(data.held_out))
    return InpaintTask(settings, data, vgg), options
