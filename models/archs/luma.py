"""BT.601 luma of RGB images, and an image's chroma put on a given luma (values in [0, 1]).

They live among the architectures because a network (`colorize.VGGColorizer`) builds its output with them;
`models.colour` offers them with the rest of the pack's colour operations.
"""

from __future__ import annotations

import torch
from torch import Tensor

LUMA = (0.299, 0.587, 0.114)


def luma(image: Tensor) -> Tensor:
    """The BT.601 luma Y of RGB images [B, 3, H, W]: [B, 1, H, W]."""
    weights = torch.tensor(LUMA, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    return (image * weights).sum(dim=1, keepdim=True)


def with_luma(image: Tensor, target: Tensor) -> Tensor:
    """`image`'s chroma on the luma `target` [B, 1, H, W]: the result's luma equals `target` exactly.

    The chroma (the image minus its own luma, per channel) is added to the target luma; where that
    would leave [0, 1] it is scaled down towards grey just enough to fit (the hue stays, saturation
    gives way), instead of clipping, which would change the luma.
    """
    target = target.clamp(0.0, 1.0)
    chroma = image - luma(image)
    tiny = 1e-12
    room_up = torch.where(chroma > tiny, (1.0 - target) / chroma.clamp(min=tiny), torch.full_like(chroma, 1.0))
    room_down = torch.where(chroma < -tiny, target / (-chroma).clamp(min=tiny), torch.full_like(chroma, 1.0))
    scale = torch.minimum(room_up, room_down).amin(dim=1, keepdim=True).clamp(0.0, 1.0)
    return (target + scale * chroma).clamp(0.0, 1.0)  # the clamp only removes float rounding (~1e-8)
