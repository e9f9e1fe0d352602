"""`python -m nodes.train evaluate-translate`: score translate models on synthetic pairs of held-out photos.

Prints a markdown table (PSNR, SSIM, chroma PSNR, luma SSIM, colourfulness error and seconds per
image per method; see `models.translate.evaluate`) and, with --json, writes every number and the
settings.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from models.translate.pairs import KINDS

    from .run_options import add_source_holdout

    parser = subparsers.add_parser(
        "evaluate-translate",
        help="score translate models (e.g. colourisation) on synthetic pairs of the held-out photos",
        description="Score image-to-image models on the held-out split of --data (the photos a training run "
        "with the same --holdout never saw). Each photo is centre-cropped to a square and resized to --size; "
        "the pair is made from it by --synthetic (colorize: input its greyscale; edges2photo: input its edge "
        "drawing; poster: target its poster). The baseline 'input' returns the input unchanged.",
    )
    parser.add_argument("--data", required=True, type=Path, help="folder of photos (searched recursively)")
    parser.add_argument("--synthetic", choices=KINDS, default="colorize",
                        help="how the pairs are made from the photos (default colorize)")
    parser.add_argument("--holdout", type=float, default=0.1,
                        help="held-out fraction used in training (default 0.1); 0 scores every photo (or, with "
                        "--holdout-sources, only those sources)")
    parser.add_argument("--model", action="extend", nargs="+", default=[], metavar="FILE",
                        help="translate weights file(s) (.safetensors of ours, or a convertible .pth)")
    parser.add_argument("--size", type=int, default=256, help="square evaluation size in px (default 256)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N photos")
    parser.add_argument("--max-side", type=int, default=1024, help="downscale larger images to this on load")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write all numbers here")
    add_source_holdout(parser, scoring=True)
    parser.add_argument("--keep-luminance", action="store_true",
                        help="also score each model with the input's luminance kept (only its colours used)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from models import weights
    from models.translate import evaluate as evaluate_translate

    from .scoring import held_out_images

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    methods: dict[str, evaluate_translate.Method] = {}
    for path in args.model:
        model = weights.load(path)
        if model.task != "translate":
            raise ValueError(f"{path}: expected a translate model, got task {model.task!r} ({model.arch})")
        name = Path(path).stem
        methods[name if name not in methods else f"{name} ({len(methods)})"] = evaluate_translate.model_method(model)
        if args.keep_luminance:
            methods[f"{name}, input luminance kept"] = evaluate_translate.model_method(model, keep_luminance=True)
    methods["input"] = evaluate_translate.input_baseline
    data, split = held_out_images(args)
    images = data.images[: args.limit] if args.limit else data.images
    log.info("scoring %d photos (%s of %s) with %d methods at %d px", len(images), split, args.data, len(methods),
             args.size)
    rows = evaluate_translate.evaluate_translation(methods, images, args.synthetic, size=args.size)
    grey = f", {rows[0].skipped_grey} grey photos skipped" if rows[0].skipped_grey else ""
    print(f"{len(images)} photos ({split}, holdout {args.holdout}{grey}), {args.synthetic}, {args.size} px\n")
    print(evaluate_translate.format_table(rows))
    if args.json is not None:
        report = {
            "settings": {"data": str(args.data), "synthetic": args.synthetic, "holdout": args.holdout,
                         "holdout_sources": list(args.holdout_sources),
                         "size": args.size, "images": [p.name for p in data.paths[: len(images)]]},
            "rows": [r.to_dict() for r in rows],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0
