"""`python -m nodes.train evaluate-inpaint`: score inpainting models and baselines on held-out photos.

Prints a markdown table (L1 %, L2 %, PSNR over the hole and the image, SSIM, seconds per image per
method and mask kind; see `models.inpaint.evaluate`) and, with --json, writes every number and the settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .scoring import add_scoring_options

    parser = subparsers.add_parser(
        "evaluate-inpaint",
        help="score inpainting models and classical baselines on the held-out photos",
        description="Score inpainting on the held-out split of --data (the images a training run with the "
        "same --holdout / --holdout-sources never saw; --holdout 0 scores every image). Each image is "
        "centre-cropped to a square and resized to --size (--resize); every method gets the same masks. Methods: "
        "each --model, the mean-colour baseline, the pack's torch harmonic, blur and patch fills and (unless "
        "--no-classical) OpenCV Telea / Navier-Stokes and scikit-image biharmonic. L1/L2 %, PSNR over the hole and "
        "the image, SSIM and (when the stlpips-pytorch "
        "VGG-16 file is installed) ST-LPIPS over the hole's bounding box.",
    )
    parser.add_argument("--data", required=True, type=Path, help="folder of images (searched recursively)")
    parser.add_argument("--holdout", type=float, default=0.1,
                        help="held-out fraction used in training (default 0.1); 0 scores all images")
    add_scoring_options(parser)
    parser.add_argument("--model", action="extend", nargs="+", default=[], metavar="FILE",
                        help="inpainting weights file(s) (.safetensors of ours, or a convertible .pth)")
    parser.add_argument("--texture", type=float, action="append", default=[], metavar="AMOUNT",
                        help="also score each model with GAN Inpaint's texture option at this amount (0..1; repeat "
                        "for several)")
    parser.add_argument("--masks", default="center,blocks,irregular",
                        help="comma-separated mask kinds: center, blocks, irregular (default: all three)")
    parser.add_argument("--size", type=int, default=128, help="square evaluation size in px (default 128)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random masks (default 0)")
    parser.add_argument("--max-side", type=int, default=1024, help="downscale larger images to this on load")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write all numbers here")
    parser.add_argument("--no-classical", action="store_true", help="skip the OpenCV / scikit-image baselines")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu",
                        help="device for the models (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.set_defaults(func=run)
    return parser


def parse_mask_kinds(text: str) -> tuple[str, ...]:
    """'center, blocks' -> ('center', 'blocks'); unknown or no kinds are an error."""
    from models.inpaint.evaluate import MASK_KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in MASK_KINDS]
    if not kinds or unknown:
        raise ValueError(f"--masks must list some of {', '.join(MASK_KINDS)}; got {text!r}")
    return kinds


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return name


def run(args: argparse.Namespace) -> int:
    import torch

    from models import weights
    from models.inpaint import evaluate

    from .scoring import held_out_images, perceptual_distance

    kinds = parse_mask_kinds(args.masks)
    if args.size < 16:
        raise ValueError(f"--size must be >= 16, got {args.size}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    device = _device(args.device)
    try:
        perceptual = perceptual_distance(args)
    except FileNotFoundError as exc:
        print(f"error: {exc} (or pass --no-stlpips)", file=sys.stderr)
        return 2

    fills: dict[str, evaluate.Fill] = {}
    models_info = []
    for path in args.model:
        model = weights.load(path)
        name = Path(path).stem
        if name in fills:
            name = f"{name} ({len(fills)})"
        fills[name] = evaluate.model_fill(model, device=device)
        for amount in args.texture:
            fills[f"{name} + texture {amount:g}"] = evaluate.model_fill(model, device=device, texture=amount)
        models_info.append({"name": name, "file": Path(path).name, "arch": model.arch,
                            "config": repr(model.config), "provenance": model.provenance})
    if not args.no_classical:
        try:
            fills.update(evaluate.classical_fills())
        except RuntimeError as exc:  # OpenCV / scikit-image missing: the message says what to install
            print(f"error: {exc} (or pass --no-classical)", file=sys.stderr)
            return 2
    fills.update(evaluate.torch_fills())
    fills["mean colour"] = evaluate.mean_fill

    data, split = held_out_images(args)
    images, paths = data.images, data.paths
    if args.limit is not None:
        images, paths = images[: args.limit], paths[: args.limit]
    log.info("scoring %d images (%s of %s, %d skipped) with %d methods x %d mask kinds at %d px",
             len(images), split, args.data, len(data.skipped), len(fills), len(kinds), args.size)

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            log.info("%d / %d fills", done, total)

    rows = evaluate.evaluate_inpainting(fills, images, kinds, size=args.size, seed=args.seed, progress=progress,
                                        resize=args.resize, perceptual=perceptual)
    table = evaluate.format_table(rows)
    print(f"{len(images)} images ({split}, holdout {args.holdout}), {args.size} px ({args.resize}), "
          f"seed {args.seed}\n")
    print(table)
    if args.json is not None:
        report = {
            "settings": {
                "data": str(args.data), "holdout": args.holdout, "split": split, "size": args.size,
                "resize": args.resize, "holdout_sources": list(args.holdout_sources),
                "seed": args.seed, "limit": args.limit, "max_side": args.max_side, "mask_kinds": list(kinds),
                "device": device, "threads": torch.get_num_threads(), "torch": torch.__version__,
                "python": platform.python_version(), "classical": not args.no_classical,
                "images": [p.relative_to(data.root).as_posix() for p in paths],
            },
            "models": models_info,
            "rows": [row.to_dict() for row in rows],
            "table": table,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0
