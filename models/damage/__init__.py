"""Old-photo damage: finding it (`detect`), and drawing it for training and tests (`render`).

`detect(model, image)` takes photos [B, C, H, W] in [0, 1] (C = 3, 1 or 4; a grey photo is seen as three
equal channels, an alpha channel is ignored) and returns the damage probability [B, 1, H, W] float32 on
the input's device, 1 = damaged (the MASK contract: 1 = fill). `to_mask(probability, threshold, grow)`
turns it into the 0/1 mask an inpainter fills.

Photos of any size are processed in tiles as `models.enhance` does (tiles of at most `tile` px that
overlap by at least `overlap` px, mirrored out to the network's size multiple, blended with linear
ramps, the tile halved on CUDA out-of-memory). Tiles start on multiples of the network's size multiple
and the network has no normalisation layers and no global branch, so a tile computes exactly what the
whole image would, except within the receptive field of its inner borders, where the ramps blend.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .. import layout, masks
from ..architecture import Accepts
from ..archs.damage import ARCHITECTURE
from ..enhance import MIN_TILE, _ramp, check_tiles, tile_count, tile_starts
from ..runtime import halving_tile_on_oom, prepared
from .render import DAMAGE, HEAVY, LOCAL_ONLY, DamageConfig, render

__all__ = ["ACCEPTS", "DAMAGE", "HEAVY", "LOCAL_ONLY", "DamageConfig", "detect", "render", "to_mask"]

ACCEPTS = Accepts("a damage detector (task 'detect')", tasks=("detect",), archs=(ARCHITECTURE.id,),
                  hints=(("enhance", "use GAN Enhance for it"), ("inpaint", "use GAN Inpaint for it")))


class DetectModel(Protocol):
    """What `detect` needs of a model: a `weights.LoadedModel` has all of it."""

    module: nn.Module
    arch: str
    config: Any


def _run_padded(module: nn.Module, x: Tensor, multiple: int, dtype: torch.dtype) -> Tensor:
    h, w = x.shape[-2:]
    ph, pw = max(multiple, math.ceil(h / multiple) * multiple), max(multiple, math.ceil(w / multiple) * multiple)
    if (ph, pw) != (h, w):
        rows = layout.reflect_indices(0, ph, h, x.device)
        cols = layout.reflect_indices(0, pw, w, x.device)
        x = x.index_select(-2, rows).index_select(-1, cols)
    return torch.sigmoid(module(x.to(dtype)).float()[..., :h, :w])


def _aligned_starts(size: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Tile starts on multiples of the network's size multiple, so every tile sees the pixel grid the whole image
    would (the 2x2 fold and the stride-2 levels line up): tiles of `tile` px from these starts still cover
    0..size with at least `overlap` shared pixels."""
    if size <= tile:
        return [0]
    return [start // multiple * multiple for start in tile_starts(size, tile - multiple, overlap)]


def _detect_item(module: nn.Module, x: Tensor, tile: int, overlap: int, dtype: torch.dtype,
                 on_tile: Callable[[], None]) -> Tensor:
    multiple = module.config.size_multiple
    h, w = x.shape[-2:]
    acc = torch.zeros((1, 1, h, w), device=x.device)
    weight = torch.zeros((1, 1, h, w), device=x.device)
    for y in _aligned_starts(h, tile, overlap, multiple):
        for x0 in _aligned_starts(w, tile, overlap, multiple):
            th, tw = min(tile, h - y), min(tile, w - x0)
            out = _run_padded(module, x[..., y : y + th, x0 : x0 + tw], multiple, dtype)
            wy, wx = _ramp(th, y, h, overlap, x.device), _ramp(tw, x0, w, overlap, x.device)
            wt = (wy[:, None] * wx[None, :])[None, None]
            acc[..., y : y + th, x0 : x0 + tw] += out * wt
            weight[..., y : y + th, x0 : x0 + tw] += wt
            on_tile()
    return acc / weight


def detect(
    model: DetectModel,
    image: Tensor,
    *,
    tile: int = 512,
    overlap: int = 32,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Damage probability [B, 1, H, W] of each photo; see the module doc. `progress(done, total)` counts tiles."""
    if getattr(model, "arch", None) != ARCHITECTURE.id:
        raise ValueError(f"detect needs a {ARCHITECTURE.id!r} model (task 'detect'), got architecture "
                         f"{getattr(model, 'arch', None)!r}")
    layout.validate_image(image, channels=(1, 3, 4))
    check_tiles(tile, overlap)
    colour = image[:, :3] if image.shape[1] == 4 else image
    if colour.shape[1] == 1:
        colour = colour.expand(-1, 3, -1, -1)
    out_device = image.device
    device = torch.device(device) if device is not None else out_device
    batch, h, w = image.shape[0], image.shape[-2], image.shape[-1]
    results = []
    with prepared(model.module, device, dtype) as module, torch.inference_mode():
        for i in range(batch):
            item = layout.to_signed(colour[i : i + 1].to(device=device, dtype=torch.float32))

            def run(size: int, i: int = i, item: Tensor = item) -> Tensor:
                total = batch * tile_count(h, w, size, overlap)
                counter = itertools.count(i * tile_count(h, w, size, overlap) + 1)

                def on_tile() -> None:
                    done = next(counter)
                    if progress is not None:
                        progress(done, total)

                return _detect_item(module, item, size, overlap, dtype, on_tile)

            out = halving_tile_on_oom(run, tile, MIN_TILE, "detecting damage")
            results.append(out.to(out_device))
    return torch.cat(results).contiguous()


def to_mask(probability: Tensor, threshold: float = 0.5, grow: int = 0) -> Tensor:
    """The 0/1 mask [B, 1, H, W] of pixels with probability >= threshold, grown by `grow` px (negative: shrunk)."""
    layout.validate_mask(probability, "probability")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be a number in (0, 1), got {threshold!r}")
    mask = (probability >= threshold).float()
    return masks.grow(mask, grow) if grow else mask
