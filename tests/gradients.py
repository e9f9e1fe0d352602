"""Synthetic test photos: smooth colour gradients, optionally with seeded texture (shared by the training tests).

Smooth pictures are easy to inpaint, denoise or translate, so a few training steps must already show
learning; each index gets its own blue ramp so the images of a folder differ.
"""

from pathlib import Path

import torch
from PIL import Image


def gradient(height: int, width: int, index: int, count: int = 6) -> torch.Tensor:
    """[3, H, W] in [0, 1]: x in red, y in green, their mean times (index + 1) / count in blue."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([x, y, (x + y) / 2 * ((index + 1) / count)])


def save_png(image: torch.Tensor, path: Path) -> None:
    """Write a [3, H, W] image in [0, 1] as an 8-bit file (rounded, clamped)."""
    Image.fromarray((image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()).save(path)


def gradient_folder(root: Path, count: int = 6, size: tuple[int, int] = (48, 64), texture: float = 0.0) -> Path:
    """`count` gradient PNGs (height, width = size) in `root`; texture > 0 mixes in that much seeded noise."""
    generator = torch.Generator().manual_seed(0)
    for i in range(count):
        image = gradient(*size, i, count)
        if texture > 0:
            image = image * (1 - texture) + texture * torch.rand(image.shape, generator=generator)
        save_png(image, root / f"g{i}.png")
    return root
