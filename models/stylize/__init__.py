"""Style transfer on core tensors: a fast-style network (one style each) or AdaIN (any style image).

Both functions take images [B, C, H, W] in [0, 1] with C = 3 (RGB) or 1 (grayscale: the channel is
repeated to RGB, so the result is a colour image with 3 channels) and return [B, 3, H, W] float32 in
[0, 1] on the input's device: the networks' raw outputs are clamped. Any H and W the networks can
take work: the image is padded by reflection (bottom/right) to the network's stride and the result
cropped back. `device`/`dtype` are used for the computation only; `progress(i, n)` is called as work
completes.

* `fast_style(model, image)` runs a `transformer_net` model on the 0..255 scale. InstanceNorm sees
  the whole image, so by default there is one pass per image; `tile` processes large images in tiles
  with `overlap` px blended linearly. Tiles normalise with their own statistics, so a tiled result is
  close to, not equal to, the untiled one (the blending hides seams).
* `adain_style(model, content, styles)` runs an `adain` model: the content's relu4_1 features (and, for
  the skip decoder, its relu2_1 and relu3_1 features too) get the per-channel mean and std of the style
  features (with several styles, the weighted mean of their means and stds, which equals the
  reference's weighted sum of AdaIN results), `alpha` blends them with the content features, the
  decoder makes the image. `preserve_colour` keeps the content's
  chroma: only the luma (Y of BT.601 YCbCr) of the stylised image is used, which is the content plus
  the same luma change on every RGB channel. `mask` (B1HW, 1 = stylise) confines the change: the
  result is content * (1 - mask) + stylised * mask, so pixels where the mask is 0 are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import layout, translate
from ..architecture import Accepts
from ..archs import adain as adain_arch
from ..archs import transformer_net
from ..ranges import STRENGTH
from ..runtime import prepared

FAST_STYLE_SIZES = transformer_net.SIZES
ADAIN = adain_arch.ARCHITECTURE.id
FAST_STYLE = transformer_net.ARCHITECTURE.id
STYLE_TRANSFER = Accepts(
    f"an AdaIN model (architecture {ADAIN!r}, task 'stylize')", tasks=("stylize",), archs=(ADAIN,),
    hints=((FAST_STYLE, "use GAN Stylize for it"), ("translate", "use GAN Stylize for it")),
)
"""What `adain_style` takes."""
ONE_STYLE = Accepts(
    f"a fast-style model ({FAST_STYLE!r}, task 'stylize') or a CycleGAN/pix2pix generator (task 'translate')",
    tasks=("stylize", "translate"), archs=(FAST_STYLE, *translate.TRANSLATORS),
    hints=((ADAIN, "use GAN Style Transfer for it, with a style image"),),
)
"""What `one_style` takes: a network trained for one style."""
ADAIN_SIZES = adain_arch.SIZES
LUMA = (0.299, 0.587, 0.114)
"""BT.601 luma weights (the Y of JPEG's YCbCr); the Cb and Cr rows sum to 0, so adding the same value
to R, G and B changes Y only."""

Progress = Callable[[int, int], None]


class StyleModel(Protocol):
    """What the task functions need of a model: a `weights.LoadedModel` has all of it."""

    module: nn.Module
    arch: str
    config: Any


# --------------------------------------------------------------------------------------------------
# Fast neural style


class _Steps:
    """Counts finished steps and reports them to an optional progress callback."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def advance(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def fast_style(
    model: StyleModel,
    image: Tensor,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: Progress | None = None,
    tile: int | None = None,
    overlap: int = 32,
) -> Tensor:
    """Stylise `image` with a `transformer_net` model (see module doc); `tile` px squares, or whole images."""
    _require_arch(model, transformer_net.ARCHITECTURE.id, "fast_style")
    image = _as_rgb(layout.validate_image(image, channels=(1, 3)))
    _check_min_side(image, FAST_STYLE_SIZES.minimum, "image")
    _check_tiling(tile, overlap)
    out_device = image.device
    device = torch.device(device) if device is not None else out_device
    height, width = image.shape[-2:]
    tiles = [(y, x) for y in _tile_starts(height, tile, overlap) for x in _tile_starts(width, tile, overlap)]
    steps = _Steps(progress, image.shape[0] * len(tiles))
    results = []
    with prepared(model.module, device, dtype) as module, torch.inference_mode():
        for item in image.split(1):
            results.append(_fast_style_item(module, item, tiles, tile, overlap, device, dtype, steps))
    return torch.cat(results)


def _fast_style_item(
    module: nn.Module, item: Tensor, tiles: list[tuple[int, int]], tile: int | None, overlap: int,
    device: torch.device, dtype: torch.dtype, steps: _Steps,
) -> Tensor:
    """One image stylised tile by tile (one tile = the whole image without tiling), blended, in [0, 1]."""
    height, width = item.shape[-2:]
    th, tw = min(tile or height, height), min(tile or width, width)
    acc = torch.zeros_like(item, dtype=torch.float32)
    weight = torch.zeros_like(item[:, :1], dtype=torch.float32)
    for y, x in tiles:
        crop = item[..., y : y + th, x : x + tw].to(device=device, dtype=dtype) * 255.0
        styled = _run_padded(module, crop, FAST_STYLE_SIZES.multiple).float().to(item.device)
        w = _blend_weights(y, th, height, x, tw, width, overlap).to(item.device)
        acc[..., y : y + th, x : x + tw] += styled * w
        weight[..., y : y + th, x : x + tw] += w
        steps.advance()
    return (acc / weight / 255.0).clamp(0.0, 1.0)


def _check_tiling(tile: int | None, overlap: int) -> None:
    if tile is None:
        return
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 16:
        raise ValueError(f"tile must be None (whole image) or an int >= 16 (px), got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= tile // 2:
        raise ValueError(f"overlap must be an int in [0, tile // 2 = {tile // 2}] (px), got {overlap!r}")


def _tile_starts(size: int, tile: int | None, overlap: int) -> list[int]:
    """Tile offsets along one side: `tile - overlap` apart, the last one flush with the edge."""
    if tile is None or size <= tile:
        return [0]
    return [*range(0, size - tile, tile - overlap), size - tile]


def _ramp(start: int, length: int, size: int, overlap: int) -> Tensor:
    """1-D blend weights of a tile: linear ramps (never 0) over `overlap` px on sides with a neighbour."""
    w = torch.ones(length)
    if overlap == 0:
        return w
    ramp = (torch.arange(min(overlap, length)) + 0.5) / overlap
    if start > 0:
        w[: ramp.numel()] = torch.minimum(w[: ramp.numel()], ramp)
    if start + length < size:
        w[-ramp.numel() :] = torch.minimum(w[-ramp.numel() :], ramp.flip(0))
    return w


def _blend_weights(y: int, h: int, height: int, x: int, w: int, width: int, overlap: int) -> Tensor:
    return (_ramp(y, h, height, overlap)[:, None] * _ramp(x, w, width, overlap)[None, :])[None, None]


# --------------------------------------------------------------------------------------------------
# AdaIN


def adain_style(
    model: StyleModel,
    content: Tensor,
    styles: Sequence[Tensor],
    weights: Sequence[float] | None = None,
    alpha: float = 1.0,
    *,
    preserve_colour: bool = False,
    mask: Tensor | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: Progress | None = None,
    names: Sequence[str] | None = None,
) -> Tensor:
    """Stylise `content` with an `adain` model in the style of `styles` (see module doc).

    Each style is a batch of 1 (used for every content item) or of the content's batch size; styles
    may differ in size from the content and from each other. `weights` (default: equal) are
    non-negative and are normalised to sum 1. `alpha` in [0, 1]: 0 gives the decoder's
    reconstruction of the content, 1 the full style. `mask` has batch 1 or the content's batch and
    the content's size. `names` name the styles in error messages (default `styles[0]`, ...).
    """
    _require_arch(model, adain_arch.ARCHITECTURE.id, "adain_style")
    content = _as_rgb(layout.validate_image(content, channels=(1, 3), name="content"))
    _check_min_side(content, ADAIN_SIZES.minimum, "content")
    styles = _check_styles(styles, content.shape[0], names)
    mix = _check_weights(weights, len(styles))
    _check_alpha(alpha)
    if mask is not None:
        _check_mask(mask, content)
    out_device = content.device
    device = torch.device(device) if device is not None else out_device
    total = sum(s.shape[0] for s in styles) + content.shape[0]
    steps = _Steps(progress, total)
    with prepared(model.module, device, dtype) as module, torch.inference_mode():
        targets = _style_targets(module, styles, mix, device, dtype, steps)
        results = []
        for i, item in enumerate(content.split(1)):
            k = 0 if targets[0][0].shape[0] == 1 else i
            stats = [(mean[k : k + 1], std[k : k + 1]) for mean, std in targets]
            styled = _adain_item(module, item.to(device), stats, alpha, dtype)
            results.append(styled.to(out_device))
            steps.advance()
    out = torch.cat(results).clamp(0.0, 1.0)
    if preserve_colour:
        out = keep_chroma(out, content.float())
    if mask is not None:
        m = mask.to(out_device, torch.float32).expand(content.shape[0], -1, -1, -1)
        out = content.float() * (1.0 - m) + out * m
    return out


def _style_stats(
    module: nn.Module, style: Tensor, device: torch.device, dtype: torch.dtype, steps: _Steps
) -> list[tuple[Tensor, Tensor]]:
    """Per-channel mean and std of one style batch's features at each level the decoder reads, each
    [B, C, 1, 1] float32."""
    per_item = []
    for item in style.split(1):
        levels = module.decoder_inputs(item.to(device=device, dtype=dtype))
        per_item.append([adain_arch.mean_std(f.float()) for f in levels])
        steps.advance()
    return [(torch.cat([it[level][0] for it in per_item]), torch.cat([it[level][1] for it in per_item]))
            for level in range(len(per_item[0]))]


def _style_targets(
    module: nn.Module, styles: list[Tensor], mix: list[float], device: torch.device, dtype: torch.dtype,
    steps: _Steps,
) -> list[tuple[Tensor, Tensor]]:
    """The styles' statistics mixed by weight, per decoder level [1 or B, C, 1, 1] (a batch-1 style broadcasts)."""
    targets: list[tuple[Tensor, Tensor]] = []
    for w, style in zip(mix, styles, strict=True):
        weighted = [(w * mean, w * std) for mean, std in _style_stats(module, style, device, dtype, steps)]
        if targets:
            weighted = [(m0 + m1, s0 + s1) for (m0, s0), (m1, s1) in zip(targets, weighted, strict=True)]
        targets = weighted
    return targets


def _adain_item(
    module: nn.Module, item: Tensor, stats: list[tuple[Tensor, Tensor]], alpha: float, dtype: torch.dtype
) -> Tensor:
    """One content image stylised (raw decoder output), padded to the encoder's stride and cropped back."""
    height, width = item.shape[-2:]
    padded = _pad_to(item.float(), ADAIN_SIZES.multiple)
    levels = [f.float() for f in module.decoder_inputs(padded.to(dtype))]
    feats = adain_arch.stylised(levels, stats, alpha)
    return module.decode([f.to(dtype) for f in feats]).float()[..., :height, :width]


def keep_chroma(styled: Tensor, content: Tensor) -> Tensor:
    """`content` with the luma (BT.601 Y) of `styled`: the chroma (Cb, Cr) of content, clamped to [0, 1]."""
    luma = torch.tensor(LUMA, device=styled.device).view(1, 3, 1, 1)
    change = ((styled - content) * luma).sum(dim=1, keepdim=True)
    return (content + change).clamp(0.0, 1.0)


def _check_styles(styles: Any, batch: int, names: Sequence[str] | None = None) -> list[Tensor]:
    if isinstance(styles, Tensor) or not isinstance(styles, Sequence) or len(styles) == 0:
        raise ValueError(
            f"styles must be a non-empty list of style images [B, C, H, W], got {type(styles).__name__}"
            + (" (wrap a single style image in a list)" if isinstance(styles, Tensor) else "")
        )
    checked = []
    for j, style in enumerate(styles):
        name = names[j] if names is not None and j < len(names) else f"styles[{j}]"
        style = _as_rgb(layout.validate_image(style, channels=(1, 3), name=name))
        _check_min_side(style, ADAIN_SIZES.minimum, name)
        if style.shape[0] not in (1, batch):
            raise ValueError(
                f"{name} has batch {style.shape[0]}; a style batch must be 1 (one style for all) or equal the "
                f"content batch {batch}"
            )
        checked.append(style)
    return checked


def _check_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """The style weights normalised to sum 1 (equal weights when None)."""
    if weights is None:
        return [1.0 / count] * count
    values = list(weights)
    if len(values) != count:
        raise ValueError(f"got {len(values)} style weights for {count} styles; give one weight per style")
    if any(isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0 for w in values):
        raise ValueError(f"style weights must be finite numbers >= 0, got {values}")
    total = float(sum(values))
    if total <= 0:
        raise ValueError(f"style weights must not all be 0, got {values}")
    return [float(w) / total for w in values]


def _check_alpha(alpha: Any) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1] (0 = content, 1 = full style), got {alpha!r}")


def _check_mask(mask: Tensor, content: Tensor) -> None:
    layout.validate_mask(mask)
    if mask.shape[0] not in (1, content.shape[0]):
        raise ValueError(
            f"mask batch must be 1 or equal the content batch {content.shape[0]}, got mask shape {tuple(mask.shape)}"
        )
    if mask.shape[-2:] != content.shape[-2:]:
        raise ValueError(
            f"mask size must equal the content size {tuple(content.shape[-2:])} (H, W), got {tuple(mask.shape[-2:])}"
        )


# --------------------------------------------------------------------------------------------------
# Shared helpers


def _require_arch(model: StyleModel, arch: str, function: str) -> None:
    if model.arch != arch:
        raise ValueError(f"{function} needs a {arch!r} model, got architecture {model.arch!r}")


def _as_rgb(image: Tensor) -> Tensor:
    """Grayscale [B, 1, H, W] repeated to RGB; RGB unchanged."""
    return image.expand(-1, 3, -1, -1) if image.shape[1] == 1 else image


def _check_min_side(image: Tensor, minimum: int, name: str) -> None:
    if min(image.shape[-2:]) < minimum:
        raise ValueError(
            f"{name} is {image.shape[-2]}x{image.shape[-1]} px; this model needs at least {minimum}x{minimum}"
        )


def _pad_to(x: Tensor, multiple: int) -> Tensor:
    """Reflection-pad bottom/right so H and W are multiples of `multiple`."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x


def _run_padded(module: nn.Module, x: Tensor, multiple: int) -> Tensor:
    """module(x) on x padded to `multiple`, cropped back to x's size."""
    height, width = x.shape[-2:]
    return module(_pad_to(x, multiple))[..., :height, :width]




def one_style(
    model: StyleModel,
    image: Tensor,
    *,
    strength: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: Progress | None = None,
    tile: int | None = None,
    overlap: int = 32,
) -> Tensor:
    """Stylise with a one-style network, then `blend` by `strength`.

    A TransformerNet runs through `fast_style` (tiles of `tile` px; 0 or None = whole images), a
    pix2pix/CycleGAN generator through `translate.translate` (whole images). A one-channel result comes
    back as three equal channels.
    """
    if model.arch not in ONE_STYLE.archs:
        raise ValueError(f"one_style needs one of {', '.join(map(repr, ONE_STYLE.archs))}, got architecture "
                         f"{model.arch!r}")
    if model.arch == FAST_STYLE:
        styled = fast_style(model, image, device=device, dtype=dtype, progress=progress, tile=tile or None,
                            overlap=overlap)
    else:
        styled = translate.translate(model, image, device=device, dtype=dtype, progress=progress)
    out = blend(image, styled, strength)
    return out.expand(-1, 3, -1, -1) if out.shape[1] == 1 else out


def blend(a: Tensor, b: Tensor, strength: float) -> Tensor:
    """`a` moved towards `b` by `strength` in [0, 1]: exactly `a` at 0 and exactly `b` at 1 (torch.lerp).

    Shapes broadcast (e.g. a grayscale input [B, 1, H, W] against a stylised [B, 3, H, W]); the result is
    float32 on `a`'s device.
    """
    STRENGTH.check("strength", strength, " (0 = the input, 1 = the full effect)")
    a, b = torch.broadcast_tensors(a.float(), b.to(a.device, torch.float32))
    return torch.lerp(a, b, float(strength))
