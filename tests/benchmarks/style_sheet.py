"""Contact sheet of the style starter weights: content rows x style columns, made with the pack's own code.

Run from the repository root:
``python tests/benchmarks/style_sheet.py --styles A.png B.png --out models/weights/adain_vgg16_paintings.jpg``.

Rows are the shipped sample photos (workflows/inputs). Columns: the photo; the AdaIN model at alpha 0
(its decoder's reconstruction, "no style"); the AdaIN model at alpha 1 with the shipped style image
(starry_night.jpg) and each `--styles` image; the fast style network. The header row shows the
style image of each column. Every picture is made by `models.stylize` on CPU, fp32.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models import stylize, weights  # noqa: E402

INPUTS = ROOT / "workflows" / "inputs"
WEIGHTS = ROOT / "models" / "weights"


def read(path: Path, long_side: int) -> torch.Tensor:
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = long_side / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def tile(image: torch.Tensor | None, cell: int, label: str = "") -> Image.Image:
    """`image` [1, 3, H, W] fitted into a cell x cell dark square, with a caption."""
    out = Image.new("RGB", (cell, cell), (24, 24, 24))
    if image is not None:
        array = (image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        im = Image.fromarray(array)
        im.thumbnail((cell, cell - 14))
        out.paste(im, ((cell - im.width) // 2, (cell - 14 - im.height) // 2))
    ImageDraw.Draw(out).text((4, cell - 13), label, fill=(230, 230, 230))
    return out


def save_sheet(rows: list[list[Image.Image]], cell: int, out: Path) -> None:
    """Paste rows of `cell` px tiles into one picture and save it (JPEG quality 88 for .jpg)."""
    sheet = Image.new("RGB", (cell * len(rows[0]), cell * len(rows)), (24, 24, 24))
    for r, row in enumerate(rows):
        for c, tile_image in enumerate(row):
            sheet.paste(tile_image, (c * cell, r * cell))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=88)
    print(f"wrote {out} ({sheet.width}x{sheet.height})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adain", type=Path, default=WEIGHTS / "adain_vgg16_paintings.safetensors")
    parser.add_argument("--fast", type=Path, default=WEIGHTS / "fast_style_starry_night.safetensors")
    parser.add_argument("--styles", type=Path, nargs="*", default=[], help="more style images for AdaIN columns")
    parser.add_argument("--contents", type=Path, nargs="*",
                        default=[INPUTS / "astronaut.jpg", INPUTS / "chelsea.jpg", INPUTS / "coffee.jpg"])
    parser.add_argument("--size", type=int, default=384, help="long side of the content images when stylised")
    parser.add_argument("--cell", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    adain = weights.load(args.adain)
    fast = weights.load(args.fast) if args.fast.is_file() else None
    style_paths = [INPUTS / "starry_night.jpg", *args.styles]
    styles = [read(p, 512) for p in style_paths]
    header = [tile(None, args.cell, "content"), tile(None, args.cell, "AdaIN alpha 0")]
    header += [tile(s, args.cell, f"AdaIN: {p.stem[:22]}") for s, p in zip(styles, style_paths, strict=True)]
    if fast is not None:
        header.append(tile(styles[0], args.cell, "fast style network"))
    rows = [header]
    for path in args.contents:
        content = read(path, args.size)
        row = [tile(content, args.cell, path.stem), tile(stylize.adain_style(adain, content, [styles[0]], alpha=0.0),
                                                            args.cell)]
        row += [tile(stylize.adain_style(adain, content, [s]), args.cell) for s in styles]
        if fast is not None:
            row.append(tile(stylize.fast_style(fast, content), args.cell))
        rows.append(row)
    save_sheet(rows, args.cell, args.out)


if __name__ == "__main__":
    main()
