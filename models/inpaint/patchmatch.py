"""Patch-based hole filling (Wexler et al. 2007 with PatchMatch's search, Barnes et al. 2009) in PyTorch.

The hole is filled with texture copied from the known part of the same image, coarse to fine:

1. A pyramid of 2x reductions (known-weighted 2x2 means; a coarse pixel is a hole pixel when any
   of its four children is) down to the smallest level that still has `MIN_SOURCES` fully known
   patches and a short side of at least 4 patch widths. The coarsest hole starts from the harmonic
   fill (`classical.fill(..., "harmonic")`).
2. At every level, `ITERATIONS` rounds of
   * *search*: a nearest-neighbour field maps each target patch (every `PATCH` x `PATCH` patch that
     touches the hole) to a source patch lying entirely in the known region, minimising the sum of
     squared differences to the current estimate over the patch, where the target's known pixels
     count `KNOWN_WEIGHT` times as much as its estimated ones. It is improved for all targets at
     once, PatchMatch-style: the current match, the matches of the four neighbours shifted by one
     pixel (propagation, which spreads good matches along coherent regions), and random candidates
     around the current match in windows halving from the image size down to 1 px (random search);
   * *vote*: each hole pixel becomes the weighted mean of what the matched source patches of all the
     target patches covering it say about it, a vote weighing exp(-d / (VOTE_SCALE median d)) for the patch's
     distance d, so good matches count more and the copied texture stays sharp.
3. The field is carried to the next finer level (coordinates doubled, each child its own offset),
   and the finer hole starts from a vote of that field (the copied patches at the finer scale, not
   the blurry upsampled estimate, which would draw the search to smooth sources).

Known pixels are never changed. Everything random comes from a generator seeded with `SEED`, so a
fill is deterministic for a given device. Cost grows with the hole's area, not the image's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

PATCH = 7
ITERATIONS = 4
MIN_SOURCES = 64
VOTE_SCALE = 0.5
"""Vote weights are exp(-d / (VOTE_SCALE x the median distance)): smaller keeps the copied texture sharper."""
KNOWN_WEIGHT = 4.0
"""How much more a target patch's known pixels count in the match distance than its (estimated) hole pixels."""
SEED = 0
_INF = float("inf")


def patch_fill(image: Tensor, hole: Tensor, initial: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Fill `hole` ([1,1,H,W] bool) of `image` ([1,3,H,W]); `initial(image, hole)` fills the coarsest level first."""
    generator = torch.Generator(device=image.device).manual_seed(SEED)
    levels = _pyramid(image, hole)
    coarse_image, coarse_hole = levels[-1]
    estimate = torch.where(coarse_hole, initial(coarse_image, coarse_hole), coarse_image)
    nnf = None
    for level_image, level_hole in reversed(levels):
        if nnf is not None:  # from the coarser level: upsample the estimate into this hole, carry the field
            up = F.interpolate(estimate, size=level_image.shape[-2:], mode="bilinear", align_corners=False)
            estimate = torch.where(level_hole, up, level_image)
        estimate, nnf = _fill_level(estimate, level_hole, nnf, generator)
    return estimate


def _pyramid(image: Tensor, hole: Tensor) -> list[tuple[Tensor, Tensor]]:
    """[(image, hole)] from full size to the coarsest useful level."""
    levels = [(image, hole)]
    while True:
        img, h = levels[-1]
        if min(img.shape[-2:]) // 2 < 4 * PATCH:
            break
        known = (~h).to(img.dtype)
        weight = F.avg_pool2d(known, 2, ceil_mode=True)
        smaller = F.avg_pool2d(img * known, 2, ceil_mode=True) / weight.clamp(min=1e-6)
        smaller_hole = F.max_pool2d(h.to(img.dtype), 2, ceil_mode=True) > 0
        if int(_sources(smaller_hole).sum()) < MIN_SOURCES:
            break
        levels.append((smaller, smaller_hole))
    return levels


def _sources(hole: Tensor) -> Tensor:
    """[H, W] bool: centres of patches lying inside the image and entirely in the known region."""
    r = PATCH // 2
    touched = F.max_pool2d(hole.float(), PATCH, stride=1, padding=r)[0, 0] > 0
    inside = torch.zeros_like(touched)
    inside[r : touched.shape[0] - r, r : touched.shape[1] - r] = True
    return inside & ~touched


def _patches(image: Tensor) -> Tensor:
    """[3 * PATCH^2, H * W]: the patch around every pixel (reflecting at the border)."""
    r = PATCH // 2
    padded = F.pad(image, (r, r, r, r), mode="reflect") if min(image.shape[-2:]) > r else \
        F.pad(image, (r, r, r, r), mode="replicate")
    return F.unfold(padded, PATCH)[0]


def _fill_level(
    estimate: Tensor, hole: Tensor, coarse_nnf: Tensor | None, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Search and vote `ITERATIONS` times at one level: the estimate and the field [H, W] (flat source indices)."""
    height, width = estimate.shape[-2:]
    r = PATCH // 2
    sources = _sources(hole)
    if not bool(sources.any()):  # a hole so large no patch is fully known: take patches whose centre is known
        sources = ~hole[0, 0]
    targets = F.max_pool2d(hole.float(), PATCH, stride=1, padding=r)[0, 0] > 0
    source_index = sources.flatten().nonzero().flatten()
    target_index = targets.flatten().nonzero().flatten()
    device = estimate.device
    ty, tx = target_index // width, target_index % width
    if coarse_nnf is None:
        match = source_index[torch.randint(len(source_index), (len(target_index),), generator=generator,
                                           device=device)]
    else:  # the coarse match of each target's parent, doubled, plus the child's own offset
        ch, cw = coarse_nnf.shape
        parent = coarse_nnf[(ty // 2).clamp(max=ch - 1), (tx // 2).clamp(max=cw - 1)]
        sy = (parent // cw) * 2 + ty % 2
        sx = (parent % cw) * 2 + tx % 2
        match = sy.clamp(0, height - 1) * width + sx.clamp(0, width - 1)
    valid = sources.flatten()
    bad = ~valid[match]
    if bool(bad.any()):
        match[bad] = source_index[torch.randint(len(source_index), (int(bad.sum()),), generator=generator,
                                                device=device)]
    hole_flat = hole.flatten()
    known = _patches((~hole).to(estimate.dtype).expand(-1, 3, -1, -1))[:, target_index]
    pixel_weight = 1.0 + (KNOWN_WEIGHT - 1.0) * known
    if coarse_nnf is not None:  # start from the carried field's copy, not from the blurry upsampled estimate
        feats = _patches(estimate)
        estimate = _vote(estimate, feats, target_index, match, torch.zeros(len(match), device=device), hole_flat)
    for _ in range(ITERATIONS):
        feats = _patches(estimate)
        match, distance = _search(feats, target_index, match, valid, pixel_weight, height, width, generator)
        estimate = _vote(estimate, feats, target_index, match, distance, hole_flat)
    nnf = torch.arange(height * width, device=device)
    nnf[target_index] = match
    return estimate, nnf.view(height, width)


def _search(
    feats: Tensor, targets: Tensor, match: Tensor, valid: Tensor, pixel_weight: Tensor, height: int, width: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """One PatchMatch round for every target at once: propagation from the 4 neighbours, then random search."""
    target_feats = feats[:, targets]

    def cost(candidate: Tensor) -> Tensor:
        d = ((feats[:, candidate] - target_feats).square() * pixel_weight).sum(dim=0)
        return torch.where(valid[candidate], d, torch.full_like(d, _INF))

    best = cost(match)
    ty, tx = targets // width, targets % width
    position = torch.full((height * width,), -1, dtype=torch.long, device=feats.device)
    position[targets] = torch.arange(len(targets), device=feats.device)
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        ny, nx = ty - dy, tx - dx  # the neighbour's match, moved by the same step
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        neighbour = position[ny.clamp(0, height - 1) * width + nx.clamp(0, width - 1)]
        usable = inside & (neighbour >= 0)
        nm = match[neighbour.clamp(min=0)]
        sy, sx = nm // width + dy, nm % width + dx
        usable &= (sy >= 0) & (sy < height) & (sx >= 0) & (sx < width)
        candidate = torch.where(usable, sy.clamp(0, height - 1) * width + sx.clamp(0, width - 1), match)
        match, best = _keep_better(match, best, candidate, cost(candidate))
    radius = max(height, width)
    while radius >= 1:
        my, mx = match // width, match % width
        jy = torch.randint(-radius, radius + 1, my.shape, generator=generator, device=feats.device)
        jx = torch.randint(-radius, radius + 1, mx.shape, generator=generator, device=feats.device)
        candidate = (my + jy).clamp(0, height - 1) * width + (mx + jx).clamp(0, width - 1)
        match, best = _keep_better(match, best, candidate, cost(candidate))
        radius //= 2
    return match, best


def _keep_better(match: Tensor, best: Tensor, candidate: Tensor, distance: Tensor) -> tuple[Tensor, Tensor]:
    better = distance < best
    return torch.where(better, candidate, match), torch.where(better, distance, best)


def _vote(
    estimate: Tensor, feats: Tensor, targets: Tensor, match: Tensor, distance: Tensor, hole: Tensor
) -> Tensor:
    """Each hole pixel = the distance-weighted mean of the matched patches' values for it."""
    height, width = estimate.shape[-2:]
    r = PATCH // 2
    finite = torch.isfinite(distance)
    scale = VOTE_SCALE * distance[finite].median().clamp(min=1e-6) if bool(finite.any()) else torch.tensor(1.0)
    weight = torch.where(finite, torch.exp(-distance / scale), torch.zeros_like(distance))
    cols = torch.zeros_like(feats)
    cols[:, targets] = feats[:, match] * weight
    counts = torch.zeros(PATCH * PATCH, feats.shape[1], dtype=feats.dtype, device=feats.device)
    counts[:, targets] = weight
    size = (height + 2 * r, width + 2 * r)
    total = F.fold(cols[None], size, PATCH)[..., r : r + height, r : r + width]
    count = F.fold(counts[None], size, PATCH)[..., r : r + height, r : r + width]
    voted = total / count.clamp(min=1e-12)
    fill_here = hole.view(1, 1, height, width) & (count > 1e-12)
    return torch.where(fill_here, voted, estimate)
