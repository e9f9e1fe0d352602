"""`python -m nodes.train evaluate-edit`: score an edit model per instruction on held-out synthetic pairs.

Prints a markdown table (PSNR over the edited region and the image, SSIM, seconds per image for the
model, the untouched input and a naive baseline per instruction; see `models.edit.evaluate`) and,
with --json, writes every number and the settings.
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
    parser = subparsers.add_parser(
        "evaluate-edit",
        help="score an edit model per instruction against the untouched input and a naive baseline",
        description="Score an edit model on synthetic pairs made from the held-out split of --data (the photos a "
        "training run with the same --holdout never saw; --holdout 0 uses every image), with the training "
        "recipes of models/edit_pairs.py. Methods per instruction: the model, the untouched input and a naive "
        "baseline (remove: OpenCV Telea; recolour: HSV hue shift; relight: global gain; harmonise_paste: "
        "mean/std colour transfer from the context; blur_background: Gaussian blur outside the mask).",
    )
    from .scoring import add_scoring_options

    parser.add_argument("--model", required=True, type=Path, help="edit weights file (.safetensors)")
    parser.add_argument("--inpaint-model", type=Path, default=None, metavar="FILE",
                        help="remove: also score the edit model removing with this inpainting model, as GAN Edit "
                        "does (e.g. models/weights/context_encoder_anymask.safetensors)")
    parser.add_argument("--data", required=True, type=Path, help="folder of photos (searched recursively)")
    parser.add_argument("--holdout", type=float, default=0.1,
                        help="held-out fraction used in training (default 0.1); 0 scores all images")
    parser.add_argument("--instructions", default=None,
                        help="comma-separated instructions to score (default: every one the model knows)")
    parser.add_argument("--size", type=int, default=128, help="square evaluation size in px (default 128)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pairs (default 0)")
    parser.add_argument("--max-side", type=int, default=1024, help="downscale larger images to this on load")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write all numbers here")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    add_scoring_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import torch

    from models import weights
    from models.edit import evaluate as evaluate_edit
    from models.inpaint import ACCEPTS as INPAINT_ACCEPTS
    from models.train.edit import parse_instructions

    from .scoring import held_out_images, perceptual_distance

    if args.size < 16:
        raise ValueError(f"--size must be >= 16, got {args.size}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    model = weights.load(args.model)
    if model.task != "edit":
        raise ValueError(f"{args.model}: expected an edit model (task 'edit'), got a {model.arch} model for "
                         f"{model.task!r}")
    known = model.config.instructions
    chosen = parse_instructions(args.instructions) if args.instructions else known
    for name in chosen:
        model.config.index(name)  # an instruction the model was not trained for is an error
    if "remove" in chosen:
        try:
            import cv2  # noqa: F401
        except ImportError as exc:
            print(f"error: the remove baseline needs OpenCV ({exc}); pip install opencv-python-headless",
                  file=sys.stderr)
            return 2
    try:
        perceptual = perceptual_distance(args)
    except FileNotFoundError as exc:
        print(f"error: {exc} (or pass --no-stlpips)", file=sys.stderr)
        return 2
    methods = {
        name: {
            args.model.stem: evaluate_edit.model_method(model, name, device="cpu"),
            "input (untouched)": evaluate_edit.untouched,
            evaluate_edit.BASELINES[name][0]: evaluate_edit.BASELINES[name][1],
        }
        for name in chosen
    }
    if args.inpaint_model is not None and "remove" in chosen:
        inpainter = weights.load(args.inpaint_model).expect(INPAINT_ACCEPTS, "--inpaint-model")
        methods["remove"][f"{args.model.stem} + {args.inpaint_model.stem}"] = evaluate_edit.model_method(
            model, "remove", device="cpu", inpainter=inpainter)
    data, split = held_out_images(args)
    images, paths = data.images, data.paths
    if args.limit is not None:
        images, paths = images[: args.limit], paths[: args.limit]
    log.info("scoring %d images (%s of %s) x %d instructions at %d px", len(images), split, args.data,
             len(chosen), args.size)
    rows = evaluate_edit.evaluate_edits(methods, images, size=args.size, seed=args.seed, perceptual=perceptual,
                                        resize=args.resize)
    table = evaluate_edit.format_table(rows)
    print(f"{len(images)} images ({split}, holdout {args.holdout}), {args.size} px, seed {args.seed}\n")
    print(table)
    if args.json is not None:
        report = {
            "settings": {
                "data": str(args.data), "holdout": args.holdout, "holdout_sources": list(args.holdout_sources),
                "split": split, "size": args.size, "resize": args.resize,
                "seed": args.seed, "limit": args.limit, "max_side": args.max_side, "instructions": list(chosen),
                "threads": torch.get_num_threads(), "torch": torch.__version__,
                "python": platform.python_version(),
                "images": [p.relative_to(data.root).as_posix() for p in paths],
            },
            "model": {"file": args.model.name, "config": repr(model.config), "provenance": model.provenance},
            "inpaint_model": None if args.inpaint_model is None else args.inpaint_model.name,
            "rows": [row.to_dict() for row in rows],
            "table": table,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0
