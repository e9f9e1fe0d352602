"""Luma and chroma of RGB images on core tensors (BT.601 weights, values in [0, 1]), and colour transfer."""

from __future__ import annotations

import torch
from torch import Tensor

from . import layout, masks
from .archs.luma import LUMA as LUMA  # defined beside the network that builds its output with them
from .archs.luma import luma as luma
from .archs.luma import with_luma as with_luma
from .ranges import STRENGTH

TRANSFER_METHODS = ("mean_std", "histogram", "reinhard")
_RGB_TO_LMS = ((0.3811, 0.5783, 0.0402), (0.1967, 0.7244, 0.0782), (0.0241, 0.1288, 0.8444))
_LMS_TO_LAB = ((1 / 3**0.5, 1 / 3**0.5, 1 / 3**0.5), (1 / 6**0.5, 1 / 6**0.5, -2 / 6**0.5),
               (1 / 2**0.5, -1 / 2**0.5, 0))
LMS_FLOOR = 1.0 / 255.0
"""LMS values are floored here before the log of Reinhard's lαβ (black would be -inf)."""


def _matrix(rows: tuple, like: Tensor) -> Tensor:
    return torch.tensor(rows, dtype=torch.float64).to(like.device, like.dtype)


def rgb_to_lab_reinhard(image: Tensor) -> Tensor:
    """RGB [B,3,H,W] -> Reinhard et al. (2001) lαβ: RGB -> LMS (their matrix, on the values as given),
    log10 (LMS floored at `LMS_FLOOR`), then their decorrelating rotation."""
    lms = torch.einsum("ij,bjhw->bihw", _matrix(_RGB_TO_LMS, image), image).clamp(min=LMS_FLOOR).log10()
    return torch.einsum("ij,bjhw->bihw", _matrix(_LMS_TO_LAB, image), lms)


def lab_reinhard_to_rgb(lab: Tensor) -> Tensor:
    """The inverse of `rgb_to_lab_reinhard` (not clamped)."""
    lms = 10.0 ** torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_matrix(_LMS_TO_LAB, lab)), lab)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_matrix(_RGB_TO_LMS, lab)), lms)


def match_colours(
    image: Tensor,
    reference: Tensor,
    method: str = "mean_std",
    exclude: Tensor | None = None,
    reference_exclude: Tensor | None = None,
    strength: float = 1.0,
    *,
    device: torch.device | str | None = None,
) -> Tensor:
    """`image` [B,3,H,W] with its colour statistics moved onto `reference`'s ([1 or B,3,h,w], any size).

    Statistics are taken per item over the pixels whose `exclude` (for the image, [1 or B,1,H,W]) or
    `reference_exclude` (for the reference, [1 or Br,1,h,w]) is <= 0.5; the transfer is then applied to
    every pixel of the image, excluded ones included. Methods, per channel:

    * ``mean_std``: RGB values shifted and scaled to the reference's mean and standard deviation (a flat
      channel, std < 1e-6, is only shifted);
    * ``histogram``: each value goes to the reference's quantile at its rank (mid-rank of ties) among the
      image's statistics pixels, linearly interpolated: the image's CDF becomes the reference's;
    * ``reinhard``: ``mean_std`` in Reinhard et al.'s lαβ space (`rgb_to_lab_reinhard`).

    The result is clamped to [0, 1] and blended: image + strength * (matched - image); strength 0 returns
    the image exactly. An item whose statistics pixels are all excluded is an error.
    """
    layout.validate_image(image, channels=(3,))
    layout.validate_image(reference, channels=(3,), name="reference")
    if reference.shape[0] not in (1, image.shape[0]):
        raise ValueError(f"reference batch must be 1 or equal the image batch {image.shape[0]}, "
                         f"got reference shape {tuple(reference.shape)}")
    if method not in TRANSFER_METHODS:
        raise ValueError(f"method must be one of {', '.join(TRANSFER_METHODS)}, got {method!r}")
    STRENGTH.check("strength", strength, " (0 = the image unchanged)")
    if exclude is not None:
        layout.validate_mask_for(image, exclude, "exclude")
    if reference_exclude is not None:
        layout.validate_mask_for(reference, reference_exclude, "reference_exclude")
    if strength == 0:
        return image.clone()
    device = torch.device(device) if device is not None else image.device
    out = []
    for i in range(image.shape[0]):
        item = image[i : i + 1].to(device)
        ref = reference[min(i, reference.shape[0] - 1)][None].to(device)
        keep = _kept(exclude, i, item, "exclude", "image")
        ref_keep = _kept(reference_exclude, i, ref, "reference_exclude", "reference")
        matched = _transfer(item, ref, keep, ref_keep, method).clamp(0.0, 1.0)
        out.append((item + strength * (matched - item)).to(image.device, image.dtype))
    return torch.cat(out)


def _kept(mask: Tensor | None, i: int, image: Tensor, name: str, what: str) -> Tensor:
    """Flat bool [H*W]: the pixels of item i that count for the statistics."""
    if mask is None:
        return torch.ones(image.shape[-2] * image.shape[-1], dtype=torch.bool, device=image.device)
    keep = (mask[min(i, mask.shape[0] - 1), 0] <= 0.5).flatten().to(image.device)
    if not bool(keep.any()):
        raise ValueError(f"{name} item {min(i, mask.shape[0] - 1)} covers the whole {what} (every value > 0.5): "
                         "no pixels are left to take colour statistics from")
    return keep


def _transfer(image: Tensor, reference: Tensor, keep: Tensor, ref_keep: Tensor, method: str) -> Tensor:
    if method == "reinhard":
        return lab_reinhard_to_rgb(_transfer(rgb_to_lab_reinhard(image), rgb_to_lab_reinhard(reference), keep,
                                             ref_keep, "mean_std"))
    x = image[0].flatten(1)  # [3, N]
    src, ref = x[:, keep], reference[0].flatten(1)[:, ref_keep]
    if method == "mean_std":
        mean, std = src.mean(dim=1, keepdim=True), src.std(dim=1, unbiased=False, keepdim=True)
        ref_mean, ref_std = ref.mean(dim=1, keepdim=True), ref.std(dim=1, unbiased=False, keepdim=True)
        scale = torch.where(std < 1e-6, torch.ones_like(std), ref_std / std.clamp(min=1e-6))
        out = (x - mean) * scale + ref_mean
    else:
        src_sorted, ref_sorted = src.sort(dim=1).values.contiguous(), ref.sort(dim=1).values.contiguous()
        n, m = src_sorted.shape[1], ref_sorted.shape[1]
        rank = (torch.searchsorted(src_sorted, x.contiguous(), right=False)
                + torch.searchsorted(src_sorted, x.contiguous(), right=True)).to(x.dtype) / (2 * n)  # mid-rank CDF
        position = (rank * m - 0.5).clamp(0, m - 1)
        low = position.floor().long()
        high = (low + 1).clamp(max=m - 1)
        frac = position - low.to(x.dtype)
        out = torch.gather(ref_sorted, 1, low) * (1 - frac) + torch.gather(ref_sorted, 1, high) * frac
    return out.view_as(image)


RING_FRACTION = 0.1
"""`match_to_ring`: the ring's width as a fraction of the region's longer box side (at least 4 px)."""


def match_to_ring(image: Tensor, mask: Tensor) -> Tensor:
    """Each item's region (`mask` > 0.5, [B,1,H,W]) with its per-channel mean and standard deviation moved
    onto those of a ring of context around it; the rest of the image is returned unchanged.

    The ring is the region grown by `RING_FRACTION` of its box's longer side (at least 4 px), minus the
    region. A soft mask blends the transferred colours by its values. An item with an empty region or
    ring is returned as it is. This is the closed-form colour harmonisation of a pasted region.
    """
    out = []
    for i in range(image.shape[0]):
        x, soft = image[i : i + 1], mask[min(i, mask.shape[0] - 1)][None].to(image)
        region = (soft > 0.5).to(image)
        if float(region.sum()) == 0:
            out.append(x)
            continue
        (_, _, w, h), = masks.bbox(region)
        ring = masks.grow(region, max(4, round(RING_FRACTION * max(w, h)))) - region
        if float(ring.sum()) == 0:
            out.append(x)
            continue
        (mu_r, sd_r), (mu_c, sd_c) = _weighted_stats(x, region), _weighted_stats(x, ring)
        moved = ((x - mu_r) / sd_r * sd_c + mu_c).clamp(0.0, 1.0)
        out.append(torch.where(soft > 0, x * (1 - soft) + moved * soft, x))
    return torch.cat(out)


def _weighted_stats(x: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    total = weight.sum(dim=(-2, -1), keepdim=True)
    mean = (x * weight).sum(dim=(-2, -1), keepdim=True) / total
    var = ((x - mean) ** 2 * weight).sum(dim=(-2, -1), keepdim=True) / total
    return mean, var.sqrt().clamp(min=1e-3)
