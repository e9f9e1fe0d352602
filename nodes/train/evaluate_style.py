"""`python -m nodes.train evaluate-style`: score style models on held-out photos and chosen paintings.

Prints a markdown table (content distance at relu4_1, edge correlation with the photo, style distance and
seconds per image per method; see `models.stylize.evaluate`) and, with --json, writes every number.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .run_options import add_source_holdout

    parser = subparsers.add_parser(
        "evaluate-style",
        help="score style-transfer models on held-out photos: content kept, edges kept, distance to the style",
        description="Stylise every held-out photo of --data (centre square, Lanczos to --size) with every style "
        "image of --styles and score each method: content distance (relu4_1 of the anti-aliased VGG-16, "
        "relative; 0 = the photo's features), edge correlation with the photo (1 = the same edges) and style "
        "distance (relative error of per-channel feature means and stds at relu1_1..relu4_1; 0 = the style's). "
        "Baselines: the photo unchanged and a mean/std colour transfer from the painting.",
    )
    parser.add_argument("--data", required=True, type=Path, help="folder of content photos (searched recursively)")
    parser.add_argument("--styles", required=True, nargs="+", type=Path, metavar="IMAGE",
                        help="style images (files, or folders searched recursively)")
    parser.add_argument("--model", action="extend", nargs="+", default=[], metavar="FILE",
                        help="style model file(s): AdaIN (scored at each --alpha) or one-style networks")
    parser.add_argument("--alpha", action="append", type=float, default=None,
                        help="AdaIN style strength to score (repeat for several; default 1.0)")
    parser.add_argument("--holdout", type=float, default=0.1,
                        help="held-out fraction used in training (default 0.1); 0 scores every photo (or, with "
                        "--holdout-sources, only those sources)")
    add_source_holdout(parser, scoring=True)
    parser.add_argument("--size", type=int, default=256, help="square content size in px (default 256)")
    parser.add_argument("--style-size", type=int, default=256, help="square style size in px (default 256)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N photos")
    parser.add_argument("--max-side", type=int, default=1024, help="downscale larger images to this on load")
    parser.add_argument("--vgg", type=Path, default=None, metavar="FILE",
                        help="VGG-16 weights of the yardstick (default: the stlpips-pytorch package's file)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write all numbers here")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.set_defaults(func=run)
    return parser


def style_files(paths: list[Path]) -> list[Path]:
    """The image files named by `paths` (files as given, folders searched recursively, sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"--styles {path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"--styles {path}: no such file or folder")
    return files


MIN_STYLE_SIDE = 64
OPAQUE = 250


def read_style(path: Path):
    """A style image as [3,H,W] uint8; of one with transparency, the largest centred square that is opaque."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as im:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
    rgb, alpha = rgba[..., :3], rgba[..., 3]
    if alpha.min() < OPAQUE:
        h, w = alpha.shape
        side = min(h, w)
        while side >= MIN_STYLE_SIDE:
            top, left = (h - side) // 2, (w - side) // 2
            if alpha[top : top + side, left : left + side].min() >= OPAQUE:
                break
            side -= 2
        if side < MIN_STYLE_SIDE:
            raise ValueError(f"style image {path}: no opaque centred square of at least {MIN_STYLE_SIDE} px")
        rgb = rgb[top : top + side, left : left + side]
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


def run(args: argparse.Namespace) -> int:
    from models import pretrained, weights
    from models.stylize import ADAIN, ONE_STYLE
    from models.stylize import evaluate as evaluate_style

    from .scoring import held_out_images

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    alphas = args.alpha or [1.0]
    if any(not 0.0 <= a <= 1.0 for a in alphas):
        raise ValueError(f"--alpha must lie in [0, 1], got {alphas}")
    methods: dict[str, evaluate_style.Method] = {"content photo": evaluate_style.content_baseline,
                                                 "mean/std colour transfer": evaluate_style.colour_transfer}
    for path in args.model:
        model, name = weights.load(path), Path(path).stem
        if model.arch == ADAIN:
            for alpha in alphas:
                methods[f"{name}, alpha {alpha:g}"] = evaluate_style.adain_method(model, alpha)
        elif model.arch in ONE_STYLE.archs:
            methods[name] = evaluate_style.one_style_method(model)
        else:
            raise ValueError(f"{path}: expected a style model ({ADAIN!r}, or one of {', '.join(ONE_STYLE.archs)}), "
                             f"got {model.arch!r} for task {model.task!r}")
    files = style_files(args.styles)
    styles = [read_style(p) for p in files]
    vgg = pretrained.load_vgg16(args.vgg, last=evaluate_style.CONTENT_LAYER)
    data, split = held_out_images(args)
    contents = data.images[: args.limit] if args.limit else data.images
    log.info("scoring %d photos (%s of %s) x %d styles with %d methods at %d px", len(contents), split, args.data,
             len(styles), len(methods), args.size)
    rows = evaluate_style.evaluate_style(methods, contents, styles, vgg, size=args.size, style_size=args.style_size)
    print(f"{len(contents)} photos ({split}) x {len(styles)} styles ({', '.join(p.stem for p in files)}), "
          f"{args.size} px\n")
    print(evaluate_style.format_table(rows))
    if args.json is not None:
        report = {
            "settings": {"data": str(args.data), "holdout": args.holdout, "holdout_sources": list(args.holdout_sources),
                         "size": args.size, "style_size": args.style_size, "styles": [str(p) for p in files],
                         "images": [p.name for p in data.paths[: len(contents)]]},
            "rows": [r.to_dict() for r in rows],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0
