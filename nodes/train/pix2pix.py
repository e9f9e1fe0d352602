"""`python -m nodes.train pix2pix`: train a paired image-to-image translator (pix2pix)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

SYNTHETIC_HELP = (
    "make pairs from a folder of single photos: 'colorize' (A = the photo's luma 0.299R+0.587G+0.114B in "
    "three channels, B = the photo; the written model weights its input by the same luma, so it takes colour "
    "photos too) or 'edges2photo' (A = dark edges on white: Sobel magnitude of the Gaussian-blurred luma "
    "(sigma 1) over its 98th percentile, clipped and inverted; B = the photo), or the style 'poster' (A = the "
    "photo, B = a pop-art poster of it: blurred colours rounded to 5 levels per channel, dark outlines)"
)


def add_generator_options(group: argparse._ArgumentGroup, *, net: str, norm: str, dropout: bool,
                          extra: tuple[str, ...] = ()) -> None:
    """--netG, --ngf, --ndf, --n-layers-d, --norm, --dropout: shared with `cyclegan` (`extra`: more --netG choices)."""
    from models.train.pix2pix import GENERATORS

    colorizer = ("; vgg_colorizer: a small head on a fixed ImageNet VGG-16 that reads the luma, for --synthetic "
                 "colorize (the output keeps the input's luma exactly)") if "vgg_colorizer" in extra else ""
    group.add_argument("--netG", dest="net_g", choices=GENERATORS + extra, default=net,
                       help=f"generator (default {net}){colorizer}")
    group.add_argument("--ngf", type=int, default=64, help="generator width: filters of the first layer, or the head's "
                       "width of vgg_colorizer (default 64)")
    group.add_argument("--ndf", type=int, default=64, help="PatchGAN width: filters of the first layer (default 64)")
    group.add_argument("--n-layers-d", type=int, default=3, help="PatchGAN stride-2 layers (3 = 70x70 patches)")
    group.add_argument("--norm", choices=("batch", "instance", "none"), default=norm,
                       help=f"normalisation layers of G and D (default {norm})")
    group.add_argument("--dropout", action=argparse.BooleanOptionalAction, default=dropout,
                       help=f"dropout 0.5 in the generator (default {'on' if dropout else 'off'})")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from models.translate.pairs import KINDS

    from .run_options import add_run_options, add_source_holdout

    parser = subparsers.add_parser(
        "pix2pix",
        help="train pix2pix on paired images (A/ + B/ folders, side-by-side A|B files, or synthetic pairs)",
        description="Train pix2pix (Isola et al. 2017): a generator G(A) -> B with L1 x --lambda-l1 and a "
        "conditional PatchGAN on cat(A, B) (BCE-with-logits). Data: --data DIR with A/ and B/ subfolders whose "
        "files match by name, or a folder of side-by-side A|B images, or a folder of photos with --synthetic. "
        "Each step takes random square crops (the same window on A and B; side log-uniform between --crop and "
        "the short side) with random flips. Writes a 'translate' model that GAN Image to Image loads.",
    )
    g = parser.add_argument_group("data")
    g.add_argument("--data", required=True, help="A/ + B/ folders, side-by-side A|B images, or photos (--synthetic)")
    g.add_argument("--synthetic", choices=KINDS, default=None, help=SYNTHETIC_HELP)
    g.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB", help="paired data: which side is input")
    g.add_argument("--holdout", type=float, default=0.0,
                   help="fraction of pairs set aside by a stable hash of their name (never trained on)")
    add_source_holdout(g, scoring=False)
    g.add_argument("--max-side", type=int, default=1024, help="downscale larger images to this on load")
    g.add_argument("--no-zoom", action="store_true",
                   help="crop windows of exactly --crop px (no log-uniform window size, no resize)")
    from models.train.pix2pix import COLORIZERS

    m = parser.add_argument_group("model and losses")
    add_generator_options(m, net="unet_256", norm="batch", dropout=True, extra=COLORIZERS)
    m.add_argument("--vgg", default=None, help="vgg_colorizer: the anti-aliased VGG-16 of stlpips-pytorch "
                   "(its vgg_shift_tolerant.pth; default: the installed package, the [train] extra)")
    m.add_argument("--crop", type=int, default=None, help="training crop size (default 256; 128 for unet_128)")
    m.add_argument("--batch-size", type=int, default=1)
    m.add_argument("--lr", type=float, default=2e-4, help="learning rate of G and D (Adam, beta1 0.5)")
    m.add_argument("--lambda-l1", type=float, default=100.0, help="weight of the pixel loss (default 100)")
    m.add_argument("--pixel-loss", choices=("l1", "l2", "psnr"), default="l1",
                   help="l1 (the paper), or l2: the squared error, whose best answer is the mean of the plausible ones "
                   "(colours hedged towards grey where the photo leaves them open), or psnr: the mean over crops of "
                   "log(MSE), the mean PSNR negated, so crops with little colour count as much as colourful ones")
    m.add_argument("--init", default=None, metavar="FILE",
                   help="fine-tune: start the generator from this translate model (built with the same options)")
    m.add_argument("--adv-weight", type=float, default=1.0,
                   help="weight of the adversarial loss (default 1, as the paper; 0 = plain regression, no "
                   "discriminator)")
    m.add_argument("--chroma-only", action="store_true",
                   help="colorize: judge the output's colours on the photo's own luma (as GAN Image to Image's "
                   "keep_luminance does), so the network learns colour only")
    m.add_argument("--raw-l1", type=float, default=0.1,
                   help="with --chroma-only: weight of the L1 of the raw output, relative to the colour L1 (0.1)")
    add_run_options(parser, steps=20000)
    parser.set_defaults(func=run, decay_from=0.5)
    return parser


def run(args: argparse.Namespace) -> int:
    from .run_options import train

    return train(*prepare(args))


def prepare(args: argparse.Namespace):
    """The task and run options of this command's arguments (shared with the GAN Train node)."""
    from models.train.data import load_pairs
    from models.train.pix2pix import COLORIZERS, Pix2PixSettings, Pix2PixTask, load_synthetic

    from .run_options import run_options

    settings = Pix2PixSettings(
        net_g=args.net_g, ngf=args.ngf, ndf=args.ndf, n_layers_d=args.n_layers_d, norm=args.norm,
        dropout=args.dropout, batch_size=args.batch_size, crop=args.crop or (128 if args.net_g == "unet_128" else 256),
        zoom=not args.no_zoom, lr=args.lr, lambda_l1=args.lambda_l1, chroma_only=args.chroma_only, raw_l1=args.raw_l1,
        adv_weight=args.adv_weight, pixel_loss=args.pixel_loss, init=args.init,
    )
    options = run_options(args)
    if args.synthetic:
        data = load_synthetic(args.data, args.synthetic, holdout=args.holdout, max_side=args.max_side,
                              holdout_sources=args.holdout_sources)
    else:
        if args.holdout_sources:
            raise ValueError("--holdout-sources works on folders of photos (--synthetic), not on paired folders")
        data = load_pairs(args.data, holdout=args.holdout, max_side=args.max_side, direction=args.direction)
    log.info("training on %d pairs (%s) from %s, %d held out", len(data), data.kind, args.data, len(data.held_out))
    encoder = None
    if settings.net_g in COLORIZERS:
        from models.pretrained import load_vgg16

        encoder = load_vgg16(getattr(args, "vgg", None), last=settings.generator().layers[-1])
    return Pix2PixTask(settings, data, encoder), options
