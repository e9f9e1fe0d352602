"""`python -m nodes.train style`: train a fast neural style network (Johnson et al. 2016) for one style image."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .run_options import add_run_options, add_source_holdout

    parser = subparsers.add_parser(
        "style",
        help="train a fast neural style TransformerNet for one style image (GAN Stylize loads it)",
        description="Train a TransformerNet (Johnson et al. 2016) on random crops of the photos in --content so "
        "that it paints them in the style of --style. Perceptual loss from a fixed VGG-16: content at relu2_2, "
        "style statistics (channel means and stds, or Gram matrices) at relu1_2, relu2_2, relu3_3 and relu4_3 of "
        "the output shrunk by --style-downsample, total variation and a low-pass anchor to the photo (see "
        "models/train/style.py for why each is there). The VGG-16 comes "
        "from --vgg (a torchvision vgg16-*.pth) or the installed stlpips-pytorch package (the [train] extra).",
    )
    g = parser.add_argument_group("data")
    g.add_argument("--content", required=True, help="folder of content photos (searched recursively)")
    g.add_argument("--style", required=True, help="the style image (a painting)")
    g.add_argument("--style-size", type=int, default=512, help="resize the style image to this long side (px)")
    g.add_argument("--holdout", type=float, default=0.0,
                   help="fraction of content images set aside by a stable hash of their path")
    add_source_holdout(g, scoring=False)
    g.add_argument("--max-side", type=int, default=1024, help="downscale larger content images to this on load")
    m = parser.add_argument_group("model and losses")
    m.add_argument("--vgg", default=None, help="VGG-16 weights: torchvision vgg16-*.pth or the stlpips file "
                   "(default: the one in the installed stlpips-pytorch package)")
    m.add_argument("--crop", type=int, default=256, help="training crop size (multiple of 4)")
    m.add_argument("--batch-size", type=int, default=4)
    m.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    m.add_argument("--content-weight", type=float, default=1.0, help="content term weight (default 1)")
    m.add_argument("--style-weight", type=float, default=3.0, help="style term weight (default 3)")
    m.add_argument("--tv-weight", type=float, default=4.0, help="total variation weight (default 4; 0 = off)")
    m.add_argument("--style-loss", choices=("gram", "meanstd"), default="meanstd",
                   help="what the style term matches per layer: Gram matrices (the paper) or channel means and "
                   "standard deviations (as AdaIN)")
    m.add_argument("--layer-weights", default="1,1,1,0.1",
                   help="weights of the style layers relu1_2, relu2_2, relu3_3, relu4_3 (default 1,1,1,0.1)")
    m.add_argument("--relative", action=argparse.BooleanOptionalAction, default=True,
                   help="divide the content term and each style layer's term by its target's mean square, so the "
                   "weights are ratios of comparable terms whatever the VGG's feature scale (default on; "
                   "--no-relative --content-weight 1e5 --style-weight 1e10 --style-loss gram: pytorch/examples')")
    m.add_argument("--lowpass-weight", type=float, default=1.0,
                   help="weight of the low-pass anchor: squared error of the Gaussian-blurred (sigma 2.5 px) output "
                   "and photo, keeps shapes and tones (default 1; 0 = off)")
    m.add_argument("--style-downsample", type=int, default=2,
                   help="the style term sees the output and the style image shrunk by this factor (2 hides pixel-scale "
                   "stripes from the loss network, so the style comes out as strokes; default 2)")
    m.add_argument("--transpose", action=argparse.BooleanOptionalAction, default=True,
                   help="transpose a random half of the training crops (removes the photos' horizontal bias; "
                   "default on)")
    m.add_argument("--symmetric", action=argparse.BooleanOptionalAction, default=False,
                   help="the style term also compares the transposed output with the transposed style image, so "
                   "streaks of one orientation cost as much as they would across (default off)")
    m.add_argument("--equivariance", type=float, default=0.0,
                   help="weight of the difference between the result of a transposed crop, transposed back, and the "
                   "crop's own result: the network may then not prefer one orientation for every picture (default 0)")
    m.add_argument("--init", default=None, metavar="FILE",
                   help="fine-tune: start from this fast style model (a transformer_net file); its widths and "
                   "residual blocks are used")
    m.add_argument("--widths", default="32,64,128", help="TransformerNet widths (the public network: 32,64,128)")
    m.add_argument("--residual-blocks", type=int, default=5)
    add_run_options(parser, steps=20000)
    parser.set_defaults(func=run)
    return parser


def parse_numbers(text: str, kind: type, count: int, option: str, example: str) -> tuple:
    """`count` comma-separated values of `kind` from `text`, or a ValueError naming `option`."""
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ValueError(f"{option} must be {count} comma-separated {kind.__name__}s like {example}, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    from .run_options import train

    return train(*prepare(args))


def prepare(args: argparse.Namespace):
    """The task and run options of this command's arguments (shared with the GAN Train node)."""
    from models.archs.transformer_net import TransformerNetConfig
    from models.pretrained import load_vgg16
    from models.train.data import load_images
    from models.train.style import StyleSettings, StyleTask, load_style_image

    from .run_options import run_options

    if args.init:
        from models import weights

        net = weights.load(args.init).config
    else:
        net = TransformerNetConfig(parse_numbers(args.widths, int, 3, "--widths", "32,64,128"), args.residual_blocks)
    settings = StyleSettings(
        batch_size=args.batch_size, crop=args.crop, lr=args.lr, content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, style_loss=args.style_loss,
        layer_weights=parse_numbers(args.layer_weights, float, 4, "--layer-weights", "1,1,1,0.1"),
        relative=args.relative,
        lowpass_weight=args.lowpass_weight, transpose=args.transpose, style_downsample=args.style_downsample,
        symmetric=args.symmetric, equivariance=args.equivariance, net=net, init=args.init,
    )
    options = run_options(args)
    vgg = load_vgg16(args.vgg, last="relu4_3")
    style = load_style_image(args.style, args.style_size)
    data = load_images(args.content, min_side=32, max_side=args.max_side, holdout=args.holdout,
                       holdout_sources=args.holdout_sources)
    log.info("training on %d content images from %s, style %s (%dx%d), VGG-16 pooling %s", len(data),
             args.content, args.style, style.shape[-1], style.shape[-2], vgg.pooling)
    task = StyleTask(settings, data, style, vgg, style_name=Path(args.style).name)
    return task, options
