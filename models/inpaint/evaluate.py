"""Score inpainting methods on held-out photos: the Context Encoder paper's metrics plus PSNR / SSIM.

A *fill* is any function ``fill(image, mask) -> image`` on one item (image [1,3,H,W] in [0,1], mask
[1,1,H,W] with 1 = hole). `evaluate_inpainting` gives every fill the same images and the same
masks and reports, per (method, mask kind), the mean over images of

* L1 % and L2 %: mean absolute / squared error over the hole x 100 (Pathak et al. 2016, Table 1),
* PSNR over the hole and over the whole image, SSIM over the whole image (`models.metrics`),
* ST-LPIPS over the hole's bounding box (grown to at least `MIN_BOX` px a side), when a perceptual
  distance is given (`models.perceptual`): PSNR rewards a blurry mean, this rewards plausible texture,
* seconds per image: wall time of the fill call only (each method first runs once, untimed, on the
  first image so one-off start-up costs are not counted).

The metrics are computed on what a fill returns, unchanged; every fill here keeps the known pixels
exactly (the classical ones composite their uint8 / float result into the hole).

Images: each is centre-cropped to a square and resized to ``size`` (`models.metrics.prepare_image`:
Lanczos by default, or antialiased bilinear, or a native-scale crop).
Masks, identical for every method: ``center`` is the paper's centre square (64 of 128),
``blocks`` are `masks.random_blocks` and ``irregular`` `masks.irregular(preset="medium")`; the
random kinds are seeded by ``seed`` and the image's index (item i of a batch drawn with ``seed``),
so image i keeps its masks whatever the number of images.

Baselines: `mean_fill` (the hole painted with the mean colour of the known pixels: the trivial
lower bar), `torch_fills` (the pack's own harmonic and push-pull blur fills, `models.inpaint.classical`)
and `classical_fills` (OpenCV Telea and Navier-Stokes, scikit-image biharmonic). The
classical ones import OpenCV / scikit-image lazily: they are test extras, not core dependencies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import masks, metrics
from ..metrics import prepare_image

__all__ = [
    "MASK_KINDS",
    "Fill",
    "Row",
    "classical_fills",
    "evaluate_inpainting",
    "format_table",
    "make_masks",
    "mean_fill",
    "model_fill",
    "torch_fills",
]

Fill = Callable[[Tensor, Tensor], Tensor]
"""fill(image [1,3,H,W] in [0,1], mask [1,1,H,W] with 1 = hole) -> filled image [1,3,H,W]."""
Distance = Callable[[Tensor, Tensor], Tensor]
"""distance(a, b) of images [B,3,H,W] in [0,1] -> [B] (lower is closer)."""

MIN_BOX = 32
"""The smallest side of the box ST-LPIPS is measured on (the VGG-16 needs some context)."""

MASK_KINDS = ("center", "blocks", "irregular")
CLASSICAL_RADIUS = 3
"""cv2.inpaint's neighbourhood radius (px) for Telea and Navier-Stokes."""
_INSTALL_HINT = "pip install opencv-python-headless scikit-image"


@dataclass
class Row:
    """One method on one mask kind: means over the images, and every per-image value."""

    method: str
    mask: str
    images: int
    hole_percent: float
    l1_percent: float
    l2_percent: float
    psnr_hole: float
    psnr_image: float
    ssim_image: float
    seconds_per_image: float
    per_image: dict[str, list[float]] = field(default_factory=dict)
    stlpips_box: float | None = None  # mean ST-LPIPS over the hole's bounding box (None: not measured)

    def to_dict(self) -> dict[str, Any]:
        """The row as plain JSON-able data (non-finite numbers as the strings "inf" / "nan")."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# fills


def _composite(image: Tensor, mask: Tensor, filled: Tensor) -> Tensor:
    hole = (mask > 0.5).to(image.dtype)
    return image * (1.0 - hole) + filled.to(image.dtype) * hole


def mean_fill(image: Tensor, mask: Tensor) -> Tensor:
    """The hole painted with the mean colour of the known pixels (the trivial baseline)."""
    known = (mask <= 0.5).to(image.dtype)
    if not bool(known.any()):
        raise ValueError("mean_fill: the mask covers the whole image, no known pixels to average")
    colour = (image * known).sum(dim=(-2, -1), keepdim=True) / known.sum(dim=(-2, -1), keepdim=True)
    return _composite(image, mask, colour.expand_as(image))


def _import_classical() -> tuple[Any, Any]:
    try:
        import cv2
        from skimage.restoration import inpaint_biharmonic
    except ImportError as exc:
        raise RuntimeError(
            f"the classical inpainting baselines need OpenCV and scikit-image ({exc}); install them with: "
            f"{_INSTALL_HINT}"
        ) from exc
    return cv2, inpaint_biharmonic


def _to_hwc(image: Tensor) -> np.ndarray:
    if image.shape[0] != 1:
        raise ValueError(f"a fill takes one image [1,3,H,W], got shape {tuple(image.shape)}")
    return image[0].permute(1, 2, 0).detach().cpu().double().numpy()


def _from_hwc(array: np.ndarray, like: Tensor) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].to(like.device, like.dtype)


def _cv2_fill(cv2: Any, flag: int) -> Fill:
    def fill(image: Tensor, mask: Tensor) -> Tensor:
        rgb = np.clip(np.rint(_to_hwc(image) * 255.0), 0, 255).astype(np.uint8)
        hole = ((mask[0, 0] > 0.5).cpu().numpy() * 255).astype(np.uint8)
        out = cv2.inpaint(rgb, hole, CLASSICAL_RADIUS, flag).astype(np.float64) / 255.0
        return _composite(image, mask, _from_hwc(out, image))

    return fill


def _biharmonic_fill(inpaint_biharmonic: Callable[..., np.ndarray]) -> Fill:
    def fill(image: Tensor, mask: Tensor) -> Tensor:
        hole = (mask[0, 0] > 0.5).cpu().numpy()
        out = np.clip(inpaint_biharmonic(_to_hwc(image), hole, channel_axis=-1), 0.0, 1.0)
        return _composite(image, mask, _from_hwc(out, image))

    return fill


def classical_fills() -> dict[str, Fill]:
    """OpenCV Telea and Navier-Stokes (radius 3, on the uint8 image, exact hole) and skimage biharmonic.

    Raises RuntimeError naming ``pip install opencv-python-headless scikit-image`` when either
    package is missing.
    """
    cv2, inpaint_biharmonic = _import_classical()
    return {
        "cv2 Telea": _cv2_fill(cv2, cv2.INPAINT_TELEA),
        "cv2 Navier-Stokes": _cv2_fill(cv2, cv2.INPAINT_NS),
        "skimage biharmonic": _biharmonic_fill(inpaint_biharmonic),
    }


def torch_fills() -> dict[str, Fill]:
    """The pack's own classical fills (`models.inpaint.classical`): harmonic, push-pull blur and patch, no extras."""
    from . import classical

    return {f"torch {method}": partial(classical.fill, method=method) for method in ("harmonic", "blur", "patch")}


def model_fill(
    model: Any, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32, texture: float = 0.0,
) -> Fill:
    """A fill that runs `models.inpaint.inpaint` with a loaded inpainting model (`weights.LoadedModel`)."""
    from . import ACCEPTS, inpaint

    name = getattr(model, "path", "") or "model"
    refusal = ACCEPTS.refusal(getattr(model, "arch", None), getattr(model, "task", None), "evaluation", name)
    if refusal is not None:
        raise ValueError(refusal)

    def fill(image: Tensor, mask: Tensor) -> Tensor:
        return inpaint(model, image, mask, device=device, dtype=dtype, texture=texture)

    return fill


# --------------------------------------------------------------------------------------------
# data


def make_masks(kind: str, size: int, count: int, seed: int) -> Tensor:
    """The `count` evaluation masks [count,1,size,size] of one kind (item i belongs to image i)."""
    if kind == "center":
        return masks.center_box(size, size, count)
    if kind == "blocks":
        return masks.random_blocks(size, size, count, seed)
    if kind == "irregular":
        return masks.irregular(size, size, count, seed, preset="medium")
    raise ValueError(f"unknown mask kind {kind!r}; known: {', '.join(MASK_KINDS)}")


# --------------------------------------------------------------------------------------------
# evaluation


_METRICS = ("l1_percent", "l2_percent", "psnr_hole", "psnr_image", "ssim_image", "seconds")


def hole_box(mask: Tensor, minimum: int = MIN_BOX) -> tuple[slice, slice]:
    """Rows and columns of the bounding box of the hole of `mask` [1,1,H,W], grown about its centre to at
    least `minimum` px a side (within the image); the whole image when there is no hole."""
    h, w = mask.shape[-2:]
    ys, xs = torch.nonzero(mask[0, 0] > 0.5, as_tuple=True)
    if ys.numel() == 0:
        return slice(0, h), slice(0, w)

    def span(low: int, high: int, size: int) -> slice:
        side = max(high - low, min(minimum, size))
        start = min(max(0, (low + high) // 2 - side // 2), size - side)
        return slice(start, start + side)

    return span(int(ys.min()), int(ys.max()) + 1, h), span(int(xs.min()), int(xs.max()) + 1, w)


def _score(method: str, original: Tensor, filled: Tensor, mask: Tensor) -> dict[str, float]:
    if not isinstance(filled, Tensor) or filled.shape != original.shape:
        got = tuple(filled.shape) if isinstance(filled, Tensor) else type(filled).__name__
        raise ValueError(f"fill {method!r} returned {got} for an image of shape {tuple(original.shape)}")
    filled = filled.float()
    if not bool(torch.isfinite(filled).all()) or float(filled.min()) < 0.0 or float(filled.max()) > 1.0:
        raise ValueError(f"fill {method!r} returned values outside [0, 1] (or not finite)")
    hole = (mask > 0.5).float()
    return {
        "l1_percent": float(metrics.l1_percent(original, filled, hole)[0]),
        "l2_percent": float(metrics.l2_percent(original, filled, hole)[0]),
        "psnr_hole": float(metrics.psnr(original, filled, hole)[0]),
        "psnr_image": float(metrics.psnr(original, filled)[0]),
        "ssim_image": float(metrics.ssim(original, filled)[0]),
    }


def evaluate_inpainting(
    fills: Mapping[str, Fill],
    images: Sequence[Tensor],
    mask_kinds: Sequence[str] = MASK_KINDS,
    size: int = 128,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    *,
    resize: str = "lanczos",
    perceptual: Distance | None = None,
) -> list[Row]:
    """Score every fill on every image with every mask kind; rows ordered by mask kind, then method.

    `images` are [3,H,W] tensors (uint8, or float in [0,1]) of any size; see the module doc for the
    crops, masks and metrics. `progress(done, total)` is called after each fill call; `perceptual`
    (e.g. `models.perceptual.stlpips`) fills each row's ``stlpips_box``.
    """
    if not fills:
        raise ValueError("no fills to evaluate")
    if not images:
        raise ValueError("no images to evaluate on")
    if size < 16:
        raise ValueError(f"size must be >= 16 px (SSIM needs 11x11 and the masks some room), got {size}")
    for kind in mask_kinds:
        make_masks(kind, 16, 1, seed)  # unknown kinds fail before any work
    prepared = [prepare_image(image, size, resize) for image in images]
    total, done = len(fills) * len(mask_kinds) * len(prepared), 0
    rows = []
    for kind in mask_kinds:
        kind_masks = make_masks(kind, size, len(prepared), seed)
        for name, fill in fills.items():
            fill(prepared[0], kind_masks[:1])  # warm-up, untimed
            values: dict[str, list[float]] = {k: [] for k in _METRICS}
            for i, image in enumerate(prepared):
                mask = kind_masks[i : i + 1]
                start = time.perf_counter()
                filled = fill(image, mask)
                values["seconds"].append(time.perf_counter() - start)
                for key, value in _score(name, image, filled, mask).items():
                    values[key].append(value)
                if perceptual is not None:
                    box = (..., *hole_box(mask))
                    values.setdefault("stlpips_box", []).append(
                        float(perceptual(filled[box].float().clamp(0, 1), image[box])[0]))
                done += 1
                if progress is not None:
                    progress(done, total)
            means = {k: float(np.mean(v)) for k, v in values.items()}
            rows.append(Row(
                method=name, mask=kind, images=len(prepared),
                hole_percent=100.0 * float(masks.coverage(kind_masks).mean()),
                l1_percent=means["l1_percent"], l2_percent=means["l2_percent"], psnr_hole=means["psnr_hole"],
                psnr_image=means["psnr_image"], ssim_image=means["ssim_image"],
                seconds_per_image=means["seconds"], per_image=values, stlpips_box=means.get("stlpips_box"),
            ))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table (one line per method and mask kind)."""
    head = (
        "| mask | hole % | method | L1 % ↓ | L2 % ↓ | PSNR hole dB ↑ | PSNR image dB ↑ | SSIM image ↑ | "
        "ST-LPIPS box ↓ | s / image |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        distance = "" if r.stlpips_box is None else f"{r.stlpips_box:.4f}"
        lines.append(
            f"| {r.mask} | {r.hole_percent:.1f} | {r.method} | {r.l1_percent:.2f} | {r.l2_percent:.2f} | "
            f"{r.psnr_hole:.2f} | {r.psnr_image:.2f} | {r.ssim_image:.4f} | {distance} | "
            f"{r.seconds_per_image:.4f} |"
        )
    return "\n".join(lines)
