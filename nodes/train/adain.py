"""`python -m nodes.train adain`: train an AdaIN decoder (Huang & Belongie 2017) for arbitrary styles."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .run_options import add_run_options, add_source_holdout

    parser = subparsers.add_parser(
        "adain",
        help="train an AdaIN decoder for any style image (GAN Style Transfer loads it)",
        description="Train the decoder of an AdaIN model (Huang & Belongie 2017) against a fixed encoder: "
        "content loss on the AdaIN target at relu4_1, style loss on per-channel mean and std at relu1_1 .. "
        "relu4_1. The encoder is the reference vgg_normalised.pth VGG-19 (--encoder) or a VGG-16 cut after "
        "relu4_1 from --vgg or the installed stlpips-pytorch package (the [train] extra; the default). The "
        "output holds encoder and decoder in one file.",
    )
    g = parser.add_argument_group("data")
    g.add_argument("--content", required=True, help="folder of content photos (searched recursively)")
    g.add_argument("--style", required=True, help="folder of style images, e.g. paintings (searched recursively)")
    g.add_argument("--holdout", type=float, default=0.0,
                   help="fraction of images (content and style) set aside by a stable hash of their path")
    g.add_argument("--max-side", type=int, default=1024, help="downscale larger images to this on load")
    add_source_holdout(g, scoring=False)  # sources of --content; the style images are split by --holdout only
    m = parser.add_argument_group("model and losses")
    e = m.add_mutually_exclusive_group()
    e.add_argument("--encoder", default=None, help="reference vgg_normalised.pth (VGG-19 encoder)")
    e.add_argument("--vgg", default=None, help="VGG-16 weights: torchvision vgg16-*.pth or the stlpips file "
                   "(default: the one in the installed stlpips-pytorch package)")
    m.add_argument("--decoder", choices=("reference", "skip"), default=None,
                   help="decoder layout: 'skip' (the default with a VGG-16 encoder: 1.4 M parameters, reads relu2_1 "
                   "and relu3_1 as well as relu4_1, so it keeps the content's shapes after short CPU runs) or "
                   "'reference' (pytorch-AdaIN's, relu4_1 only; the only one for --encoder)")
    m.add_argument("--crop", type=int, default=256, help="training crop size (multiple of 8)")
    m.add_argument("--batch-size", type=int, default=8)
    m.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    m.add_argument("--content-weight", type=float, default=1.0)
    m.add_argument("--style-weight", type=float, default=10.0)
    m.add_argument("--identity-weight", type=float, default=0.0,
                   help="L1 weight of the decoder's pixel reconstruction of the content from its own features "
                   "(not in the paper; helps short runs keep the content's structure; 0 = off)")
    add_run_options(parser, steps=160000)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from .run_options import train

    return train(*prepare(args))


def prepare(args: argparse.Namespace):
    """The task and run options of this command's arguments (shared with the GAN Train node)."""
    from models.train.adain import AdaINSettings, AdaINTask, encoder_weights
    from models.train.data import load_images

    from .run_options import run_options

    encoder, state, source = encoder_weights(args.encoder, args.vgg)
    settings = AdaINSettings(batch_size=args.batch_size, crop=args.crop, lr=args.lr,
                             content_weight=args.content_weight, style_weight=args.style_weight,
                             identity_weight=args.identity_weight, encoder=encoder,
                             decoder=args.decoder or ("reference" if encoder == "vgg19_normalised" else "skip"))
    options = run_options(args)
    content = load_images(args.content, min_side=32, max_side=args.max_side, holdout=args.holdout,
                          holdout_sources=args.holdout_sources)
    style = load_images(args.style, min_side=32, max_side=args.max_side, holdout=args.holdout)
    log.info("training on %d content images from %s and %d style images from %s; encoder %s from %s",
             len(content), args.content, len(style), args.style, encoder, source)
    return AdaINTask(settings, content, style, state, source), options
