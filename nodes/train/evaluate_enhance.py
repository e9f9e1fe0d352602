"""`python -m nodes.train evaluate-enhance`: score restorers/enhancers and classical methods on held-out photos.

Prints a markdown table (PSNR and SSIM against the clean image per fixed degradation and method, see
`models.enhance.evaluate`) and, with --json, writes every number and the settings.
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
    from models.enhance.evaluate import DEGRADERS, degradations_of

    from .scoring import add_scoring_options

    parser = subparsers.add_parser(
        "evaluate-enhance",
        help="score enhance models and classical methods on degraded held-out photos",
        description="Score restoration/enhancement on the held-out split of --data (the images a training run with "
        "the same --holdout / --holdout-sources never saw). Each image is centre-cropped, resized to --size "
        "(--resize) and degraded with each degradation of --degrader: plain (independent 8-bit code: "
        f"{', '.join(degradations_of('plain'))}) or pack (the training code's fixed set: "
        f"{', '.join(degradations_of('pack'))}). Methods: the degraded input itself, each --model, and (unless "
        "--no-classical) OpenCV non-local means, bilateral filter, unsharp mask, CLAHE, auto-contrast (also with "
        "a gamma) and grey-world white balance, each with the parameter of its grid that scores best on these "
        "very images. PSNR, SSIM and (when the stlpips-pytorch VGG-16 file is installed) ST-LPIPS.",
    )
    parser.add_argument("--data", required=True, type=Path, help="folder of images (searched recursively)")
    parser.add_argument("--holdout", type=float, default=0.1,
                        help="held-out fraction used in training (default 0.1); 0 scores all images")
    add_scoring_options(parser)
    parser.add_argument("--model", action="extend", nargs="+", default=[], metavar="FILE",
                        help="enhance weights file(s) (.safetensors)")
    parser.add_argument("--degrader", choices=DEGRADERS, default="plain",
                        help="plain: independent 8-bit degradations (default); pack: the training code's fixed set")
    parser.add_argument("--degradations", default=None, help="comma-separated names (default: all of --degrader's)")
    parser.add_argument("--size", type=int, default=256, help="square evaluation size in px (default 256)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--max-side", type=int, default=1024, help="downscale larger images to this on load")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write all numbers here")
    parser.add_argument("--no-classical", action="store_true", help="skip the OpenCV baselines")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import torch

    from models import weights
    from models.enhance import enhance
    from models.enhance import evaluate as evaluate_enhance

    from .scoring import held_out_images, perceptual_distance

    names = evaluate_enhance.degradations_of(args.degrader)
    if args.degradations is not None:
        names = tuple(d.strip() for d in args.degradations.split(",") if d.strip())
    if args.size < 32:
        raise ValueError(f"--size must be >= 32, got {args.size}")
    restorers = {}
    for path in args.model:
        model = weights.load(path)
        if model.task != "enhance":
            raise ValueError(f"{path} is a {model.arch!r} model for {model.task!r}, not an enhance model")
        restorers[Path(path).stem] = lambda x, model=model: enhance(model, x)
    try:
        perceptual = perceptual_distance(args)
    except FileNotFoundError as exc:
        print(f"error: {exc} (or pass --no-stlpips)", file=sys.stderr)
        return 2
    classical = None
    if not args.no_classical:
        try:
            classical = evaluate_enhance.classical_grids()
        except RuntimeError as exc:
            print(f"error: {exc} (or pass --no-classical)", file=sys.stderr)
            return 2
    data, split = held_out_images(args)
    images, paths = data.images[: args.limit], data.paths[: args.limit]
    log.info("scoring %d images (%s of %s) on %d degradations", len(images), split, args.data, len(names))
    rows = evaluate_enhance.evaluate_restoration(restorers, images, degradations=names, degrader=args.degrader,
                                                 size=args.size, resize=args.resize, classical=classical,
                                                 perceptual=perceptual, progress=lambda n: log.info("%s done", n))
    table = evaluate_enhance.format_table(rows)
    print(f"{len(images)} images ({split}, holdout {args.holdout}), {args.size} px ({args.resize}), "
          f"{args.degrader} degradations\n")
    print(table)
    if args.json is not None:
        report = {
            "settings": {"data": str(args.data), "holdout": args.holdout, "degrader": args.degrader,
                         "resize": args.resize, "holdout_sources": list(args.holdout_sources), "size": args.size,
                         "limit": args.limit,
                         "degradations": list(names), "threads": torch.get_num_threads(), "torch": torch.__version__,
                         "python": platform.python_version(),
                         "images": [p.relative_to(data.root).as_posix() for p in paths]},
            "models": {name: str(p) for name, p in zip(restorers, args.model, strict=True)},
            "rows": [r.to_dict() for r in rows],
            "table": table,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0
