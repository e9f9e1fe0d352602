"""`python -m nodes.train evaluate-damage`: score damage detectors against rendered damage on held-out photos.

Each held-out photo gets synthetic old-photo damage (models/damage/render.py) with a seed of its own,
counted up from --seed (keep it away from the seeds of training: those are drawn from a 62-bit stream);
every detector's mask is compared with the rendered truth. Prints a markdown table of precision,
recall, IoU and F1 pooled over all pixels; with --json, writes every number and the settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

TOPHAT_SIZES = (5, 7, 9, 13)
DEFAULT_SEED = 1_000_003


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .run_options import add_source_holdout

    parser = subparsers.add_parser(
        "evaluate-damage",
        help="score damage detectors and a classical top-hat detector on damaged held-out photos",
        description="Score old-photo damage detection on the held-out split of --data (the images a training run "
        "with the same --holdout / --holdout-sources never saw), each damaged by the renderer with its own seed. "
        "Methods: each --model at --threshold (what the node does by default) and at the threshold that scores "
        "best on this set (oracle), and the classical morphological top-hat (max of white and black top-hat of "
        f"the luminance) with the structuring-element size from {TOPHAT_SIZES} and the threshold that score best "
        "on this very set (oracle, which flatters it).",
    )
    parser.add_argument("--data", required=True, type=Path, help="folder of images (searched recursively)")
    parser.add_argument("--holdout", type=float, default=0.0,
                        help="held-out fraction used in training; 0 (the default) with no --holdout-sources scores "
                        "all images")
    add_source_holdout(parser, scoring=True)
    parser.add_argument("--model", action="extend", nargs="+", default=[], metavar="FILE",
                        help="damage detector weights file(s) (.safetensors)")
    parser.add_argument("--threshold", type=float, default=0.5, help="the fixed threshold of the learned detectors")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"first damage seed (default {DEFAULT_SEED})")
    parser.add_argument("--max-side", type=int, default=768, help="downscale larger images to this on load")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write all numbers here")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import torch

    from models import weights
    from models.damage import ACCEPTS, detect, render
    from models.damage.classical import tophat
    from models.damage.evaluate import Tally

    from .scoring import held_out_images

    detectors = {}
    for path in args.model:
        detectors[Path(path).stem] = weights.load(path).expect(ACCEPTS, "evaluate-damage")
    data, split = held_out_images(args)
    images, paths = data.images[: args.limit], data.paths[: args.limit]
    log.info("scoring %d images (%s of %s)", len(images), split, args.data)
    learned = {name: Tally() for name in detectors}
    classical = {size: Tally() for size in TOPHAT_SIZES}
    seconds = {name: 0.0 for name in detectors}
    pixels = 0
    damaged_share = 0.0
    for i, image in enumerate(images):
        clean = image[None].float() / 255.0
        damaged, truth = render(clean, args.seed + i)
        pixels += truth.numel()
        damaged_share += float(truth.sum())
        for name, model in detectors.items():
            start = time.perf_counter()
            learned[name].add(detect(model, damaged), truth)
            seconds[name] += time.perf_counter() - start
        for size, tally in classical.items():
            tally.add(tophat(damaged, size), truth)
        log.info("%d/%d %s", i + 1, len(images), paths[i].name)
    best_size = max(classical, key=lambda s: classical[s].best().f1)
    lines = ["| method | threshold | precision | recall | IoU | F1 |", "|---|---|---|---|---|---|"]
    report_rows = {}
    for name, tally in learned.items():
        for label, result in ((f"{name} (threshold {args.threshold:g})", tally.at(args.threshold)),
                              (f"{name} (oracle threshold)", tally.best())):
            lines.append(result.row(label))
            report_rows[label] = result.__dict__
    for size, tally in classical.items():
        result = tally.best()
        label = f"top-hat {size} px (oracle threshold)"
        report_rows[label] = result.__dict__
        if size == best_size:
            lines.append(result.row(label + ", best size"))
    table = "\n".join(lines)
    print(f"{len(images)} images ({split}), at most {args.max_side} px, damage seeds {args.seed}.."
          f"{args.seed + len(images) - 1}, {100 * damaged_share / max(1, pixels):.2f} % of pixels damaged\n")
    print(table)
    if args.json is not None:
        report = {
            "settings": {"data": str(args.data), "holdout": args.holdout, "holdout_sources": list(args.holdout_sources),
                         "seed": args.seed, "max_side": args.max_side, "threshold": args.threshold,
                         "limit": args.limit, "threads": torch.get_num_threads(), "torch": torch.__version__,
                         "python": platform.python_version(),
                         "images": [p.relative_to(data.root).as_posix() for p in paths]},
            "models": {name: str(p) for name, p in zip(detectors, args.model, strict=True)},
            "seconds": seconds,
            "rows": report_rows,
            "table": table,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0
