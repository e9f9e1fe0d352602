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
  prolongation, each cycle's correction scaled to minimise the residual) started from the ``blur``
  fill, on the hole's bounding box plus 1 px, until a cycle changes no value by more than
  `HARMONIC_TOLERANCE` (`models.archs.laplace`).
* ``patch``: texture copied from the known part of the image, coarse to fine, with a PatchMatch
  search and weighted patch voting, started from ``harmonic`` at the coarsest level
  (`models.inpaint.patchmatch`): sharp where the image repeats, where diffusion fills are smooth.
  It works on the hole's bounding box grown by `PATCH_CONTEXT` x its size on each side, so the cost
  follows the hole, not the image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import layout
from ..archs import laplace

METHODS = ("mean", "blur", "harmonic", "patch")
HARMONIC_TOLERANCE = laplace.TOLERANCE
"""The V-cycles stop once one changes no pixel by more than this (in [0, 1] units)."""
PATCH_CONTEXT = 1.0
"""``patch`` copies from the hole's bounding box grown by this x its longer side (at least 64 px) on each side."""


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


def harmonic(image: Tensor, hole: Tensor) -> Tensor:
    """The ``harmonic`` fill of a whole batch at once: [B,3,H,W] in [0,1], `hole` a bool [B,1,H,W].

    Every item must have a known pixel. Unlike `fill` it solves the batch at once, on the bounding
    box of all its holes. Returns float32 (`models.archs.laplace.harmonic` with this module's
    tolerance, clamped to [0, 1]).
    """
    return laplace.harmonic(image, hole, HARMONIC_TOLERANCE).clamp(0.0, 1.0)


def _patch(image: Tensor, hole: Tensor) -> Tensor:
    """`patchmatch.patch_fill` on the hole's box grown by PATCH_CONTEXT x its size (at least 64 px) a side."""
    from .patchmatch import patch_fill

    h, w = image.shape[-2:]
    rows, cols = hole[0, 0].any(dim=1).nonzero().flatten(), hole[0, 0].any(dim=0).nonzero().flatten()
    grow = max(64, int(PATCH_CONTEXT * max(int(rows[-1] - rows[0]), int(cols[-1] - cols[0])) + 1))
    y0, y1 = max(int(rows[0]) - grow, 0), min(int(rows[-1]) + 1 + grow, h)
    x0, x1 = max(int(cols[0]) - grow, 0), min(int(cols[-1]) + 1 + grow, w)
    out = image.clone()
    out[..., y0:y1, x0:x1] = patch_fill(image[..., y0:y1, x0:x1].float(), hole[..., y0:y1, x0:x1], harmonic).to(
        image.dtype)
    return out


_FILLS = {"mean": _mean, "blur": laplace.push_pull, "harmonic": harmonic, "patch": _patch}
