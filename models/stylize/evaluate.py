"""Score style transfer: how much of the content photo a stylised picture keeps, and how near it comes to the style.

Style transfer has no reference picture, so three measures stand in for one, each a mean over every
(content, style) pair. All of them use one fixed yardstick, the VGG-16 passed in (the pack uses the
anti-aliased VGG-16 of stlpips-pytorch, `models.pretrained.load_vgg16`), whatever encoder a model has:

* **content distance** ↓: the squared error between the relu4_1 features of the output and of the content
  photo, divided by the mean square of the content's (0 = the content's features; about 1 = as far from
  them as from nothing): how much of the photo's objects survive;
* **edge correlation** ↑: Pearson correlation of the Sobel gradient magnitudes of the two lumas (1 = the
  same edges, 0 = unrelated): a structure score that ignores colour and texture amplitude;
* **style distance** ↓: AdaIN's style loss made relative: for relu1_1, relu2_1, relu3_1 and relu4_1, the
  squared error of the per-channel means and standard deviations of output and style image, divided by the
  style's own squared statistics, averaged over the four layers (0 = the style's statistics).

A *method* is ``method(content, style) -> image``, both [1,3,H,W] in [0,1]. The baselines bracket a model:
``content`` returns the photo unchanged (content distance 0, edge correlation 1, and the style distance
of doing nothing), and ``colour transfer`` moves the photo's per-channel RGB mean and std onto the
painting's (`models.colour.match_colours`): the style's palette with every edge kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import colour
from ..archs.vgg import VGG16Features
from ..metrics import prepare_image

__all__ = ["CONTENT_LAYER", "SCORES", "STYLE_LAYERS", "Method", "Row", "adain_method", "colour_transfer",
           "content_baseline", "content_distance", "edge_correlation", "evaluate_style", "format_table",
           "one_style_method", "style_distance"]

CONTENT_LAYER = "relu4_1"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
SCORES = ("content_distance", "edge_correlation", "style_distance")
EPS = 1e-8
Method = Callable[[Tensor, Tensor], Tensor]
"""method(content [1,3,H,W], style [1,3,h,w], both in [0,1]) -> stylised [1,3,H,W] in [0,1]."""


def content_distance(vgg: VGG16Features, out: Tensor, content: Tensor) -> Tensor:
    """Per item: ||phi(out) - phi(content)||^2 / ||phi(content)||^2 at relu4_1 ([B])."""
    a, b = (vgg.features(x, (CONTENT_LAYER,))[CONTENT_LAYER] for x in (out, content))
    return (a - b).pow(2).mean(dim=(1, 2, 3)) / b.pow(2).mean(dim=(1, 2, 3)).clamp_min(EPS)


def _stats(features: Tensor) -> tuple[Tensor, Tensor]:
    flat = features.flatten(2)
    return flat.mean(dim=2), flat.std(dim=2, unbiased=False)


def style_distance(vgg: VGG16Features, out: Tensor, style: Tensor) -> Tensor:
    """Per item: relative squared error of per-channel means and stds at `STYLE_LAYERS`, averaged ([B])."""
    got, want = vgg.features(out, STYLE_LAYERS), vgg.features(style, STYLE_LAYERS)
    terms = []
    for name in STYLE_LAYERS:
        (mean_o, std_o), (mean_s, std_s) = _stats(got[name]), _stats(want[name])
        mean_s, std_s = mean_s.expand_as(mean_o), std_s.expand_as(std_o)
        error = (mean_o - mean_s).pow(2).sum(1) + (std_o - std_s).pow(2).sum(1)
        terms.append(error / (mean_s.pow(2).sum(1) + std_s.pow(2).sum(1)).clamp_min(EPS))
    return torch.stack(terms).mean(0)


def _gradient_magnitude(image: Tensor) -> Tensor:
    y = colour.luma(image)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=y.device, dtype=y.dtype)
    kernels = torch.stack([kx, kx.T])[:, None]
    g = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), kernels)
    return g.pow(2).sum(1).sqrt()


def edge_correlation(out: Tensor, content: Tensor) -> Tensor:
    """Per item: Pearson correlation of the Sobel gradient magnitudes of the two lumas ([B]; 0 if one is flat)."""
    a, b = (_gradient_magnitude(x).flatten(1) for x in (out, content))
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    denominator = (a.pow(2).sum(1) * b.pow(2).sum(1)).sqrt()
    return torch.where(denominator > EPS, (a * b).sum(1) / denominator.clamp_min(EPS), torch.zeros_like(denominator))


def content_baseline(content: Tensor, style: Tensor) -> Tensor:
    """Return the photo unchanged."""
    return content


def colour_transfer(content: Tensor, style: Tensor) -> Tensor:
    """The photo with the painting's per-channel RGB mean and std."""
    return colour.match_colours(content, style, "mean_std")


def adain_method(model: Any, alpha: float = 1.0, *, preserve_colour: bool = False) -> Method:
    """`models.stylize.adain_style` with a loaded AdaIN model at `alpha`."""
    from . import adain_style

    def run(content: Tensor, style: Tensor) -> Tensor:
        return adain_style(model, content, [style], alpha=alpha, preserve_colour=preserve_colour)

    return run


def one_style_method(model: Any) -> Method:
    """`models.stylize.one_style` with a loaded one-style model (the style image is not used)."""
    from . import one_style

    def run(content: Tensor, style: Tensor) -> Tensor:
        return one_style(model, content)

    return run


@dataclass
class Row:
    """One method: means over every (content, style) pair, and the per-pair values."""

    method: str
    pairs: int
    content_distance: float
    edge_correlation: float
    style_distance: float
    seconds_per_image: float
    per_pair: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def evaluate_style(
    methods: Mapping[str, Method],
    contents: Sequence[Tensor],
    styles: Sequence[Tensor],
    vgg: VGG16Features,
    size: int = 256,
    style_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> list[Row]:
    """Score every method on every (content, style) pair; images [3,H,W] uint8 or float, made square by Lanczos."""
    if not methods:
        raise ValueError("no methods to evaluate")
    if not contents or not styles:
        raise ValueError(f"need content photos and style images, got {len(contents)} and {len(styles)}")
    if min(size, style_size) < 32:
        raise ValueError(f"size and style size must be >= 32 px, got {size} and {style_size}")
    contents = [prepare_image(c, size) for c in contents]
    styles = [prepare_image(s, style_size) for s in styles]
    pairs = [(c, s) for c in contents for s in styles]
    total, done, rows = len(methods) * len(pairs), 0, []
    for name, method in methods.items():
        method(*pairs[0])  # warm-up, untimed
        values: dict[str, list[float]] = {k: [] for k in SCORES + ("seconds",)}
        for content, style in pairs:
            start = time.perf_counter()
            out = method(content, style)
            values["seconds"].append(time.perf_counter() - start)
            if not isinstance(out, Tensor) or out.shape != content.shape:
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"method {name!r} returned {got} for a content of shape {tuple(content.shape)}")
            out = out.float().clamp(0, 1)
            values["content_distance"].append(float(content_distance(vgg, out, content)[0]))
            values["edge_correlation"].append(float(edge_correlation(out, content)[0]))
            values["style_distance"].append(float(style_distance(vgg, out, style)[0]))
            done += 1
            if progress is not None:
                progress(done, total)
        means = {k: float(np.mean(values[k])) for k in SCORES}
        rows.append(Row(method=name, pairs=len(pairs), **means, seconds_per_image=float(np.mean(values["seconds"])),
                        per_pair=values))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table (one line per method)."""
    lines = ["| method | pairs | content distance ↓ | edge correlation ↑ | style distance ↓ | s / image |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.method} | {r.pairs} | {r.content_distance:.3f} | {r.edge_correlation:.3f} | "
                     f"{r.style_distance:.3f} | {r.seconds_per_image:.4f} |")
    return "\n".join(lines)
