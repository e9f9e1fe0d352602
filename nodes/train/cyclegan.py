"""`python -m nodes.train cyclegan`: train an unpaired translator between two folders (CycleGAN)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .pix2pix import add_generator_options
    from .run_options import add_run_options

    parser = subparsers.add_parser(
        "cyclegan",
        help="train CycleGAN on two unpaired image folders (A -> B and B -> A)",
        description="Train CycleGAN (Zhu et al. 2017) on two unpaired folders: generators G_A (A -> B) and G_B "
        "(B -> A), PatchGANs D_A and D_B, LSGAN losses, cycle loss x --lambda-cycle, identity loss x "
        "--lambda-identity x --lambda-cycle, image pools of --pool-size past fakes (checkpointed, so --resume "
        "is exact). Writes G_A to --out and G_B to --out-b (default: OUT's name with _BtoA); GAN Image to Image "
        "loads both.",
    )
    g = parser.add_argument_group("data")
    g.add_argument("--data-a", required=True, help="folder of domain A images (searched recursively)")
    g.add_argument("--data-b", required=True, help="folder of domain B images (searched recursively)")
    g.add_argument("--holdout", type=float, default=0.0,
                   help="fraction of each folder set aside by a stable hash of the path (never trained on)")
    g.add_argument("--max-side", type=int, default=1024, help="downscale larger images to this on load")
    g.add_argument("--no-zoom", action="store_true",
                   help="crop windows of exactly --crop px (no log-uniform window size, no resize)")
    m = parser.add_argument_group("model and losses")
    add_generator_options(m, net="resnet_9blocks", norm="instance", dropout=False)
    m.add_argument("--crop", type=int, default=None, help="training crop size (default 256; 128 for unet_128)")
    m.add_argument("--batch-size", type=int, default=1)
    m.add_argument("--lr", type=float, default=2e-4, help="learning rate of G and D (Adam, beta1 0.5)")
    m.add_argument("--lambda-cycle", type=float, default=10.0, help="weight of the cycle losses (default 10)")
    m.add_argument("--lambda-identity", type=float, default=0.5,
                   help="identity loss weight, as a fraction of --lambda-cycle (default 0.5; 0 = off)")
    m.add_argument("--pool-size", type=int, default=50, help="past fakes the discriminators see (0 = none)")
    add_run_options(parser, steps=20000)
    parser.add_argument("--out-b", type=Path, default=None,
                        help="where G_B (B -> A) goes (default: OUT with '_BtoA' before .safetensors)")
    parser.add_argument("--no-out-b", action="store_true", help="write only G_A (A -> B)")
    parser.set_defaults(func=run, decay_from=0.5)
    return parser


def default_out_b(out: Path) -> Path:
    """OUT.safetensors -> OUT_BtoA.safetensors."""
    return out.with_name(out.name.removesuffix(".safetensors") + "_BtoA.safetensors")


def run(args: argparse.Namespace) -> int:
    from models.train.cyclegan import CycleGANSettings, CycleGANTask
    from models.train.data import load_images
    from models.train.engine import Trainer

    from .run_options import run_options

    settings = CycleGANSettings(
        net_g=args.net_g, ngf=args.ngf, ndf=args.ndf, n_layers_d=args.n_layers_d, norm=args.norm,
        dropout=args.dropout, batch_size=args.batch_size, crop=args.crop or (128 if args.net_g == "unet_128" else 256),
        zoom=not args.no_zoom, lr=args.lr, lambda_cycle=args.lambda_cycle, lambda_identity=args.lambda_identity,
        pool_size=args.pool_size,
    )
    options = run_options(args)
    out_b = None if args.no_out_b else (args.out_b or default_out_b(Path(args.out)))
    if out_b is not None and (out_b.suffix != ".safetensors" or out_b.resolve() == Path(args.out).resolve()):
        raise ValueError(f"--out-b must be another .safetensors file than --out, got {out_b}")
    data_a = load_images(args.data_a, min_side=32, max_side=args.max_side, holdout=args.holdout)
    data_b = load_images(args.data_b, min_side=32, max_side=args.max_side, holdout=args.holdout)
    log.info("training on %d A images (%s) and %d B images (%s)", len(data_a), args.data_a, len(data_b), args.data_b)
    out = Trainer(CycleGANTask(settings, data_a, data_b, out_b), options).run()
    if out is not None:
        print(f"wrote {out}" + (f" (A -> B) and {out_b} (B -> A)" if out_b else ""))
    return 0
