"""The options every training command shares; they become `models.train.engine.RunOptions`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_run_options(parser: argparse.ArgumentParser, *, steps: int, checkpoint_every: int = 500) -> None:
    """Options every training command shares (they become `models.train.engine.RunOptions`)."""
    g = parser.add_argument_group("run")
    g.add_argument("--out", type=Path, required=True, help="the .safetensors file to write (the nodes load it)")
    g.add_argument("--steps", type=int, default=steps, help=f"optimisation steps (default {steps})")
    g.add_argument("--seed", type=int, default=0, help="seed for weights, data order, crops and masks")
    g.add_argument("--resume", action="store_true", help="continue from OUT's checkpoint (OUT.ckpt.pt) exactly")
    g.add_argument("--checkpoint-every", type=int, default=checkpoint_every, help="steps between checkpoints")
    g.add_argument("--preview-every", type=int, default=checkpoint_every, help="steps between preview PNGs")
    g.add_argument("--log-every", type=int, default=10, help="steps between metric rows")
    g.add_argument("--metrics", choices=("jsonl", "csv"), default="jsonl", help="metrics file format")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="autocast precision: bf16 speeds up CUDA and CPUs with AVX512-BF16 or AMX but is much slower "
                   "than fp32 on other CPUs (the run warns); fp16 is for CUDA")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="compute device")
    g.add_argument("--decay-from", type=float, default=1.0,
                   help="fraction of the run after which learning rates fall linearly to zero (1 = never)")
    g.add_argument("--max-minutes", type=float, default=None, help="stop (and export) after this much wall time")
    g.add_argument("--stop-at", type=int, default=None,
                   help="stop (and export) after this step, keeping the learning-rate schedule of --steps")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")


def run_options(args: argparse.Namespace):
    from models.train.engine import RunOptions

    return RunOptions(
        out=args.out, steps=args.steps, seed=args.seed, checkpoint_every=args.checkpoint_every,
        preview_every=args.preview_every, log_every=args.log_every, resume=args.resume,
        precision=args.precision, device=args.device, metrics_format=args.metrics, decay_from=args.decay_from,
        max_minutes=args.max_minutes, stop_at=args.stop_at, progress=not args.no_progress,
    )


def add_source_holdout(group: argparse._ArgumentGroup | argparse.ArgumentParser, *, scoring: bool) -> None:
    """`--holdout-sources`: whole first-level folders of --data set aside (training) or scored (evaluation)."""
    what = "the only images scored (with --holdout as well: those plus the hashed share)" if scoring else \
        "never trained on"
    group.add_argument("--holdout-sources", type=_names, default=(), metavar="NAME[,NAME...]",
                       help="hold out whole sources: these first-level folders of --data (the packages the photos "
                       f"came from) are {what}; use the same value for training and evaluation")


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated folder names, got {text!r}")
    return names


def train(task, options) -> int:
    """Run `task` with the engine and print where the weights went (the end of every training command)."""
    from models.train.engine import Trainer

    out = Trainer(task, options).run()
    if out is not None:
        print(f"wrote {out}")
    return 0
