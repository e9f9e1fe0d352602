"""Image quality metrics on core tensors: PSNR, SSIM and the Context Encoder's L1 / L2 percentages.

Images are BCHW float in [0, 1] (the core contract); a `mask` is B1HW (batch B or 1) whose values
weight the pixels: with the usual binary masks (1 = hole) a metric is taken over the hole only.
Every function returns one value per batch item, a float64 tensor [B] on the images' device.

* `psnr`: 10 log10(data_range^2 / MSE), the MSE over every channel of the (masked) pixels, as
  skimage's ``peak_signal_noise_ratio``. Identical inputs have MSE 0 and give ``inf`` (not an error,
  and no warning): a perfect reconstruction is a valid result.
* `ssim`: Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5, scipy's truncate 3.5),
  K1 = 0.01, K2 = 0.03, population (co)variances and scipy's ``reflect`` border; it equals
  skimage's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1, channel_axis=-1)``: the SSIM map averaged over the image without its 5 px border,
  per channel, then over channels. With a mask it is the mask-weighted mean of the channel-averaged
  SSIM map, border included (a hole may touch the edge).
* `chroma_psnr`: PSNR over the two BT.601 colour-difference planes Cb = 0.564 (B - Y) and
  Cr = 0.713 (R - Y) (data range 1): how right the colours are, whatever the luminance; a grey
  image has Cb = Cr = 0. `luma_ssim`: SSIM of the BT.601 luma Y alone.
* `colourfulness`: Hasler & Süsstrunk (2003), M = sqrt(var rg + var yb) + 0.3 sqrt(mean rg^2 +
  mean yb^2) with rg = R - G, yb = (R + G) / 2 - B on the 0..255 scale (over the mask's pixels when
  given): 0 for grey, ~15 "slightly", ~33 "moderately", ~59 "quite", ~82 "highly colourful".
* `l1_percent`, `l2_percent`: mean absolute and mean squared error x 100, the numbers of the
  Context Encoder paper's Table 1 (Pathak et al. 2016, "Mean L1 Loss" / "Mean L2 Loss", computed
  over the hole of images in [0, 1]).

The sums run in float64 so the results match the numpy references to ~1e-12 and do not depend on
the input dtype.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from . import layout

__all__ = ["SSIM_K1", "SSIM_K2", "SSIM_SIGMA", "SSIM_TRUNCATE", "chroma_psnr", "colourfulness", "l1_percent",
           "l2_percent", "luma_ssim", "psnr", "ssim", "ssim_map"]

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5: an 11-tap window, as scipy computes it


def _check_pair(a: Tensor, b: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validated float64 copies of the images and the mask (expanded to the batch)."""
    layout.validate_image(a, name="a")
    layout.validate_image(b, name="b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if mask is None:
        return a.double(), b.double(), None
    layout.validate_mask(mask)
    if mask.shape[0] not in (1, a.shape[0]) or mask.shape[-2:] != a.shape[-2:]:
        raise ValueError(
            f"mask must be [B or 1, 1, H, W] matching the images {tuple(a.shape)}, got {tuple(mask.shape)}"
        )
    mask = mask.to(device=a.device, dtype=torch.float64).expand(a.shape[0], -1, -1, -1)
    empty = (mask.flatten(1).sum(dim=1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"mask item {empty[0]} selects no pixels: the metric over it is undefined")
    return a.double(), b.double(), mask


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Per-item mean of [B,C,H,W] values over all channels of the pixels `mask` weights."""
    if mask is None:
        return values.flatten(1).mean(dim=1)
    weight = mask.expand_as(values)
    return (values * weight).flatten(1).sum(dim=1) / weight.flatten(1).sum(dim=1)


def l1_percent(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute difference x 100 per item (over the mask's pixels when given)."""
    a, b, mask = _check_pair(a, b, mask)
    return 100.0 * _masked_mean((a - b).abs(), mask)


def l2_percent(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared difference x 100 per item (over the mask's pixels when given)."""
    a, b, mask = _check_pair(a, b, mask)
    return 100.0 * _masked_mean((a - b).square(), mask)


def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per item (over the mask's pixels when given); ``inf`` when equal."""
    if not (isinstance(data_range, int | float) and math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    a, b, mask = _check_pair(a, b, mask)
    return _psnr_of_mse(_masked_mean((a - b).square(), mask), data_range)


def _psnr_of_mse(mse: Tensor, data_range: float = 1.0) -> Tensor:
    out = torch.full_like(mse, math.inf)
    nonzero = mse > 0
    out[nonzero] = 10.0 * torch.log10(data_range**2 / mse[nonzero])
    return out


def _gaussian_window(device: torch.device) -> Tensor:
    """scipy.ndimage's 1-D Gaussian kernel for sigma 1.5, truncate 3.5 (normalised, 11 taps)."""
    x = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return kernel / kernel.sum()


def _filter_matrix(n: int, device: torch.device) -> Tensor:
    """[n, n] matrix M with x @ M = the Gaussian filter of x along its last axis, scipy 'reflect' border.

    The border folds like d c b a | a b c d (period 2n, so any radius works); filtering as a banded
    matrix product is exact and far faster in float64 on CPU than a grouped convolution.
    """
    kernel = _gaussian_window(device)
    offsets = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, device=device)
    out_idx = torch.arange(n, device=device)[:, None].expand(n, offsets.numel())
    src = (out_idx + offsets).remainder(2 * n)
    src = torch.where(src >= n, 2 * n - 1 - src, src)
    matrix = torch.zeros(n, n, dtype=torch.float64, device=device)
    matrix.index_put_((src.flatten(), out_idx.flatten()), kernel.expand(n, -1).flatten(), accumulate=True)
    return matrix


def _gaussian_filter(x: Tensor) -> Tensor:
    """Separable Gaussian filter of [..., H, W] (float64) with scipy's 'reflect' border; same size out."""
    h, w = x.shape[-2:]
    return _filter_matrix(h, x.device).T @ x @ _filter_matrix(w, x.device)


def ssim_map(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """The per-pixel, per-channel SSIM map [B,C,H,W] (float64) of two images (see the module doc)."""
    side = 2 * _SSIM_RADIUS + 1
    if min(a.shape[-2:]) < side:
        raise ValueError(f"SSIM needs images of at least {side}x{side} pixels, got {tuple(a.shape[-2:])}")
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    batch, channels = a.shape[:2]
    # One filter call for the five moments: [B, 5C, H, W].
    moments = _gaussian_filter(torch.cat([a, b, a * a, b * b, a * b], dim=1))
    ux, uy, uxx, uyy, uxy = moments.view(batch, 5, channels, *a.shape[-2:]).unbind(dim=1)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """Structural similarity per item, for images in [0, 1] (data range 1; see the module doc)."""
    a, b, mask = _check_pair(a, b, mask)
    s = ssim_map(a, b)
    if mask is None:
        r = _SSIM_RADIUS
        return s[..., r:-r, r:-r].flatten(2).mean(dim=2).mean(dim=1)
    return _masked_mean(s.mean(dim=1, keepdim=True), mask)


_LUMA = (0.299, 0.587, 0.114)


def _luma(image: Tensor) -> Tensor:
    r, g, b = image.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _chroma(image: Tensor) -> Tensor:
    """BT.601 Cb, Cr (zero-centred) of RGB images [B, 3, H, W] -> [B, 2, H, W]."""
    if image.shape[1] != 3:
        raise ValueError(f"expected RGB images [B, 3, H, W], got {tuple(image.shape)}")
    y = _luma(image)
    return torch.cat([0.564 * (image[:, 2:3] - y), 0.713 * (image[:, 0:1] - y)], dim=1)


def chroma_psnr(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """PSNR in dB over the Cb, Cr planes (see the module doc); ``inf`` when the colours are equal."""
    a, b, mask = _check_pair(a, b, mask)
    return _psnr_of_mse(_masked_mean((_chroma(a) - _chroma(b)).square(), mask))


def luma_ssim(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """SSIM of the BT.601 luma only: 1 when the luminance is the same, whatever the colours."""
    a, b, mask = _check_pair(a, b, mask)
    if a.shape[1] != 3:
        raise ValueError(f"expected RGB images [B, 3, H, W], got {tuple(a.shape)}")
    return ssim(_luma(a), _luma(b), mask)


def colourfulness(image: Tensor, mask: Tensor | None = None) -> Tensor:
    """Hasler-Süsstrunk colourfulness M per item on the 0..255 scale (see the module doc)."""
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"expected RGB images [B, 3, H, W], got {tuple(image.shape)}")
    x, _, mask = _check_pair(image, image, mask)
    x = x * 255.0
    rg = (x[:, 0] - x[:, 1]).unsqueeze(1)
    yb = (0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]).unsqueeze(1)
    mean_rg, mean_yb = _masked_mean(rg, mask), _masked_mean(yb, mask)
    var_rg = _masked_mean((rg - mean_rg.view(-1, 1, 1, 1)).square(), mask)
    var_yb = _masked_mean((yb - mean_yb.view(-1, 1, 1, 1)).square(), mask)
    return (var_rg + var_yb).sqrt() + 0.3 * (mean_rg.square() + mean_yb.square()).sqrt()


RESIZE_MODES = ("lanczos", "bilinear", "crop")


def prepare_image(image: Tensor, size: int, resize: str = "lanczos") -> Tensor:
    """A [3,H,W] image (uint8, or float in [0,1]) as one evaluation image [1,3,S,S] in [0,1].

    ``lanczos`` (the default): the centre square resized to `size` with Pillow's Lanczos filter on 8-bit
    values, which keeps fine detail as a camera's own downscaler does; ``bilinear``: the same with an
    antialiased bilinear filter (smoother: it flatters denoisers, which then have less texture to keep);
    ``crop``: the centre `size` square at native scale, not resampled at all (smaller images: their
    whole centre square).
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an RGB image [3,H,W], got shape {tuple(image.shape)}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    x = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    h, w = x.shape[-2:]
    side = min(h, w, size) if resize == "crop" else min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[None, :, top : top + side, left : left + side]
    if side == size or resize == "crop":
        return x.clamp(0.0, 1.0)
    if resize == "bilinear":
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)
        return x.clamp(0.0, 1.0)
    resized = Image.fromarray(layout.to_u8(x)).resize((size, size), Image.Resampling.LANCZOS)
    return layout.from_u8(np.asarray(resized))
