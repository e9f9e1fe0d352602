"""Contact sheet of one-style networks (fast neural style): content rows x model columns, by the pack's own code.

Run from the repository root:
``python tests/benchmarks/fast_style_sheet.py --models A.safetensors B.safetensors --paintings A.jpg B.jpg
--out models/weights/fast_style_sheet.jpg``.

Rows are photos (default: the shipped sample photos of workflows/inputs, from a source the shipped models never
trained on); the first column is the photo, then one column per model (`models.stylize.fast_style`, CPU, fp32),
headed by its painting.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from style_sheet import INPUTS, ROOT, read, save_sheet, tile  # noqa: E402

sys.path.insert(0, str(ROOT))
from models import stylize, weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="one-style model files")
    parser.add_argument("--paintings", type=Path, nargs="+", required=True, help="their style images, same order")
    parser.add_argument("--contents", type=Path, nargs="*",
                        default=[INPUTS / "astronaut.jpg", INPUTS / "chelsea.jpg", INPUTS / "coffee.jpg"])
    parser.add_argument("--size", type=int, default=512, help="long side of the content images when stylised")
    parser.add_argument("--cell", type=int, default=256)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if len(args.models) != len(args.paintings):
        parser.error(f"{len(args.models)} models but {len(args.paintings)} paintings: give one painting per model")
    torch.set_num_threads(2)
    models = [weights.load(p) for p in args.models]
    header = [tile(None, args.cell, "photo")]
    header += [tile(read(p, 512), args.cell, p.stem[:30]) for p in args.paintings]
    rows = [header]
    for path in args.contents:
        content = read(path, args.size)
        rows.append([tile(content, args.cell, path.stem)] + [tile(stylize.fast_style(m, content), args.cell)
                                                              for m in models])
    save_sheet(rows, args.cell, args.out)


if __name__ == "__main__":
    main()
