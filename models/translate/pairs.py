"""Synthetic image pairs made from single photos, for pix2pix training and scoring without real pairs.

A maker turns photos B [N, 3, H, W] in [0, 1] into the inputs A a translator learns to map back to B:

* ``colorize``: A = the luma of B, Y = 0.299 R + 0.587 G + 0.114 B (Rec. 601, as PIL's "L" mode),
  repeated in all three channels. The model learns grey -> colour.
* ``edges2photo``: A = dark edges on white. Y (as above) is blurred with a Gaussian (sigma 1, 7 taps,
  reflected borders); the Sobel gradient magnitude of that is divided by its 98th percentile in each
  image (at least 1e-3), clipped to [0, 1] and inverted (1 - m), then repeated in three channels. The
  model learns line drawing -> photo.

Those two make the input from the photo (the photo is the target). A *style* goes the other way: A is
the photo and B the photo restyled by a fixed filter, so a translator learns a one-style network:

* ``poster``: B = a pop-art poster of A. Each channel is blurred with a Gaussian (sigma
  `POSTER_SIGMA`) and rounded to `POSTER_LEVELS` levels; outlines darken it where the edge magnitude
  of ``edges2photo`` (before inversion) rises from `POSTER_EDGES[0]` to `POSTER_EDGES[1]`, down to
  1 - `POSTER_INK` of the colour on the strongest edges.

`make_pair(kind, photos)` returns (A, B) for every kind.

`fold_grey_input` rewrites a generator's first convolution so that it sees the luma of whatever it is
given: a colour photo and its greyscale give the same result. A colorizer trained on grey inputs
(equal channels) computes exactly the same function on grey inputs after folding, so a colorizer can
be fed a colour photo directly (no separate greyscale step in a workflow).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import layout

__all__ = [
    "EDGE_PERCENTILE", "EDGE_SIGMA", "KINDS", "LUMA", "STYLES", "SYNTHETIC", "edge_map", "fold_grey_input", "grey",
    "make_input", "make_pair", "poster",
]

LUMA = (0.299, 0.587, 0.114)
EDGE_SIGMA = 1.0
EDGE_PERCENTILE = 0.98
POSTER_SIGMA = 1.5
POSTER_LEVELS = 5
POSTER_EDGES = (0.25, 0.6)
POSTER_INK = 0.9


def luma(image: Tensor) -> Tensor:
    """[N, 1, H, W]: Rec. 601 luma of RGB images [N, 3, H, W] in [0, 1]."""
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * weights).sum(dim=1, keepdim=True).clamp(0.0, 1.0)


def grey(image: Tensor) -> Tensor:
    """The colorize input: luma repeated in three channels, [N, 3, H, W] in [0, 1]."""
    layout.validate_image(image, channels=(3,))
    return luma(image).expand(-1, 3, -1, -1).contiguous()


def _gaussian_blur(y: Tensor, sigma: float) -> Tensor:
    radius = max(1, round(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=y.dtype, device=y.device)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))


def edge_map(image: Tensor) -> Tensor:
    """The edges2photo input: dark edges on white, [N, 3, H, W] in [0, 1] (see the module doc)."""
    layout.validate_image(image, channels=(3,))
    if min(image.shape[-2:]) < 4:
        raise ValueError(f"edge_map needs images of at least 4x4 px, got {tuple(image.shape)}")
    y = _gaussian_blur(luma(image), EDGE_SIGMA)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=y.dtype, device=y.device)
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    gx = F.conv2d(y, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(y, sobel.t().reshape(1, 1, 3, 3))
    magnitude = torch.sqrt(gx**2 + gy**2)
    scale = torch.quantile(magnitude.flatten(1).float(), EDGE_PERCENTILE, dim=1).clamp(min=1e-3)
    m = (magnitude / scale.view(-1, 1, 1, 1).to(magnitude.dtype)).clamp(0.0, 1.0)
    return (1.0 - m).expand(-1, 3, -1, -1).contiguous()


def poster(image: Tensor) -> Tensor:
    """The poster style: posterised, blurred colours with dark outlines, [N, 3, H, W] in [0, 1] (see the module doc)."""
    layout.validate_image(image, channels=(3,))
    smooth = torch.cat([_gaussian_blur(image[:, c : c + 1], POSTER_SIGMA) for c in range(3)], dim=1)
    levels = POSTER_LEVELS - 1
    flat = torch.round(smooth.clamp(0.0, 1.0) * levels) / levels
    edges = 1.0 - edge_map(image)[:, :1]
    low, high = POSTER_EDGES
    ink = ((edges - low) / (high - low)).clamp(0.0, 1.0)
    return (flat * (1.0 - POSTER_INK * ink)).clamp(0.0, 1.0)


SYNTHETIC: dict[str, Callable[[Tensor], Tensor]] = {"colorize": grey, "edges2photo": edge_map}
STYLES: dict[str, Callable[[Tensor], Tensor]] = {"poster": poster}
KINDS = (*SYNTHETIC, *STYLES)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic pair kind {kind!r}; known: {', '.join(KINDS)}")


def make_input(kind: str, image: Tensor) -> Tensor:
    """A of the synthetic pair `kind` for photos B = `image` ([N, 3, H, W] in [0, 1]); not for styles."""
    _check_kind(kind)
    if kind in STYLES:
        raise ValueError(f"{kind!r} is a style: the photo is the input; use make_pair")
    return SYNTHETIC[kind](image)


def make_pair(kind: str, photos: Tensor) -> tuple[Tensor, Tensor]:
    """(A, B) of the synthetic pair `kind` for `photos` ([N, 3, H, W] in [0, 1]): what a translator maps from/to."""
    _check_kind(kind)
    if kind in STYLES:
        return photos, STYLES[kind](photos)
    return SYNTHETIC[kind](photos), photos


def fold_grey_input(generator: nn.Module) -> nn.Module:
    """A copy of `generator` whose first conv weights the three input channels by `LUMA`.

    The kernel over the channels is replaced by its sum times the luma weights: for inputs with equal
    channels (grey) the output is unchanged, and any RGB input gives the result of its luma.
    """
    folded = copy.deepcopy(generator)
    first = next((m for m in folded.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or first.in_channels != 3:
        found = "no Conv2d" if first is None else f"a first conv with {first.in_channels} input channels"
        raise ValueError(f"fold_grey_input needs a generator whose first conv takes 3 channels, got {found}")
    with torch.no_grad():
        total = first.weight.sum(dim=1, keepdim=True)
        weights = torch.tensor(LUMA, dtype=total.dtype, device=total.device).view(1, 3, 1, 1)
        first.weight.copy_(total * weights)
    return folded
