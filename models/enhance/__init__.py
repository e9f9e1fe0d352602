"""Restoration and enhancement on core tensors with an `enhance_unet` model, in tiles of any size.

`enhance(model, image)` takes images [B, C, H, W] in [0, 1] (C = 3, or 4 with an alpha channel that
passes through; a one-channel image is enhanced as RGB, three equal channels) and returns the enhanced
images, float32 on the input's device.

* **Tiles.** An image larger than `tile` is cut into tiles of at most `tile` x `tile` that overlap
  by `overlap` pixels. Each tile is mirrored out to the size multiple the network needs, run, and
  cropped back; overlapping tiles are blended with linear ramps across the overlap, so no seam
  shows. Every tile gets the global context (colour matrix, FiLM) of the whole image, computed once
  from its thumbnail, so tiling changes only the local receptive field at tile borders.
* **Out of memory.** On a CUDA out-of-memory error the tile side is halved (down to `MIN_TILE`) and
  the image is done again, as ComfyUI's own upscale node does.
* **Strength and mask.** The result is `input + strength * mask * (network - input)`: strength 0 or
  a zero mask returns the input exactly, soft masks blend.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .. import layout, memory
from ..architecture import Accepts, SizeRule
from ..archs import spandrel
from ..archs.enhance import ARCHITECTURE
from ..ranges import STRENGTH
from ..runtime import prepared

log = logging.getLogger(__name__)

MIN_TILE = 64
ENHANCERS = (ARCHITECTURE.id, spandrel.ARCH_ID)
ACCEPTS = Accepts("a model for the 'enhance' task", tasks=("enhance",), archs=ENHANCERS)


class EnhanceModel(Protocol):
    """What `enhance` needs of a model: a `weights.LoadedModel` has all of it."""

    module: nn.Module
    arch: str
    config: Any


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length `tile` covering 0..size with at least `overlap` shared pixels."""
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    step = (size - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def _ramp(length: int, start: int, size: int, overlap: int, device: torch.device) -> Tensor:
    """Blend weights along one axis of a tile: rising over `overlap` px where a neighbour tile exists."""
    pos = torch.arange(length, device=device, dtype=torch.float32)
    w = torch.ones(length, device=device)
    if overlap > 0:
        if start > 0:
            w = torch.minimum(w, (pos + 1) / (overlap + 1))
        if start + length < size:
            w = torch.minimum(w, (length - pos) / (overlap + 1))
    return w


def _network(module: nn.Module, x: Tensor, dtype: torch.dtype) -> tuple[Callable[[Tensor], Tensor], SizeRule]:
    """What a tile goes through: [1, C, h, w] in [-1, 1] -> the same, and the sides the network needs.

    An `enhance_unet` gets the global context of the whole image `x`, computed once. A public 1x
    restorer (`spandrel`) works in [0, 1]; a grey one restores each colour channel as a grey image.
    """
    if isinstance(module, spandrel.SpandrelNet):
        grey = module.config.channels == 1

        def foreign(t: Tensor) -> Tensor:
            flat = t.reshape(-1, 1, *t.shape[-2:]) if grey else t
            out = module(layout.from_signed(flat).to(dtype)).float()
            return layout.to_signed(out).reshape(t.shape)

        return foreign, SizeRule(multiple=module.config.multiple, minimum=module.config.minimum)
    context = module.global_context(x.to(dtype))
    return (lambda t: module(t.to(dtype), context).float()), SizeRule(multiple=module.config.size_multiple)


def _run_padded(network: Callable[[Tensor], Tensor], x: Tensor, sizes: SizeRule) -> Tensor:
    h, w = x.shape[-2:]
    ph, pw = (math.ceil(max(n, sizes.minimum) / sizes.multiple) * sizes.multiple for n in (h, w))
    if (ph, pw) != (h, w):
        rows = layout.reflect_indices(0, ph, h, x.device)
        cols = layout.reflect_indices(0, pw, w, x.device)
        x = x.index_select(-2, rows).index_select(-1, cols)
    return network(x)[..., :h, :w]


def _enhance_item(
    module: nn.Module, x: Tensor, tile: int, overlap: int, dtype: torch.dtype, on_tile: Callable[[], None]
) -> Tensor:
    """One image [1, C, H, W] in [-1, 1] through the network in tiles; returns [1, C, H, W] in [-1, 1]."""
    network, sizes = _network(module, x, dtype)
    h, w = x.shape[-2:]
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    if len(ys) == 1 and len(xs) == 1:
        out = _run_padded(network, x, sizes)
        on_tile()
        return out
    acc = torch.zeros_like(x)
    weight = torch.zeros((1, 1, h, w), device=x.device)
    for y in ys:
        for x0 in xs:
            th, tw = min(tile, h - y), min(tile, w - x0)
            out = _run_padded(network, x[..., y : y + th, x0 : x0 + tw], sizes)
            wy = _ramp(th, y, h, overlap, x.device)
            wx = _ramp(tw, x0, w, overlap, x.device)
            wt = (wy[:, None] * wx[None, :])[None, None]
            acc[..., y : y + th, x0 : x0 + tw] += out * wt
            weight[..., y : y + th, x0 : x0 + tw] += wt
            on_tile()
    return acc / weight


def check_tiles(tile: int, overlap: int) -> None:
    """Refuse a tile side under `MIN_TILE` or an overlap outside [0, tile/4], with a message."""
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < MIN_TILE:
        raise ValueError(f"tile must be an int >= {MIN_TILE} (pixels), got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= tile // 4:
        raise ValueError(f"overlap must be an int in [0, tile/4] = [0, {tile // 4}], got {overlap!r}")


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


def enhance(
    model: EnhanceModel,
    image: Tensor,
    *,
    strength: float = 1.0,
    mask: Tensor | None = None,
    tile: int = 512,
    overlap: int = 32,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Enhance each image of the batch; see the module doc. `progress(done, total)` counts tiles."""
    if isinstance(image, Tensor) and image.ndim == 4 and image.shape[1] == 1 and _colour_channels(model) == 3:
        image = image.expand(-1, 3, -1, -1)
    _check(model, image, strength, mask, tile, overlap)
    out_device = image.device
    device = torch.device(device) if device is not None else out_device
    batch, h, w = image.shape[0], image.shape[-2], image.shape[-1]
    if device.type == "cpu":
        memory.require(peak_bytes(model, image.shape, tile), f"enhancing {batch} image(s) of {w}x{h} in tiles "
                       f"of {tile} px", "lower the tile size or the batch")
    colour, alpha = (image[:, :3], image[:, 3:]) if image.shape[1] == 4 else (image, None)
    if mask is not None:
        mask = mask.expand(batch, -1, -1, -1)
    if strength == 0.0:
        return image.float().clone()
    results = []
    with prepared(model.module, device, dtype) as module, torch.inference_mode():
        for i in range(batch):
            item = layout.to_signed(colour[i : i + 1].to(device=device, dtype=torch.float32))
            size = tile
            while True:
                per_item = tile_count(h, w, size, overlap)
                counter = itertools.count(i * per_item + 1)

                def on_tile(counter=counter, total=batch * per_item) -> None:
                    done = next(counter)
                    if progress is not None:
                        progress(done, total)

                try:
                    out = _enhance_item(module, item, size, overlap, dtype, on_tile)
                    break
                except torch.OutOfMemoryError:
                    if size // 2 < MIN_TILE:
                        raise
                    size //= 2
                    log.warning("out of memory: enhancing in tiles of %d px", size)
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
            out = layout.from_signed(out).to(out_device)
            results.append(out)
    net = torch.cat(results)
    base = colour.float()
    weight = torch.full((1, 1, 1, 1), float(strength), device=out_device)
    if mask is not None:
        weight = weight * mask.to(out_device).float()
    result = base + weight * (net - base)
    if alpha is not None:
        result = torch.cat([result, alpha.float()], dim=1)
    return result.contiguous()


FOREIGN_ACTIVATIONS = 12 * 64
"""Float maps per pixel assumed for a public restorer's activations on a tile (a dozen maps of 64 channels)."""


def peak_bytes(model: EnhanceModel, shape: tuple[int, ...], tile: int) -> int:
    """Estimated peak of `enhance` on the CPU: the results and one image's accumulators (float32), and the
    network's activations on one tile (after the 2x2 unshuffle, about a dozen maps of `base_channels`;
    with guides, also the filtered copies and their accumulators, about 6 images per guide; a public
    restorer: `FOREIGN_ACTIVATIONS` maps at full resolution)."""
    batch, channels, h, w = shape
    images = 4 * (3 * batch * channels * h * w + 2 * (channels + 1) * h * w)
    tile_px = min(tile, h) * min(tile, w)
    if model.arch == spandrel.ARCH_ID:
        return images + 4 * FOREIGN_ACTIVATIONS * tile_px
    config = model.config
    guides = 6 * (config.mixed - 1) * (channels + 1) * tile_px
    return images + 4 * (12 * (tile_px // 4 + 1) * config.base_channels + guides)


def _colour_channels(model: EnhanceModel) -> int | None:
    """Channels of the images a model restores: a grey public restorer does colour images channel by channel."""
    config = getattr(model, "config", None)
    if getattr(model, "arch", None) == spandrel.ARCH_ID:
        return 3
    return getattr(config, "channels", None)


def _check(model: EnhanceModel, image: Tensor, strength: float, mask: Tensor | None, tile: int, overlap: int) -> None:
    arch = getattr(model, "arch", None)
    if arch not in ENHANCERS or (arch == spandrel.ARCH_ID and model.config.task != "enhance"):
        raise ValueError(f"enhance needs an {ARCHITECTURE.id!r} model or a public 1x restorer (task 'enhance'), got "
                         f"architecture {arch!r}" + (f" ({model.config.architecture}, an inpainter)"
                                                     if arch == spandrel.ARCH_ID else ""))
    channels = _colour_channels(model)
    layout.validate_image(image, channels=(channels, 4) if channels == 3 else (1,))
    STRENGTH.check("strength", strength)
    check_tiles(tile, overlap)
    if mask is not None:
        layout.validate_mask_for(image, mask)
