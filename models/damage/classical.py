"""A classical damage detector to compare the learned one with: a morphological top-hat on the luminance.

Scratches and dust are thin bright or dark structures, so the white top-hat (image minus its grey
opening) and the black top-hat (closing minus image) with a square structuring element of `size` px
respond to them and not to anything wider. The response is the larger of the two, in [0, 1]; a
threshold turns it into a mask. This is the usual hand-made dust-and-scratches filter; it knows nothing
of stains, creases or torn corners and cannot tell a scratch from a thin highlight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import layout


def _dilate(x: Tensor, size: int) -> Tensor:
    pad = size // 2
    return F.max_pool2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), size, stride=1)


def _erode(x: Tensor, size: int) -> Tensor:
    return -_dilate(-x, size)


def tophat(image: Tensor, size: int = 7) -> Tensor:
    """max(white top-hat, black top-hat) of the luminance of `image` [B, C, H, W] in [0, 1]; [B, 1, H, W]."""
    layout.validate_image(image, channels=(1, 3, 4))
    if isinstance(size, bool) or not isinstance(size, int) or size < 3 or size % 2 == 0:
        raise ValueError(f"size must be an odd int >= 3 (pixels), got {size!r}")
    colour = image[:, :3].float()
    luma = colour.mean(1, keepdim=True) if colour.shape[1] == 1 else (
        0.299 * colour[:, :1] + 0.587 * colour[:, 1:2] + 0.114 * colour[:, 2:3])
    opened = _dilate(_erode(luma, size), size)
    closed = _erode(_dilate(luma, size), size)
    return torch.maximum(luma - opened, closed - luma).clamp(0, 1)
