"""Score edit models on held-out synthetic pairs, against the untouched input and a naive baseline.

For every instruction and every image the pair is made by `edit_pairs.make_pair` (the training
recipe) from the image centre-cropped and resized to `size` (`evaluate.prepare_image`), with one
mask from the `blocks`, `irregular` and `blobs` generators (cycled by image index) and a generator
seeded by (seed, instruction, image index): every method sees the same pairs, and image i keeps its
pair whatever the number of images. A *method* maps a pair to an edited image [1,3,H,W]:

* the model: `models.edit.edit` with the pair's mask, colour and amount (no reference: the pair's
  input already holds the pasted region for `harmonise_paste`); for `remove` also with an
  inpainting model (`model_method(..., inpainter=...)`), as GAN Edit removes;
* `input (untouched)`: the pair's input as it is;
* the naive baseline of the instruction:
  - remove: OpenCV Telea inpainting (radius 3) of the region;
  - recolour: HSV hue shift - the region's hue set to the colour's hue, saturation and value kept;
  - relight: one global gain 2 ** (1.5 x amount) over the region in linear light (no falloff, clipped);
  - harmonise_paste: per-channel mean / std transfer from a ring of context around the region;
  - blur_background: a plain Gaussian blur (the same sigma) outside the mask.

Scores against the pair's target: PSNR over the region the instruction acts on (the mask, or its
complement for blur_background), PSNR and SSIM over the whole image, seconds per image and, when a
perceptual distance is given (`models.perceptual.stlpips`), ST-LPIPS over the region's bounding box
(grown to at least 32 px a side; the whole image for blur_background).
OpenCV is a test extra, imported lazily with a message that says how to install it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import colour, metrics
from ..archs.edit import INSTRUCTIONS, OUTSIDE_INSTRUCTIONS
from ..inpaint.evaluate import hole_box
from ..metrics import prepare_image
from . import pairs as edit_pairs

Method = Callable[[edit_pairs.EditPair], Tensor]
EVAL_MASK_KINDS = ("blocks", "irregular", "blobs")
_INSTALL_HINT = "pip install opencv-python-headless"


@dataclass
class EditRow:
    instruction: str
    method: str
    images: int
    psnr_region: float
    psnr_image: float
    ssim_image: float
    seconds_per_image: float
    per_image: dict[str, list[float]] = field(default_factory=dict)
    stlpips_region: float | None = None  # mean ST-LPIPS over the region's box (None: not measured)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def make_eval_pairs(images: Sequence[Tensor], instruction: str, size: int = 128, seed: int = 0,
                    resize: str = "lanczos") -> list:
    """The evaluation pairs of one instruction (see the module doc)."""
    if instruction not in INSTRUCTIONS:
        raise ValueError(f"unknown instruction {instruction!r}; known: {', '.join(INSTRUCTIONS)}")
    pairs = []
    for i, image in enumerate(images):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + INSTRUCTIONS.index(instruction) * 10_007 + i)
        kind = EVAL_MASK_KINDS[i % len(EVAL_MASK_KINDS)]
        mask = edit_pairs.draw_masks(1, size, (kind,), generator)
        pairs.append(edit_pairs.make_pair(instruction, prepare_image(image, size, resize), mask, generator))
    return pairs


# --------------------------------------------------------------------------------------------------
# methods


def untouched(pair: edit_pairs.EditPair) -> Tensor:
    return pair.input


def model_method(model: Any, instruction: str, *, device: torch.device | str | None = None,
                 inpainter: Any = None) -> Method:
    """`models.edit.edit` with the pair's mask, colour and amount (and, for remove, `inpainter`)."""
    from . import edit

    if getattr(model, "task", None) != "edit" or getattr(model, "arch", None) != "edit":
        raise ValueError(f"expected an edit model (architecture 'edit', task 'edit'), got {model.arch!r} for "
                         f"{getattr(model, 'task', None)!r}")

    def run(pair: edit_pairs.EditPair) -> Tensor:
        colour = None if pair.colour is None else pair.colour[0]
        return edit(model, pair.input, pair.mask, instruction, colour=colour, amount=pair.amount, device=device,
                    inpainter=inpainter)

    return run


def telea(pair: edit_pairs.EditPair) -> Tensor:
    try:
        import cv2
    except ImportError as exc:
        raise RuntimeError(f"the remove baseline needs OpenCV ({exc}); install it with: {_INSTALL_HINT}") from exc
    rgb = np.clip(np.rint(pair.input[0].permute(1, 2, 0).double().numpy() * 255), 0, 255).astype(np.uint8)
    hole = ((pair.mask[0, 0] > 0.5).numpy() * 255).astype(np.uint8)
    out = torch.from_numpy(cv2.inpaint(rgb, hole, 3, cv2.INPAINT_TELEA).astype(np.float32) / 255.0)
    m = (pair.mask > 0.5).float()
    return pair.input * (1 - m) + out.permute(2, 0, 1)[None] * m


def rgb_to_hsv(rgb: Tensor) -> Tensor:
    """[B,3,H,W] in [0,1] -> H, S, V in [0,1]."""
    r, g, b = rgb.unbind(dim=1)
    value, _ = rgb.max(dim=1)
    low, _ = rgb.min(dim=1)
    delta = value - low
    safe = delta.clamp(min=1e-8)
    hue = torch.where(value == r, ((g - b) / safe) % 6, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(delta > 0, hue / 6, torch.zeros_like(hue))
    sat = torch.where(value > 0, delta / value.clamp(min=1e-8), torch.zeros_like(value))
    return torch.stack([hue, sat, value], dim=1)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    hue, sat, value = hsv.unbind(dim=1)
    k = torch.stack([(5 + hue * 6) % 6, (3 + hue * 6) % 6, (1 + hue * 6) % 6], dim=1)
    return value[:, None] - value[:, None] * sat[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def hsv_hue_shift(pair: edit_pairs.EditPair) -> Tensor:
    hsv = rgb_to_hsv(pair.input)
    target_hue = rgb_to_hsv(pair.colour.view(1, 3, 1, 1))[:, 0]
    shifted = hsv_to_rgb(torch.stack([target_hue.expand_as(hsv[:, 0]), hsv[:, 1], hsv[:, 2]], dim=1))
    return pair.input * (1 - pair.mask) + shifted.clamp(0, 1) * pair.mask


def global_gain(pair: edit_pairs.EditPair) -> Tensor:
    linear = edit_pairs.srgb_to_linear(pair.input) * 2.0 ** (edit_pairs.RELIGHT_STOPS * pair.amount)
    out = edit_pairs.linear_to_srgb(linear).clamp(0, 1)
    return torch.where(pair.mask > 0, pair.input * (1 - pair.mask) + out * pair.mask, pair.input)


def mean_std_transfer(pair: edit_pairs.EditPair) -> Tensor:
    return colour.match_to_ring(pair.input, (pair.mask > 0.5).float())


def plain_blur(pair: edit_pairs.EditPair) -> Tensor:
    sigma = edit_pairs.blur_sigma(pair.amount, *pair.input.shape[-2:])
    blurred = edit_pairs.gaussian_blur(pair.input, sigma)
    return pair.input * pair.mask + blurred * (1 - pair.mask)


BASELINES: dict[str, tuple[str, Method]] = {
    "remove": ("cv2 Telea", telea),
    "recolour": ("HSV hue shift", hsv_hue_shift),
    "relight": ("global gain", global_gain),
    "harmonise_paste": ("mean/std transfer", mean_std_transfer),
    "blur_background": ("Gaussian blur", plain_blur),
}


# --------------------------------------------------------------------------------------------------
# evaluation


def evaluate_edits(
    methods: Mapping[str, Mapping[str, Method]],
    images: Sequence[Tensor],
    size: int = 128,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    perceptual: Callable[[Tensor, Tensor], Tensor] | None = None,
    resize: str = "lanczos",
) -> list[EditRow]:
    """Score `methods[instruction][name]` on the pairs of each instruction; rows by instruction, then method.

    `perceptual` (e.g. `models.perceptual.stlpips`) fills each row's ``stlpips_region``; `resize` is how
    the images become `size` squares (`metrics.prepare_image`)."""
    if not images:
        raise ValueError("no images to evaluate on")
    if size < 16:
        raise ValueError(f"size must be >= 16 px, got {size}")
    total = sum(len(m) for m in methods.values()) * len(images)
    done, rows = 0, []
    for instruction, named in methods.items():
        pairs = make_eval_pairs(images, instruction, size, seed, resize)
        for name, method in named.items():
            method(pairs[0])  # warm-up, untimed
            values: dict[str, list[float]] = {"psnr_region": [], "psnr_image": [], "ssim_image": [], "seconds": []}
            for pair in pairs:
                start = time.perf_counter()
                out = method(pair).float()
                values["seconds"].append(time.perf_counter() - start)
                if out.shape != pair.target.shape:
                    raise ValueError(f"{name} returned {tuple(out.shape)} for a pair of {tuple(pair.target.shape)}")
                region = 1.0 - pair.mask if instruction in OUTSIDE_INSTRUCTIONS else pair.mask
                values["psnr_region"].append(float(metrics.psnr(pair.target, out, region)[0]))
                values["psnr_image"].append(float(metrics.psnr(pair.target, out)[0]))
                values["ssim_image"].append(float(metrics.ssim(pair.target, out)[0]))
                if perceptual is not None:
                    box = (..., slice(None), slice(None)) if instruction in OUTSIDE_INSTRUCTIONS else \
                        (..., *hole_box(pair.mask))
                    values.setdefault("stlpips_region", []).append(
                        float(perceptual(out[box].clamp(0, 1), pair.target[box])[0]))
                done += 1
                if progress is not None:
                    progress(done, total)
            means = {k: _mean(v) for k, v in values.items()}
            rows.append(EditRow(instruction, name, len(pairs), means["psnr_region"], means["psnr_image"],
                                means["ssim_image"], means["seconds"], values, means.get("stlpips_region")))
    return rows


def _mean(values: list[float]) -> float:
    """Mean; PSNR of identical images is inf, counted as 100 dB so one perfect item does not swamp the mean."""
    return float(np.mean([min(v, 100.0) for v in values]))


def format_table(rows: Sequence[EditRow]) -> str:
    head = (
        "| instruction | method | PSNR region dB ↑ | PSNR image dB ↑ | SSIM image ↑ | ST-LPIPS region ↓ | s / image |\n"
        "|---|---|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        distance = "" if r.stlpips_region is None else f"{r.stlpips_region:.4f}"
        lines.append(f"| {r.instruction} | {r.method} | {r.psnr_region:.2f} | {r.psnr_image:.2f} | "
                     f"{r.ssim_image:.4f} | {distance} | {r.seconds_per_image:.4f} |")
    return "\n".join(lines)
