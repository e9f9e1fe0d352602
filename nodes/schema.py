"""The schema pieces several nodes share: categories, the GAN_MODEL type, common inputs, the image output.

Numeric bounds come from the core (`models.ranges` and the task modules), so a widget offers exactly
what the core accepts. Node files hold only what is theirs.
"""

from __future__ import annotations

import logging

from comfy_api.v0_0_2 import io
from torch import Tensor

from ..models import layout, masks
from ..models.ranges import CONTEXT, STRENGTH, WORKING_SIZE, Range
from . import comfy

CATEGORY = "GAN Edit"
RESTORE_CATEGORY = f"{CATEGORY}/restore"
STYLE_CATEGORY = f"{CATEGORY}/style"
MASK_CATEGORY = f"{CATEGORY}/mask"

GanModel = io.Custom("GAN_MODEL")
"""The wire type of `Load GAN Model`'s output; it carries a `comfy.PatchedModel`."""

log = logging.getLogger("comfyui-gan-edit")

MISMATCH = ["error", "resize mask"]
CLIPPED_SHARE = 0.5
"""More than this share of pure white values makes an input look clipped (a warning, not an error)."""
SEED_MAX = 0xFFFFFFFFFFFFFFFF


def float_input(name: str, bounds: Range, default: float, step: float, tooltip: str) -> io.Float.Input:
    return io.Float.Input(name, default=default, min=bounds.low, max=bounds.high, step=step, tooltip=tooltip)


def model_input(tooltip: str) -> io.Input:
    return GanModel.Input("model", tooltip=tooltip)


def strength_input(tooltip: str = "How much of the effect to apply: 0 = the input unchanged (exactly), 1 = the "
                   "model's result.") -> io.Float.Input:
    return float_input("strength", STRENGTH, 1.0, 0.05, tooltip)


def context_input(tooltip: str) -> io.Float.Input:
    return float_input("context", CONTEXT, 0.5, 0.05, tooltip)


def working_size_input(default: int, tooltip: str) -> io.Int.Input:
    return io.Int.Input("working_size", default=default, min=int(WORKING_SIZE.low), max=int(WORKING_SIZE.high),
                        step=32, tooltip=tooltip)


def mismatch_input() -> io.Combo.Input:
    return io.Combo.Input("mask_size_mismatch", options=MISMATCH, default="error",
                          tooltip="What to do when the mask's size differs from the image's.")


def seed_input(tooltip: str) -> io.Int.Input:
    return io.Int.Input("seed", default=0, min=0, max=SEED_MAX, control_after_generate=True, tooltip=tooltip)


def image_output(tooltip: str) -> io.Image.Output:
    return io.Image.Output("out_image", display_name="image", tooltip=tooltip)


def image_result(image: Tensor) -> io.NodeOutput:
    """A core image [B,C,H,W] as the node's IMAGE output on ComfyUI's intermediate device."""
    return io.NodeOutput(layout.bchw_to_image(image).to(comfy.intermediate_device()))


def fit_mask(image: Tensor, mask: Tensor, mismatch: str) -> Tensor:
    """The core mask, resized to the core image's size when `mismatch` says so (else the core refuses it)."""
    if mask.shape[-2:] != image.shape[-2:] and mismatch == "resize mask":
        return masks.resize(mask, *image.shape[-2:])
    return mask


def core_image(image: Tensor, node: str, name: str = "image") -> Tensor:
    """ComfyUI IMAGE -> core image; logs a warning when it looks clipped (e.g. a 16-bit PNG read as 8 bits)."""
    core = layout.image_to_bchw(image)
    share = layout.clipped_share(core)
    if share > CLIPPED_SHARE:
        log.warning(
            "%s: %.0f%% of the %s's values are exactly 1.0 (pure white): the input looks clipped (a 16-bit or HDR "
            "file read as 8 bits?); the result will be of the clipped picture", node, 100 * share, name
        )
    return core
