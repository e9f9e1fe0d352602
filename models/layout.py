"""The tensor contract of the core, and the one place where layouts and value ranges are converted.

ComfyUI hands nodes IMAGE tensors shaped [B, H, W, C] and MASK tensors shaped [B, H, W] (or [H, W]),
all float in 0..1. The core works on images [B, C, H, W] and masks [B, 1, H, W]. Generators that end
in tanh work in [-1, 1]; the task functions call `to_signed` / `from_signed` themselves.

`validate_image`, `validate_mask` and `validate_mask_for` check the core contract; every core entry point
calls them, so a bad tensor gets the same message wherever it arrives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


def _describe(t: Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {t.dtype}"


def image_to_bchw(image: Tensor) -> Tensor:
    """ComfyUI IMAGE [B,H,W,C] -> core [B,C,H,W] float32 (a contiguous copy)."""
    if not isinstance(image, Tensor):
        raise TypeError(f"expected an IMAGE tensor [B,H,W,C], got {type(image).__name__}")
    if image.ndim == 3:  # a single image without batch dimension
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an IMAGE tensor [B,H,W,C] with C in (1, 3, 4), got {_describe(image)}")
    if 0 in image.shape:
        raise ValueError(f"IMAGE is empty: {_describe(image)}")
    return image.movedim(-1, 1).contiguous().float()


def bchw_to_image(image: Tensor) -> Tensor:
    """Core [B,C,H,W] -> ComfyUI IMAGE [B,H,W,C] float32, contiguous."""
    if image.ndim != 4:
        raise ValueError(f"expected a core image [B,C,H,W], got {_describe(image)}")
    return image.movedim(1, -1).contiguous().float()


def mask_to_b1hw(mask: Tensor) -> Tensor:
    """ComfyUI MASK [B,H,W] or [H,W] -> core [B,1,H,W] float32."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"expected a MASK tensor [B,H,W], got {type(mask).__name__}")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise ValueError(f"expected a MASK tensor [B,H,W] or [H,W], got {_describe(mask)}")
    if 0 in mask.shape:
        raise ValueError(f"MASK is empty: {_describe(mask)}")
    return mask.unsqueeze(1).contiguous().float()


def b1hw_to_mask(mask: Tensor) -> Tensor:
    """Core [B,1,H,W] -> ComfyUI MASK [B,H,W] float32."""
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"expected a core mask [B,1,H,W], got {_describe(mask)}")
    return mask[:, 0].contiguous().float()


def mask_to_image(mask: Tensor) -> Tensor:
    """Core [B,1,H,W] mask -> core [B,3,H,W] grey image, for previews."""
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"expected a core mask [B,1,H,W], got {_describe(mask)}")
    return mask.expand(-1, 3, -1, -1).contiguous()


def to_signed(image: Tensor) -> Tensor:
    """[0,1] -> [-1,1], the range of tanh generators."""
    return image * 2.0 - 1.0


def from_signed(image: Tensor) -> Tensor:
    """[-1,1] -> [0,1]; values outside are clamped (a tanh output never leaves the range)."""
    return ((image + 1.0) * 0.5).clamp(0.0, 1.0)


def to_u8(image: Tensor) -> np.ndarray:
    """One core image [1, C, H, W] in [0, 1] -> a uint8 array [H, W, C] (rounded), as Pillow and OpenCV take."""
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"expected one core image [1,C,H,W], got {_describe(image)}")
    return (image[0].permute(1, 2, 0).clamp(0, 1).detach().cpu().double().numpy() * 255.0 + 0.5).astype(np.uint8)


def from_u8(array: np.ndarray) -> Tensor:
    """A uint8 array [H, W, C] (Pillow, OpenCV) -> one core image [1, C, H, W] float in [0, 1]."""
    copy = np.array(array, dtype=np.uint8)  # Pillow's arrays are read-only; torch wants its own memory
    return torch.from_numpy(copy).permute(2, 0, 1)[None].float() / 255.0


def reflect_indices(start: int, length: int, size: int, device: torch.device | str) -> Tensor:
    """Indices start..start+length-1 mirrored into 0..size-1 (like 'reflect' padding, any distance)."""
    idx = torch.arange(start, start + length, device=device)
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= size, period - idx, idx)


def validate_image(image: Any, channels: Sequence[int] | None = None, name: str = "image") -> Tensor:
    """Check the core image contract: a float tensor [B, C, H, W], non-empty, finite, in [0, 1].

    ``channels`` optionally lists the allowed channel counts. Returns the image unchanged.
    """
    if not isinstance(image, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions [B, C, H, W], got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor in [0, 1], got dtype {image.dtype}")
    if image.numel() == 0:
        raise ValueError(f"{name} is empty: got shape {tuple(image.shape)}")
    if channels is not None and image.shape[1] not in channels:
        allowed = " or ".join(str(c) for c in channels)
        raise ValueError(f"{name} must have {allowed} channels (BCHW), got shape {tuple(image.shape)}")
    lo, hi = (float(v) for v in torch.aminmax(image))  # one pass; NaN makes both comparisons below fail
    if not (lo >= 0.0 and hi <= 1.0):
        if not bool(torch.isfinite(image).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        raise ValueError(f"{name} values must lie in [0, 1], got min {lo:g}, max {hi:g}")
    return image


def validate_mask(mask: Any, name: str = "mask") -> Tensor:
    """Check the core mask contract: a float tensor [B, 1, H, W], non-empty, finite, in [0, 1].

    Returns the mask unchanged.
    """
    if not isinstance(mask, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"{name} must have shape [B, 1, H, W], got shape {tuple(mask.shape)}")
    if not mask.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor in [0, 1], got dtype {mask.dtype}")
    if mask.numel() == 0:
        raise ValueError(f"{name} is empty: got shape {tuple(mask.shape)}")
    if not bool(torch.isfinite(mask).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(mask.min()), float(mask.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} values must lie in [0, 1], got min {lo:g}, max {hi:g}")
    return mask


def validate_mask_for(image: Tensor, mask: Any, name: str = "mask") -> Tensor:
    """`validate_mask`, and the mask fits `image`: batch 1 (used for every image) or the image batch, same H, W."""
    validate_mask(mask, name)
    if mask.shape[0] not in (1, image.shape[0]):
        raise ValueError(
            f"{name} batch must be 1 or equal the image batch {image.shape[0]}, got {name} shape {tuple(mask.shape)}"
        )
    if mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"{name} size must equal the image size {tuple(image.shape[-2:])} (H, W), got {tuple(mask.shape[-2:])}"
        )
    return mask


def clipped_share(image: Tensor) -> float:
    """Share of an image's colour values that are exactly 1.0 (white): high for clipped inputs."""
    colour = image[:, :3]
    return int(torch.count_nonzero(colour == 1.0)) / max(colour.numel(), 1)
