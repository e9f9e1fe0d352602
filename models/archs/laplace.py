"""Parameter-free hole fills that a network can start from (pure tensor operations, no weights).

* `push_pull`: normalised convolution down a 2x pyramid until every cell has known pixels, then
  bilinear blends back up: a smooth fill of any hole from the colours around it.
* `harmonic`: Laplace's equation inside the hole with the known pixels as its boundary (5-point
  stencil, the image border reflecting), by multigrid V-cycles (red-black Gauss-Seidel, 2x2
  restriction to the cells whose four children are all unknown, bilinear prolongation), each
  cycle's correction scaled by the step that minimises the residual.

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


def _operator(u: Tensor, unknown: Tensor) -> Tensor:
    """4u - sum(neighbours) on the unknowns, 0 elsewhere."""
    return torch.where(unknown, 4.0 * u - _neighbour_sum(u), torch.zeros_like(u))


def _v_cycle(u: Tensor, rhs: Tensor, unknown: Tensor) -> Tensor:
    colours = _checker(unknown)
    if min(u.shape[-2:]) <= _COARSEST:
        return _smooth(u, rhs, colours, 30)
    u = _smooth(u, rhs, colours, _SMOOTH)
    residual = torch.where(unknown, rhs, torch.zeros_like(rhs)) - _operator(u, unknown)
    coarse_unknown = F.avg_pool2d(_pad_even(unknown.float()), 2) == 1.0  # all four children unknown
    if not bool(coarse_unknown.any()):
        return _smooth(u, rhs, colours, _SMOOTH)
    coarse_rhs = 4.0 * F.avg_pool2d(_pad_even(residual), 2)
    error = _v_cycle(torch.zeros_like(coarse_rhs), coarse_rhs, coarse_unknown)
    error = _upsample(error, u)
    u = torch.where(unknown, u + error, u)
    return _smooth(u, rhs, colours, _SMOOTH)


def _solve(image: Tensor, hole: Tensor, tolerance: float, max_cycles: int) -> Tensor:
    u = torch.where(hole, push_pull(image, hole), image)
    rhs = torch.zeros_like(u)
    for _ in range(max_cycles):
        # Each V-cycle proposes a correction; it is taken with the step that minimises the residual
        # (per item and channel). A plain V-cycle over-corrects where the hole's edges fall on the
        # coarse cells' edges (a box at a power-of-two offset): its coarse grids see a hole up to a
        # coarse cell wider, and the cycles diverge; the scaled step never lets the residual grow.
        step = _v_cycle(u, rhs, hole) - u
        residual = -_operator(u, hole)
        a_step = _operator(step, hole)
        scale = (residual * a_step).sum(dim=(-2, -1), keepdim=True) / (a_step * a_step).sum(
            dim=(-2, -1), keepdim=True).clamp(min=1e-30)
        change = scale * step
        u = u + change
        if float(change.abs().max()) <= tolerance:
            break
    return u


def harmonic(image: Tensor, hole: Tensor, tolerance: float = TOLERANCE, max_cycles: int = MAX_CYCLES) -> Tensor:
    """Laplace's equation solved inside `hole` (bool [B,1,H,W]) with the other pixels of `image`
    [B,C,H,W] as its boundary: V-cycles from the `push_pull` fill until one changes no value by more
    than `tolerance` (or `max_cycles`). The solve runs on the bounding box of all the batch's holes
    plus 1 px (its edge is known pixels or the image border, so the box's solution is the whole
    image's). Linear in the image, so any value range works (scale `tolerance` with it); every item
    needs a known pixel. Returns float32."""
    image = image.float()
    if not bool(hole.any()):
        return image.clone()
    h, w = image.shape[-2:]
    rows, cols = hole.any(dim=-1).flatten(0, -2).any(dim=0), hole.any(dim=-2).flatten(0, -2).any(dim=0)
    rows, cols = rows.nonzero().flatten(), cols.nonzero().flatten()
    y0, y1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, h)
    x0, x1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, w)
    out = image.clone()
    out[..., y0:y1, x0:x1] = _solve(image[..., y0:y1, x0:x1], hole[..., y0:y1, x0:x1], tolerance, max_cycles)
    return out
