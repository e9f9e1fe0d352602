"""Classical hole fills on core tensors, in PyTorch: pre-fills for a network and baselines to beat.

`fill(image, mask, method)` takes images [B,3,H,W] in [0,1] and masks [B,1,H,W] (batch 1 or B,
1 = hole). The hole is the pixels with mask > 0.5; it is replaced entirely and every other pixel is
returned bit for bit (soft values <= 0.5 are kept, > 0.5 are filled: there is no blending). An item
without a hole comes back unchanged; a mask item covering the whole image is an error (nothing to
fill from). Methods:

* ``mean``: the mean colour of all the item's known pixels (the trivial baseline).
* ``blur``: push-pull normalised convolution: known pixels and their weights are averaged down a 2x
  pyramid until every cell has known pixels, then pulled back up with bilinear upsampling, so holes
  of any size fill with a smooth blend of the colours around them (values stay within the known range).
* ``harmonic``: the solution of Laplace's equation inside the hole with the known pixels as its
  boundary (5-point stencil, the image border reflecting). Multigrid V-cycles (red-black Gauss-Seidel,
  2x2 restriction to the cells whose four children are all unknown, bilinear
  prolongation) started from the ``blur`` fill, on the hole's bounding box
  plus 1 px, until a cycle changes no value by more than `HARMONIC_TOLERANCE`.
* ``patch``: texture copied from the known part of the image, coarse to fine, with a PatchMatch
  search and weighted patch voting, started from ``harmonic`` at the coarsest level
  (`models.inpaint.patchmatch`): sharp where the image repeats, where diffusion fills are smooth.
  It works on the hole's bounding box grown by `PATCH_CONTEXT` x its size on each side, so the cost
  follows the hole, not the image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import layout

METHODS = ("mean", "blur", "harmonic", "patch")
HARMONIC_TOLERANCE = 1e-5
"""The V-cycles stop once one changes no pixel by more than this (in [0, 1] units)."""
MAX_CYCLES = 300
PATCH_CONTEXT = 1.0
"""``patch`` copies from the hole's bounding box grown by this x its longer side (at least 64 px) on each side."""
_COARSEST = 4
_SMOOTH = 2


def fill(
    image: Tensor,
    mask: Tensor,
    method: str = "harmonic",
    *,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Fill the hole (mask > 0.5) of each image with `method` (see the module doc); the rest is kept exactly.

    `device` is used for the computation only; the result is on the input's device. `progress(i, n)`
    is called after each item.
    """
    layout.validate_image(image, channels=(3,))
    layout.validate_mask_for(image, mask)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    batch = image.shape[0]
    holes = (mask > 0.5).expand(batch, -1, -1, -1)
    full = holes.flatten(1).all(dim=1).nonzero().flatten().tolist()
    if full:
        raise ValueError(f"mask item {full[0] if mask.shape[0] > 1 else 0} covers the whole image (every value > 0.5): "
                         "a classical fill has no known pixels to fill from")
    device = torch.device(device) if device is not None else image.device
    results = []
    for i in range(batch):
        item, hole = image[i : i + 1], holes[i : i + 1]
        if bool(hole.any()):
            filled = _FILLS[method](item.to(device), hole.to(device)).to(image.device, image.dtype)
            item = torch.where(hole, filled, item)
        else:
            item = item.clone()
        results.append(item)
        if progress is not None:
            progress(i + 1, batch)
    return torch.cat(results)


def _mean(image: Tensor, hole: Tensor) -> Tensor:
    known = (~hole).to(image.dtype)
    colour = (image * known).sum(dim=(-2, -1), keepdim=True) / known.sum(dim=(-2, -1), keepdim=True)
    return colour.expand_as(image)


def _pad_even(t: Tensor) -> Tensor:
    return F.pad(t, (0, t.shape[-1] % 2, 0, t.shape[-2] % 2))


def _upsample(t: Tensor, like: Tensor) -> Tensor:
    """`t` bilinearly upsampled 2x, cropped to `like`'s size (undoing `_pad_even`)."""
    up = F.interpolate(t, scale_factor=2.0, mode="bilinear", align_corners=False)
    return up[..., : like.shape[-2], : like.shape[-1]]


def _blur(image: Tensor, hole: Tensor) -> Tensor:
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


def harmonic(image: Tensor, hole: Tensor) -> Tensor:
    """The ``harmonic`` fill of a whole batch at once: [B,3,H,W] in [0,1], `hole` a bool [B,1,H,W].

    Every item must have a known pixel. Unlike `fill` it solves over the whole image rather than
    each hole's box (the same solution, more work on small holes, one pass for the batch); the
    any-mask Context Encoder's ``prefill="harmonic"`` starts from it. Returns float32.
    """
    image = image.float()
    if not bool(hole.any()):
        return image.clone()
    u = torch.where(hole, _blur(image, hole), image)
    rhs = torch.zeros_like(u)
    for _ in range(MAX_CYCLES):
        previous = u
        u = _v_cycle(u, rhs, hole)
        if float((u - previous).abs().max()) <= HARMONIC_TOLERANCE:
            break
    return u.clamp(0.0, 1.0)


def _harmonic(image: Tensor, hole: Tensor) -> Tensor:
    h, w = image.shape[-2:]
    rows, cols = hole[0, 0].any(dim=1).nonzero().flatten(), hole[0, 0].any(dim=0).nonzero().flatten()
    y0, y1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, h)
    x0, x1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, w)
    # The box's edge is known pixels or the image border, so the crop's solution is the whole image's.
    out = image.clone()
    out[..., y0:y1, x0:x1] = harmonic(image[..., y0:y1, x0:x1], hole[..., y0:y1, x0:x1]).to(image.dtype)
    return out


def _patch(image: Tensor, hole: Tensor) -> Tensor:
    """`patchmatch.patch_fill` on the hole's box grown by PATCH_CONTEXT x its size (at least 64 px) a side."""
    from .patchmatch import patch_fill

    h, w = image.shape[-2:]
    rows, cols = hole[0, 0].any(dim=1).nonzero().flatten(), hole[0, 0].any(dim=0).nonzero().flatten()
    grow = max(64, int(PATCH_CONTEXT * max(int(rows[-1] - rows[0]), int(cols[-1] - cols[0])) + 1))
    y0, y1 = max(int(rows[0]) - grow, 0), min(int(rows[-1]) + 1 + grow, h)
    x0, x1 = max(int(cols[0]) - grow, 0), min(int(cols[-1]) + 1 + grow, w)
    out = image.clone()
    out[..., y0:y1, x0:x1] = patch_fill(image[..., y0:y1, x0:x1].float(), hole[..., y0:y1, x0:x1], _harmonic).to(
        image.dtype)
    return out


_FILLS = {"mean": _mean, "blur": _blur, "harmonic": _harmonic, "patch": _patch}
