"""Masked, instruction-conditioned edits on core tensors with an `edit` model.

`edit(model, image, mask, instruction, ...)` takes images [B,3,H,W] in [0,1] and masks [B or 1,1,H,W]
(1 = the region) and returns [B,3,H,W] in [0,1]. Instructions (those the model's config lists):

* `remove`: fill the region from its surroundings (the object under the mask disappears);
* `recolour`: turn the region's dominant colour into `colour` (RGB in [0,1]), keeping its shading;
* `relight`: brighten (`amount` > 0) or darken (< 0) the region, amount in [-1, 1];
* `harmonise_paste`: paste `reference` into the region (whole, resized to the image; or, with
  `reference_mask`, its masked cut-out scaled into the region's box) and match its colour and light
  to the scene; without a reference the region is harmonised as it is (already pasted). Models
  whose config has `harmonise_transfer` first move the region's colour statistics onto a ring of
  context around it (`colour.match_to_ring`) and correct what that leaves;
* `blur_background`: blur everything outside the mask (the subject), amount in [0, 1] scales the
  blur (sigma = amount x 3 % of the shorter side of what the network sees).

Parameters an instruction does not use are ignored: `colour` outside `recolour`, `amount` outside
`relight` / `blur_background`, `reference` and `reference_mask` outside `harmonise_paste`,
`inpainter` outside `remove`.

`remove` with an `inpainter` (any model `models.inpaint.inpaint` takes: the pack's any-mask Context
Encoder, a paper Context Encoder, LaMa, MAT) fills the region with that model, through the very call
GAN Inpaint makes with the same `context` and `working_size` (soft mask values are its blend
weights), and `strength` scales the change: at 1, remove is GAN Inpaint's result with that model.
Without one, the edit network fills the region itself.

Outside the mask the result is the input bit for bit, for every instruction except
`blur_background`, which acts outside by definition and keeps the inside bit for bit instead.
Soft mask values are blend weights; `strength` (0..1) scales every change (0 = the input; for
`harmonise_paste` with a reference, 0 = the plain paste).

Like `models.inpaint`, each item is processed on a crop around its region: the mask's bounding box
plus a `context` margin (at least 32 px), reflected where it leaves the image and padded to the
model's stride; `blur_background` uses the whole image. A crop longer than `working_size` is
downscaled for the network; the *change* the network makes is upscaled and added to the
full-resolution crop (so recolour and relight keep the photo's detail), except for `remove` and
`blur_background`, whose output replaces the pixels (a fill and a blur have no detail to keep).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import inpaint, layout, masks, memory
from ..architecture import Accepts
from ..archs.edit import ARCHITECTURE, INSTRUCTIONS, OUTSIDE_INSTRUCTIONS, condition_vector, network_input
from ..colour import match_to_ring
from ..ranges import CONTEXT, STRENGTH, WORKING_SIZE
from ..runtime import prepared

ACCEPTS = Accepts("a model for the 'edit' task", tasks=("edit",), archs=(ARCHITECTURE.id,))
MIN_CONTEXT_PX = 32
AMOUNT_INSTRUCTIONS = ("relight", "blur_background")
"""The instructions that use `amount`; the others ignore it."""
REPLACING_INSTRUCTIONS = ("remove", "blur_background")
"""The network output replaces the pixels; for the others its change is added to the full-resolution crop."""


class EditModel(Protocol):
    """What `edit` needs of a model: a `weights.LoadedModel` has all of it."""

    module: nn.Module
    arch: str
    config: Any


def parse_colour(value: str | Sequence[float] | Tensor) -> Tensor:
    """'#RRGGBB' / 'RRGGBB' / '#RGB', or three numbers in [0,1] -> tensor [3] in [0,1]."""
    if isinstance(value, str):
        text = value.strip().removeprefix("#")
        if len(text) == 3:
            text = "".join(ch * 2 for ch in text)
        if len(text) != 6 or any(ch not in "0123456789abcdefABCDEF" for ch in text):
            raise ValueError(f"colour must be a hex string like '#1E90FF' or '#F80', got {value!r}")
        return torch.tensor([int(text[i : i + 2], 16) / 255.0 for i in (0, 2, 4)])
    colour = torch.as_tensor(value, dtype=torch.float32).flatten()
    if colour.numel() != 3 or not bool(torch.isfinite(colour).all()) or colour.min() < 0 or colour.max() > 1:
        raise ValueError(f"colour must be three numbers in [0, 1] (R, G, B), got {value!r}")
    return colour


def edit(
    model: EditModel,
    image: Tensor,
    mask: Tensor,
    instruction: str,
    *,
    colour: str | Sequence[float] | Tensor | None = None,
    amount: float = 0.0,
    strength: float = 1.0,
    reference: Tensor | None = None,
    reference_mask: Tensor | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int, int], None] | None = None,
    context: float = 0.5,
    working_size: int | None = 256,
    inpainter: inpaint.InpaintModel | None = None,
) -> Tensor:
    """Apply `instruction` to the masked region of every image (see the module doc)."""
    if instruction not in AMOUNT_INSTRUCTIONS:
        amount = 0.0
    _check(model, image, mask, instruction, amount, strength, context, working_size)
    if instruction == "remove" and inpainter is not None:
        return _remove_with(inpainter, image, mask, strength, context, working_size, device, dtype, progress)
    if (torch.device(device) if device is not None else image.device).type == "cpu":
        memory.require(memory.crop_network_bytes(image.shape, working_size, model.config.base_channels),
                       f"editing {image.shape[0]} image(s) of {image.shape[-1]}x{image.shape[-2]} at working size "
                       f"{working_size}", "lower the working size or the batch")
    rgb = None
    if instruction == "recolour":
        if colour is None:
            raise ValueError("recolour needs a target colour (hex string like '#1E90FF' or three numbers in [0, 1])")
        rgb = parse_colour(colour).view(1, 3)
    batch = image.shape[0]
    mask = mask.expand(batch, -1, -1, -1)
    source = image
    if instruction == "harmonise_paste" and reference is not None:
        source, mask = paste(image, mask, reference, reference_mask)
    out_device = image.device
    device = torch.device(device) if device is not None else out_device
    results = []
    with prepared(model.module, device, dtype) as module, torch.inference_mode():
        for i in range(batch):
            item = source[i : i + 1].to(device=device, dtype=torch.float32)
            region = mask[i : i + 1].to(device=device, dtype=torch.float32)
            edited = _edit_item(module, model.config, item, region, instruction, rgb, amount, dtype, context,
                                working_size)
            results.append(_composite(item, edited, region, instruction,
                                      strength).to(out_device))
            if progress is not None:
                progress(i + 1, batch)
    return torch.cat(results).float()


def _remove_with(
    inpainter: inpaint.InpaintModel, image: Tensor, mask: Tensor, strength: float, context: float,
    working_size: int | None, device: torch.device | str | None, dtype: torch.dtype,
    progress: Callable[[int, int], None] | None,
) -> Tensor:
    """`remove` by an inpainting model: GAN Inpaint's fill (already blended by the mask), scaled by strength."""
    filled = inpaint.inpaint(inpainter, image, mask, device=device, dtype=dtype, progress=progress,
                             context=context, working_size=working_size)
    if strength == 1.0:
        return filled
    return torch.where(filled != image, image + strength * (filled - image), image).float()


def _check(model: EditModel, image: Tensor, mask: Tensor, instruction: str, amount: float, strength: float,
           context: float, working_size: int | None) -> None:
    if model.arch not in ACCEPTS.archs:
        raise ValueError(f"edit needs an {ARCHITECTURE.id!r} model, got architecture {model.arch!r}")
    if instruction not in INSTRUCTIONS:
        raise ValueError(f"unknown instruction {instruction!r}; known: {', '.join(INSTRUCTIONS)}")
    model.config.index(instruction)  # raises for an instruction this model was not trained for
    layout.validate_image(image, channels=(3,))
    layout.validate_mask_for(image, mask)
    lo = -1.0 if instruction == "relight" else 0.0
    if not (isinstance(amount, int | float) and lo <= amount <= 1.0):
        raise ValueError(f"amount for {instruction} must be in [{lo:g}, 1], got {amount!r}")
    STRENGTH.check("strength", strength)
    CONTEXT.check("context", context, " (fraction of the region's size)")
    if working_size is not None:
        WORKING_SIZE.check("working_size", working_size, " px or None")


def paste(
    image: Tensor, mask: Tensor, reference: Tensor, reference_mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """(image with the reference pasted into the mask, the mask of the pasted pixels).

    Without `reference_mask` the reference (batch 1 or B) is resized to the image and shows through
    the mask. With it, each item's cut-out (the reference inside its mask's bounding box) is resized
    into the box of the item's mask and pasted where both masks are set.
    """
    layout.validate_image(reference, channels=(3,), name="reference")
    batch = image.shape[0]
    if reference.shape[0] not in (1, batch):
        raise ValueError(
            f"reference batch must be 1 or equal the image batch {batch}, got shape {tuple(reference.shape)}"
        )
    reference = reference.to(image).expand(batch, -1, -1, -1)
    if reference_mask is None:
        if reference.shape[-2:] != image.shape[-2:]:
            reference = F.interpolate(reference, size=image.shape[-2:], mode="bilinear", align_corners=False,
                                      antialias=True).clamp(0.0, 1.0)
        return image * (1 - mask) + reference * mask, mask
    layout.validate_mask(reference_mask, name="reference_mask")
    if reference_mask.shape[0] not in (1, batch) or reference_mask.shape[-2:] != reference.shape[-2:]:
        raise ValueError(
            f"reference_mask must be [1 or {batch}, 1, H, W] with the reference's size {tuple(reference.shape[-2:])}, "
            f"got {tuple(reference_mask.shape)}"
        )
    reference_mask = reference_mask.to(image).expand(batch, -1, -1, -1)
    pasted, placed = image.clone(), torch.zeros_like(mask)
    for i in range(batch):
        if not bool((reference_mask[i] > 0.5).any()) or not bool((mask[i] > 0.5).any()):
            continue
        (rx, ry, rw, rh), = masks.bbox(reference_mask[i : i + 1])
        (x, y, w, h), = masks.bbox(mask[i : i + 1])
        cut = torch.cat([reference[i : i + 1, :, ry : ry + rh, rx : rx + rw],
                         reference_mask[i : i + 1, :, ry : ry + rh, rx : rx + rw]], dim=1)
        cut = F.interpolate(cut, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0.0, 1.0)
        weight = cut[:, 3:] * mask[i : i + 1, :, y : y + h, x : x + w]
        placed[i : i + 1, :, y : y + h, x : x + w] = weight
        box = pasted[i : i + 1, :, y : y + h, x : x + w]
        pasted[i : i + 1, :, y : y + h, x : x + w] = box * (1 - weight) + cut[:, :3] * weight
    return pasted, placed


def _crop(t: Tensor, x: int, y: int, w: int, h: int) -> Tensor:
    """t[..., y:y+h, x:x+w], reflected where the window leaves the image."""
    cols = layout.reflect_indices(x, w, t.shape[-1], t.device)
    rows = layout.reflect_indices(y, h, t.shape[-2], t.device)
    return t.index_select(-1, cols).index_select(-2, rows)


def _window(mask: Tensor, instruction: str, context: float) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the part of the image the network sees; None when nothing is to be done."""
    height, width = mask.shape[-2:]
    if instruction in OUTSIDE_INSTRUCTIONS:
        return 0, 0, width, height
    if not bool((mask > 0).any()):
        return None
    (x, y, w, h), = masks.bbox((mask > 0).float())
    margin = max(MIN_CONTEXT_PX, math.ceil(context * max(w, h)))
    return max(x - margin, 0), max(y - margin, 0), min(x + w + margin, width), min(y + h + margin, height)


def _edit_item(
    module: nn.Module, config: Any, image: Tensor, mask: Tensor, instruction: str, colour: Tensor | None,
    amount: float, dtype: torch.dtype, context: float, working_size: int | None,
) -> Tensor:
    """The item with the network's edit applied over its window (not yet composited with the mask)."""
    window = _window(mask, instruction, context)
    if window is None:
        return image.clone()
    x0, y0, x1, y1 = window
    stride = config.stride
    cw, ch = x1 - x0, y1 - y0
    pw, ph = math.ceil(cw / stride) * stride, math.ceil(ch / stride) * stride
    left, top = (pw - cw) // 2, (ph - ch) // 2
    crop = _crop(image, x0 - left, y0 - top, pw, ph)
    region = _crop(mask, x0 - left, y0 - top, pw, ph)
    if instruction == "harmonise_paste" and config.harmonise_transfer:
        crop = match_to_ring(crop, region)
    scale = 1.0 if working_size is None else min(1.0, working_size / max(ph, pw))
    small, small_region = crop, region
    if scale < 1.0:
        size = (max(stride, round(ph * scale / stride) * stride), max(stride, round(pw * scale / stride) * stride))
        small = F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=True)
        small_region = F.interpolate(region, size=size, mode="bilinear", align_corners=False, antialias=True)
    condition = condition_vector(config, [instruction], colour, torch.tensor([float(amount)]))
    x = network_input(config, layout.to_signed(small), small_region.clamp(0, 1), condition, [instruction])
    out = layout.from_signed(module(x.to(dtype)).float())
    if instruction in REPLACING_INSTRUCTIONS:
        edited = out if scale == 1.0 else F.interpolate(out, size=(ph, pw), mode="bilinear", align_corners=False)
    else:
        change = out - small
        if scale < 1.0:
            change = F.interpolate(change, size=(ph, pw), mode="bilinear", align_corners=False)
        edited = (crop + change).clamp(0.0, 1.0)
    result = image.clone()
    result[..., y0:y1, x0:x1] = edited[..., top : top + ch, left : left + cw]
    return result


def _composite(image: Tensor, edited: Tensor, mask: Tensor, instruction: str, strength: float) -> Tensor:
    """Blend by the mask (its complement for blur_background) x strength; untouched pixels stay exact."""
    weight = (1.0 - mask) if instruction in OUTSIDE_INSTRUCTIONS else mask
    weight = weight * strength
    blended = image * (1.0 - weight) + edited * weight
    return torch.where(weight > 0, blended, image)
