"""Inpainting on core tensors: fill the hole of a mask with a Context Encoder.

`inpaint(model, image, mask)` takes images [B,3,H,W] in [0,1] and masks [B,1,H,W] (1 = hole) and
returns [B,3,H,W] in [0,1] where only the hole (and, with `feather`, a soft band around it) changed.
Each batch item is processed on its own crop around its hole:

* paper model (`context_encoder`): a square window around the hole is resized to the model's input
  size (128), its centre is filled with the port's mean colour and the predicted centre is resized
  back. The geometry is the port's: the hole fills the centre [36:92] of the 128 window (the port
  keeps a 4 px "overlapPred" band of real pixels) and the prediction covers [32:96], so the window is
  about 2.3x the hole and the prediction reaches a little past it. Windows that leave the image are
  filled by reflection.
* any-mask model (`context_encoder_anymask`): the hole's bounding box plus a `context` margin, padded
  to a multiple of `SHAPE_STEP` and of the model's stride (real pixels where the image has them,
  reflection beyond), goes in as image-with-hole-at-0 + mask.

`texture` (0..1) adds detail to any model's fill: the high frequencies (the fill minus its Gaussian
blur of sigma `TEXTURE_SIGMA`) of a patch fill (`classical.fill(..., "patch")`, texture copied
from around the hole) times `texture`, inside the hole. The network keeps the colours and the
layout; the copy brings the grain a network trained with L1 smooths away. On held-out photos it
trades a few tenths of a dB of hole PSNR for a much better perceptual distance (models/weights/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import Tensor, nn

from .. import layout, masks, memory
from ..architecture import Accepts
from ..archs import spandrel
from ..archs.context_encoder import ANYMASK, ARCHITECTURE, PAPER_FILL_RGB, PAPER_OVERLAP
from ..ranges import CONTEXT, STRENGTH, WORKING_SIZE
from ..runtime import prepared

ACCEPTS = Accepts("a model for the 'inpaint' task", tasks=("inpaint",),
                  archs=(ARCHITECTURE.id, ANYMASK.id, spandrel.ARCH_ID))

SHAPE_STEP = 32
"""Crops for the any-mask model are padded to a multiple of this (and of the stride): fewer distinct input
shapes, so the CPU backend's per-shape cache of compiled convolutions stays small on a long-running server."""
TEXTURE_SIGMA = 1.5
"""`texture` adds the patch fill minus its Gaussian blur of this sigma (px): its fine detail only."""
MIN_CONTEXT_PX = 32
"""The any-mask crop reaches at least this far past the hole's bounding box (where the image allows)."""


class InpaintModel(Protocol):
    """What `inpaint` needs of a model: a `weights.LoadedModel` has all of it."""

    module: nn.Module
    arch: str
    config: Any


def inpaint(
    model: InpaintModel,
    image: Tensor,
    mask: Tensor,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int, int], None] | None = None,
    feather: int = 0,
    context: float = 0.5,
    working_size: int | None = 1024,
    colour_match: bool = False,
    texture: float = 0.0,
) -> Tensor:
    """Fill the holes of `mask` (1 = hole) in `image`; pixels outside the hole are kept exactly.

    `mask` may have batch 1 (used for every image). Pixels > 0.5 make the hole's bounding box; an item
    without any comes back unchanged. Soft values are passed to the any-mask model as they are and
    are the blend weights of the composite. `feather` (px) blends the prediction into a band
    that far outside the hole; the hole itself is always fully replaced. `context` (any-mask model):
    margin around the hole's box as a fraction of its longer side, at least 32 px. `device`/`dtype`
    are used for the computation only; the result is float32 on the input's device. `progress(i, n)`
    is called after each item. `working_size` (any-mask model): a crop whose longer side exceeds it is
    downscaled to it for the network and the result upscaled back (None = always native resolution).
    `colour_match` shifts the fill's mean colour so its rim matches the known pixels around the hole.
    `texture` (0..1): how much of a patch fill's fine detail to add inside the hole (see the module doc).
    """
    _check_inputs(image, mask, feather, context)
    STRENGTH.check("texture", texture)
    if working_size is not None:
        WORKING_SIZE.check("working_size", working_size, " px or None")
    if model.arch not in ACCEPTS.archs or (model.arch == spandrel.ARCH_ID and model.config.task != "inpaint"):
        raise ValueError(
            f"inpaint needs a {ARCHITECTURE.id!r}, {ANYMASK.id!r} or public inpainting model (LaMa, MAT), got "
            f"architecture {model.arch!r}" + (f" ({model.config.architecture}, a restorer)"
                                              if model.arch == spandrel.ARCH_ID else "")
        )
    out_device = image.device
    batch = image.shape[0]
    mask = mask.expand(batch, -1, -1, -1)
    if model.arch == ARCHITECTURE.id:
        _check_context_left(mask)
    device = torch.device(device) if device is not None else out_device
    if device.type == "cpu" and model.arch == ANYMASK.id:
        memory.require(memory.crop_network_bytes(image.shape, working_size, model.config.base_channels),
                       f"inpainting {batch} image(s) of {image.shape[-1]}x{image.shape[-2]} at working size "
                       f"{working_size}", "lower the working size or the batch")
    results = []
    with prepared(model.module, device, dtype) as module, torch.inference_mode():
        for i in range(batch):
            item = image[i : i + 1].to(device=device, dtype=torch.float32)
            hole = mask[i : i + 1].to(device=device, dtype=torch.float32)
            filled = _inpaint_item(module, model, item, hole, dtype, feather, context, working_size, colour_match,
                                   texture)
            results.append(filled.to(out_device))
            if progress is not None:
                progress(i + 1, batch)
    return torch.cat(results).float()


def _check_inputs(image: Tensor, mask: Tensor, feather: int, context: float) -> None:
    layout.validate_image(image, channels=(3,))
    layout.validate_mask_for(image, mask)
    if isinstance(feather, bool) or not isinstance(feather, int) or feather < 0:
        raise ValueError(f"feather must be an int >= 0 (pixels), got {feather!r}")
    CONTEXT.check("context", context, " (fraction of the hole size)")


def _check_context_left(mask: Tensor) -> None:
    full = (mask > 0.5).flatten(1).all(dim=1).nonzero().flatten().tolist()
    if full:
        raise ValueError(
            f"mask item {full[0]} covers the whole image: the paper Context Encoder fills a hole from the pixels "
            "around it and has none here; use a context_encoder_anymask model"
        )


def _inpaint_item(
    module: nn.Module, model: InpaintModel, image: Tensor, mask: Tensor, dtype: torch.dtype, feather: int,
    context: float, working_size: int | None, colour_match: bool, texture: float,
) -> Tensor:
    if not bool((mask > 0.5).any()):
        return image.clone()
    (box,) = masks.bbox(mask)
    if model.arch == ARCHITECTURE.id:
        filled = _paper_fill(module, model.config, image, box, dtype)
    elif model.arch == spandrel.ARCH_ID:
        filled = _foreign_fill(module, model.config, image, mask, box, dtype, context, working_size)
    else:
        filled = _anymask_fill(module, model.config.stride, image, mask, box, dtype, context, working_size)
    if colour_match:
        filled = match_colour(image, filled, mask)
    if texture > 0:
        filled = add_texture(image, filled, mask, texture)
    m = mask if feather == 0 else torch.maximum(mask, masks.feather(mask, feather))
    return image * (1.0 - m) + filled * m




def _crop(t: Tensor, x: int, y: int, w: int, h: int) -> Tensor:
    """t[..., y:y+h, x:x+w], reflected where the window leaves the image."""
    cols = layout.reflect_indices(x, w, t.shape[-1], t.device)
    rows = layout.reflect_indices(y, h, t.shape[-2], t.device)
    return t.index_select(-1, cols).index_select(-2, rows)


def _paste(canvas: Tensor, patch: Tensor, x: int, y: int) -> Tensor:
    """A copy of canvas with patch written at (x, y); the parts outside the canvas are dropped."""
    out = canvas.clone()
    h, w = canvas.shape[-2:]
    ph, pw = patch.shape[-2:]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
    out[..., y0:y1, x0:x1] = patch[..., y0 - y : y1 - y, x0 - x : x1 - x]
    return out


def _resize(t: Tensor, size: int) -> Tensor:
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _paper_fill(
    module: nn.Module, config: Any, image: Tensor, box: tuple[int, int, int, int], dtype: torch.dtype
) -> Tensor:
    """The image with the paper model's prediction pasted over the hole's square (see module doc)."""
    x, y, w, h = box
    size = config.image_size
    # The filled centre covers 1/2 - 2*overlap of the window, i.e. 7/8 of the predicted centre, which
    # is half the window. Choose the predicted side `pred` (even) so the fill covers the hole + 1 px.
    fill_share = 1.0 - 4.0 * PAPER_OVERLAP
    pred = 2 * math.ceil((max(w, h) + 2) / fill_share / 2)
    px, py = round(x + w / 2 - pred / 2), round(y + h / 2 - pred / 2)
    window = _resize(layout.to_signed(_crop(image, px - pred // 2, py - pred // 2, 2 * pred, 2 * pred)), size)
    lo, hi = size // 4 + round(size * PAPER_OVERLAP), 3 * size // 4 - round(size * PAPER_OVERLAP)
    fill = torch.tensor(PAPER_FILL_RGB, device=image.device).view(1, 3, 1, 1)
    window[:, :, lo:hi, lo:hi] = layout.to_signed(fill)
    centre = module(window.to(dtype)).float()
    return _paste(image, layout.from_signed(_resize(centre, pred)), px, py)


def _anymask_fill(
    module: nn.Module, stride: int, image: Tensor, mask: Tensor, box: tuple[int, int, int, int],
    dtype: torch.dtype, context: float, working_size: int | None,
) -> Tensor:
    """The image with the any-mask model's output pasted over the hole's box plus context."""
    x, y, w, h = box
    height, width = image.shape[-2:]
    margin = max(MIN_CONTEXT_PX, math.ceil(context * max(w, h)))
    x0, y0 = max(x - margin, 0), max(y - margin, 0)
    x1, y1 = min(x + w + margin, width), min(y + h + margin, height)
    cw, ch = x1 - x0, y1 - y0
    step = math.lcm(stride, SHAPE_STEP)
    pw, ph = math.ceil(cw / step) * step, math.ceil(ch / step) * step
    left, top = (pw - cw) // 2, (ph - ch) // 2
    crop = layout.to_signed(_crop(image, x0 - left, y0 - top, pw, ph))
    hole = _crop(mask, x0 - left, y0 - top, pw, ph)
    net_in = torch.cat([crop * (1.0 - hole), hole], dim=1)
    scale = 1.0 if working_size is None else min(1.0, working_size / max(ph, pw))
    if scale < 1.0:
        size = (max(stride, round(ph * scale / stride) * stride), max(stride, round(pw * scale / stride) * stride))
        small = F.interpolate(net_in, size=size, mode="bilinear", align_corners=False, antialias=True)
        out = F.interpolate(module(small.to(dtype)).float(), size=(ph, pw), mode="bilinear", align_corners=False)
    else:
        out = module(net_in.to(dtype)).float()
    out = layout.from_signed(out[..., top : top + ch, left : left + cw])
    return _paste(image, out, x0, y0)


def _foreign_fill(
    module: nn.Module, config: spandrel.SpandrelConfig, image: Tensor, mask: Tensor, box: tuple[int, int, int, int],
    dtype: torch.dtype, context: float, working_size: int | None,
) -> Tensor:
    """The image with a public inpainter's (LaMa, MAT) output pasted over the hole's box plus context.

    The crop is the box plus the `context` margin (squared for networks that need square inputs, with
    reflection where it leaves the image), scaled so that its longer side is at least the network's
    minimum and at most `working_size`, and padded by reflection to the network's multiple. The network
    sees the hole as a binary mask (any covered pixel is filled) and works in [0, 1].
    """
    x, y, w, h = box
    height, width = image.shape[-2:]
    margin = max(MIN_CONTEXT_PX, math.ceil(context * max(w, h)))
    x0, y0 = max(x - margin, 0), max(y - margin, 0)
    cw, ch = min(x + w + margin, width) - x0, min(y + h + margin, height) - y0
    if config.square:
        side = max(cw, ch)
        x0, y0, cw, ch = x0 - (side - cw) // 2, y0 - (side - ch) // 2, side, side
    crop, hole = _crop(image, x0, y0, cw, ch), _crop(mask, x0, y0, cw, ch)
    longer = max(cw, ch)
    scale = 1.0 if working_size is None else min(1.0, working_size / longer)
    scale = max(scale, config.minimum / longer)
    size = (max(1, round(ch * scale)), max(1, round(cw * scale)))
    if size != (ch, cw):
        crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=True)
        hole = F.interpolate(hole, size=size, mode="bilinear", align_corners=False)
    step = config.multiple
    ph, pw = (math.ceil(max(n, config.minimum) / step) * step for n in size)
    if config.square:
        ph = pw = max(ph, pw)
    rows = layout.reflect_indices(0, ph, size[0], crop.device)
    cols = layout.reflect_indices(0, pw, size[1], crop.device)
    net_image = crop.index_select(-2, rows).index_select(-1, cols)
    net_hole = (hole.index_select(-2, rows).index_select(-1, cols) > 0).float()
    out = module(net_image.to(dtype), net_hole.to(dtype)).float()[..., : size[0], : size[1]]
    if size != (ch, cw):
        out = F.interpolate(out, size=(ch, cw), mode="bilinear", align_corners=False)
    return _paste(image, out.clamp(0.0, 1.0), x0, y0)


def add_texture(image: Tensor, filled: Tensor, mask: Tensor, amount: float) -> Tensor:
    """`filled` plus `amount` x the fine detail of a patch fill of `image`'s hole (mask > 0.5), inside the hole.

    A mask that covers the whole image leaves nothing to copy from: `filled` comes back as it is.
    """
    from .classical import fill

    hole = mask > 0.5
    if bool(hole.all()):
        return filled
    copied = fill(image, mask, "patch")
    size = 2 * math.ceil(3 * TEXTURE_SIGMA) + 1
    detail = copied - TF.gaussian_blur(copied, [size, size], [TEXTURE_SIGMA, TEXTURE_SIGMA])
    return torch.where(hole, (filled + amount * detail).clamp(0.0, 1.0), filled)


def match_colour(image: Tensor, filled: Tensor, mask: Tensor, rim: int | None = None) -> Tensor:
    """Shift the fill's colour so its inner rim matches the known pixels just outside the hole.

    The per-channel mean of `filled` over a band `rim` px inside the hole is moved onto the mean of
    `image` over a band `rim` px outside it (default: 4 % of the hole's longer side, at least 3 px);
    the shift applies to the whole fill, which removes colour seams without touching structure.
    Items whose hole has no known pixels around it are returned unchanged.
    """
    hole = (mask > 0.5).float()
    if rim is None:
        (_, _, w, h), = masks.bbox(hole)
        rim = max(3, round(0.04 * max(w, h)))
    outer = masks.grow(hole, rim) - hole
    inner = hole - masks.grow(hole, -rim)
    if float(outer.sum()) == 0 or float(inner.sum()) == 0:
        return filled
    known = (image * outer).sum(dim=(-2, -1)) / outer.sum()
    fill = (filled * inner).sum(dim=(-2, -1)) / inner.sum()
    shifted = filled + (known - fill)[..., None, None] * hole
    return shifted.clamp(0.0, 1.0)
