"""Time the classical fills and colour transfer: ms per call (median of N runs) on 2 CPU threads, fp32, batch 1.

Run from the repository root: ``python tests/benchmarks/bench_classical.py [--runs N]``.
Rows: `classical.fill` harmonic / blur on 512^2 with a 256^2 hole and on 1200^2 with a 1024^2 hole (a smooth
image), and `colour.match_colours` with each method at 1024^2.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from timing import median_ms  # noqa: E402

from models import colour, masks  # noqa: E402
from models.inpaint import classical  # noqa: E402


def smooth(size: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack([0.1 + 0.8 * x, 0.2 + 0.6 * y, 0.5 + 0.2 * torch.sin(6 * x) * y])[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    for size, hole in ((512, 256), (1200, 1024)):
        image = smooth(size)
        start = (size - hole) // 2
        mask = masks.box_mask(size, size, 1, start, start, hole, hole)
        for method in ("harmonic", "blur"):
            ms = median_ms(lambda image=image, mask=mask, method=method: classical.fill(image, mask, method), args.runs)
            print(f"{f'fill {method}, {size}^2, {hole}^2 hole':<44} {ms:9.1f} ms")
    image = torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    reference = torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1)) * 0.5
    for method in colour.TRANSFER_METHODS:
        ms = median_ms(lambda method=method: colour.match_colours(image, reference, method), args.runs)
        print(f"{f'match_colours {method}, 1024^2':<44} {ms:9.1f} ms")


if __name__ == "__main__":
    main()
