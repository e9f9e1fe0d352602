"""Parameter-free hole fills that a network can start from (pure tensor operations, no weights).

* `push_pull`: normalised convolution down a 2x pyramid until every cell has known pixels, then
  bilinear blends back up: a smooth fill of any hole from the colours around it.
* `harmonic`: Laplace's equation inside the hole with the known pixels as its boundary (5-point
  stencil, the image border reflecting), by multigrid V-cycles (red-black Gauss-Seidel, 2x2
  restriction to the cells whose four children are all unknown, bilinear prolongation).

`models.inpaint.classical` offers both as baselines; the any-mask Context Encoder's
``prefill="harmonic"`` starts from the second.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TOLERANCE = 1e-5
"""The default stop of `harmonic`: no value changed by more than this in a cycle, for values in [0, 1]."""
MAX_CYCLES = 300
_COARSEST = 4
_SMOOTH = 2


def _pad_even(t: Tensor) -> Tensor:
    return F.pad(t, (0, t.shape[-1] % 2, 0, t.shape[-2] % 2))


def _upsample(t: Tensor, like: Tensor) -> Tensor:
    """`t` bilinearly upsampled 2x, cropped to `like`'s size (undoing `_pad_even`)."""
    up = F.interpolate(t, scale_factor=2.0, mode="bilinear", align_corners=False)
    return up[..., : like.shape[-2], : like.shape[-1]]


def push_pull(image: Tensor, hole: Tensor) -> Tensor:
    """Push-pull: weighted 2x2 means down to full coverage, bilinear blends back up."""
    weight = (~hole).to(image.dtype)
    levels = [(image * weight, weight)]
    while bool((levels[-1][1] == 0).any()):
        total, w = levels[-1]
        levels.append((F.avg_pool2d(_pad_even(total), 2), F.avg_pool2d(_pad_even(w), 2)))
    total, w = levels[-1]
    out = total / w
    for total, w in reversed(levels[:-1]):
        up = _upsample(out, w)
        known = torch.where(w > 0, total / w.clamp(min=1e-12), up)
        share = w.clamp(max=1.0)
        out = share * known + (1.0 - share) * up
    return out


def _neighbour_sum(u: Tensor) -> Tensor:
    p = F.pad(u, (1, 1, 1, 1), mode="replicate")  # replicate = a reflecting (Neumann) image border
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]


def _smooth(u: Tensor, rhs: Tensor, colours: tuple[Tensor, Tensor], sweeps: int) -> Tensor:
    """Red-black Gauss-Seidel on 4u - sum(neighbours) = rhs, updating only the unknowns (`colours` masks)."""
    for _ in range(sweeps):
        for unknown in colours:
            u = torch.where(unknown, (_neighbour_sum(u) + rhs) * 0.25, u)
    return u


def _checker(unknown: Tensor) -> tuple[Tensor, Tensor]:
    h, w = unknown.shape[-2:]
    red = ((torch.arange(h, device=unknown.device)[:, None] + torch.arange(w, device=unknown.device)) % 2) == 0
    return unknown & red, unknown & ~red


def _v_cycle(u: Tensor, rhs: Tensor, unknown: Tensor) -> Tensor:
    colours = _checker(unknown)
    if min(u.shape[-2:]) <= _COARSEST:
        return _smooth(u, rhs, colours, 30)
    u = _smooth(u, rhs, colours, _SMOOTH)
    residual = torch.where(unknown, rhs - (4.0 * u - _neighbour_sum(u)), torch.zeros_like(u))
    coarse_unknown = F.avg_pool2d(_pad_even(unknown.float()), 2) == 1.0  # all four children unknown
    if not bool(coarse_unknown.any()):
        return _smooth(u, rhs, colours, _SMOOTH)
    coarse_rhs = 4.0 * F.avg_pool2d(_pad_even(residual), 2)
    error = _v_cycle(torch.zeros_like(coarse_rhs), coarse_rhs, coarse_unknown)
    error = _upsample(error, u)
    u = torch.where(unknown, u + error, u)
    return _smooth(u, rhs, colours, _SMOOTH)


def harmonic(image: Tensor, hole: Tensor, tolerance: float = TOLERANCE, max_cycles: int = MAX_CYCLES) -> Tensor:
    """Laplace's equation solved inside `hole` (bool [B,1,H,W]) with the other pixels of `image`
    [B,C,H,W] as its boundary, over the whole image: V-cycles from the `push_pull` fill until one
    changes no value by more than `tolerance` (or `max_cycles`). Linear in the image, so any value
    range works (scale `tolerance` with it); every item needs a known pixel. Returns float32."""
    image = image.float()
    if not bool(hole.any()):
        return image.clone()
    u = torch.where(hole, push_pull(image, hole), image)
    rhs = torch.zeros_like(u)
    for _ in range(max_cycles):
        previous = u
        u = _v_cycle(u, rhs, hole)
        if float((u - previous).abs().max()) <= tolerance:
            break
    return u
