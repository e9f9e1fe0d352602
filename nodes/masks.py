"""Mask creation nodes (category GAN Edit/mask): thin wrappers over models/masks.py.

Every generator takes a width/height or "the size of this image", a batch size and (for the random
ones) a seed; it outputs MASK [B,H,W] with 1 = hole and a preview IMAGE (the mask over the image
when one is connected, else the mask in grey).
"""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..models import layout, masks, memory
from . import schema

MAX_SIDE = 16384
ANY = "any"
COVERAGE_CHOICES = [ANY, *masks.COVERAGE_BUCKETS]
UNITS = ["fraction", "pixels"]


# ---------------------------------------------------------------------------------------------------
# Shared inputs and outputs


def _size_inputs() -> list[io.Input]:
    return [
        io.Int.Input(
            "width",
            default=512,
            min=1,
            max=MAX_SIDE,
            tooltip="Mask width in pixels (ignored when an image is connected).",
        ),
        io.Int.Input(
            "height",
            default=512,
            min=1,
            max=MAX_SIDE,
            tooltip="Mask height in pixels (ignored when an image is connected).",
        ),
        io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="How many masks to make."),
        io.Image.Input(
            "image",
            optional=True,
            tooltip="Optional. When connected the masks take this image's size, and the preview shows them over it.",
        ),
    ]


def _coverage_input() -> io.Input:
    return io.Combo.Input(
        "coverage",
        options=COVERAGE_CHOICES,
        default=ANY,
        tooltip="Hole-ratio bucket every mask must fall into (like the NVIDIA irregular-mask test buckets); "
        "'any' keeps whatever the generator draws.",
    )


def _mask_outputs() -> list[io.Output]:
    return [
        io.Mask.Output(
            "out_mask", display_name="mask", tooltip="Mask [B,H,W]: 1 marks the hole to fill, 0 the pixels to keep."
        ),
        io.Image.Output(
            "out_preview",
            display_name="preview",
            tooltip="The mask over the connected image (red = hole), or the mask in grey.",
        ),
    ]


def _coverage(choice: str) -> tuple[float, float] | None:
    return None if choice == ANY else masks.COVERAGE_BUCKETS[choice]


NODE_BYTES_PER_PIXEL = 96
"""Peak of a mask node per pixel of its batch: the mask, its ComfyUI copy, the RGB preview and the float
copies of the image it is drawn over (measured: about 6.4 GiB for one 8192x8192 mask over a photo)."""


def _size(width: int, height: int, batch: int, image: torch.Tensor | None) -> tuple[int, int]:
    """The canvas: the image's size when one is connected; refused when mask + preview exceed the budget."""
    if image is not None:
        core = layout.image_to_bchw(image)
        height, width, batch = core.shape[-2], core.shape[-1], max(batch, core.shape[0])
    memory.require(height * width * batch * NODE_BYTES_PER_PIXEL, f"{width}x{height}x{batch} masks and their preview")
    return height, width


def _output(mask: torch.Tensor, image: torch.Tensor | None) -> io.NodeOutput:
    core_image = None if image is None else layout.image_to_bchw(image)
    preview = masks.overlay(mask, core_image)
    return io.NodeOutput(layout.b1hw_to_mask(mask), layout.bchw_to_image(preview))


# ---------------------------------------------------------------------------------------------------
# Generators


class BoxMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditBoxMask",
            display_name="Box / Center Mask",
            category=schema.MASK_CATEGORY,
            description="A rectangular hole, centred (the Context Encoder's centre hole at the defaults) or placed "
            "at x, y. Sizes in fractions of the image or in pixels.",
            inputs=[
                *_size_inputs(),
                io.Combo.Input(
                    "units", options=UNITS, default="fraction", tooltip="How x, y, box_width and box_height are read."
                ),
                io.Boolean.Input("centered", default=True, tooltip="Centre the box; x and y are then ignored."),
                io.Float.Input("x", default=0.25, min=0.0, max=MAX_SIDE, step=0.01, tooltip="Left edge of the box."),
                io.Float.Input("y", default=0.25, min=0.0, max=MAX_SIDE, step=0.01, tooltip="Top edge of the box."),
                io.Float.Input("box_width", default=0.5, min=0.0, max=MAX_SIDE, step=0.01, tooltip="Box width."),
                io.Float.Input("box_height", default=0.5, min=0.0, max=MAX_SIDE, step=0.01, tooltip="Box height."),
            ],
            outputs=_mask_outputs(),
        )

    @classmethod
    def execute(
        cls, width, height, batch_size, units, centered, x, y, box_width, box_height, image=None
    ) -> io.NodeOutput:
        h, w = _size(width, height, batch_size, image)
        mask = masks.box_in_units(h, w, batch_size, units=units, centered=centered, x=x, y=y, box_width=box_width,
                                  box_height=box_height)
        return _output(mask, image)


class RandomBlocksMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditRandomBlocksMask",
            display_name="Random Blocks Mask",
            category=schema.MASK_CATEGORY,
            description="Random rectangular holes, as the Context Encoder paper trains with. Seeded and batched.",
            inputs=[
                *_size_inputs(),
                schema.seed_input("Same seed, same masks. Items of one batch always differ from each other."),
                io.Int.Input("count_min", default=1, min=1, max=64, tooltip="Fewest blocks per mask."),
                io.Int.Input("count_max", default=5, min=1, max=64, tooltip="Most blocks per mask."),
                io.Float.Input(
                    "size_min",
                    default=0.1,
                    min=0.01,
                    max=1.0,
                    step=0.01,
                    tooltip="Smallest block side, as a fraction of the shorter image side.",
                ),
                io.Float.Input(
                    "size_max",
                    default=0.4,
                    min=0.01,
                    max=1.0,
                    step=0.01,
                    tooltip="Largest block side, as a fraction of the shorter image side.",
                ),
                io.Float.Input(
                    "max_coverage",
                    default=0.5,
                    min=0.01,
                    max=1.0,
                    step=0.01,
                    tooltip="Stop adding blocks before the hole ratio passes this.",
                ),
                _coverage_input(),
            ],
            outputs=_mask_outputs(),
        )

    @classmethod
    def execute(
        cls,
        width,
        height,
        batch_size,
        seed,
        count_min,
        count_max,
        size_min,
        size_max,
        max_coverage,
        coverage,
        image=None,
    ) -> io.NodeOutput:
        h, w = _size(width, height, batch_size, image)
        mask = masks.random_blocks(
            h,
            w,
            batch_size,
            seed,
            count=(count_min, count_max),
            size=(size_min, size_max),
            max_coverage=max_coverage,
            coverage=_coverage(coverage),
        )
        return _output(mask, image)


class StrokeMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditStrokeMask",
            display_name="Free-form Stroke Mask",
            category=schema.MASK_CATEGORY,
            description="Free-form brush strokes after DeepFill v2: zig-zag polylines with round joints. "
            "Brush widths are given at 256 px and scale with the image.",
            inputs=[
                *_size_inputs(),
                schema.seed_input("Same seed, same masks. Items of one batch always differ from each other."),
                io.Int.Input("strokes_min", default=1, min=1, max=32, tooltip="Fewest strokes per mask."),
                io.Int.Input("strokes_max", default=3, min=1, max=32, tooltip="Most strokes per mask."),
                io.Int.Input("vertices_min", default=4, min=1, max=64, tooltip="Fewest vertices per stroke."),
                io.Int.Input("vertices_max", default=11, min=1, max=64, tooltip="Most vertices per stroke."),
                io.Int.Input("brush_min", default=12, min=1, max=256, tooltip="Thinnest brush, in pixels at 256 px."),
                io.Int.Input("brush_max", default=40, min=1, max=256, tooltip="Thickest brush, in pixels at 256 px."),
                _coverage_input(),
            ],
            outputs=_mask_outputs(),
        )

    @classmethod
    def execute(
        cls,
        width,
        height,
        batch_size,
        seed,
        strokes_min,
        strokes_max,
        vertices_min,
        vertices_max,
        brush_min,
        brush_max,
        coverage,
        image=None,
    ) -> io.NodeOutput:
        h, w = _size(width, height, batch_size, image)
        mask = masks.free_form_strokes(
            h,
            w,
            batch_size,
            seed,
            strokes=(strokes_min, strokes_max),
            vertices=(vertices_min, vertices_max),
            width_range=(brush_min, brush_max),
            coverage=_coverage(coverage),
        )
        return _output(mask, image)


class IrregularMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditIrregularMask",
            display_name="Irregular Mask",
            category=schema.MASK_CATEGORY,
            description="Irregular masks after LaMa's training masks: thin (many narrow strokes), medium or thick "
            "(fewer, wider strokes; about one item in four is boxes instead). Sizes are given at 256 px and scale "
            "with the image; the hole ratio never exceeds 0.5 unless a coverage bucket says otherwise.",
            inputs=[
                *_size_inputs(),
                schema.seed_input("Same seed, same masks. Items of one batch always differ from each other."),
                io.Combo.Input(
                    "preset",
                    options=[*masks.IRREGULAR_PRESETS, "custom"],
                    default="medium",
                    tooltip="Stroke family; 'custom' uses the four settings below.",
                ),
                _coverage_input(),
                io.Int.Input("custom_strokes_min", default=4, min=0, max=200, tooltip="custom: fewest strokes."),
                io.Int.Input("custom_strokes_max", default=10, min=0, max=200, tooltip="custom: most strokes."),
                io.Float.Input(
                    "custom_max_width",
                    default=40.0,
                    min=1.0,
                    max=1024.0,
                    step=1.0,
                    tooltip="custom: widest stroke, in pixels at 256 px (width = 5 + uniform(0, this)).",
                ),
                io.Float.Input(
                    "custom_max_length",
                    default=80.0,
                    min=1.0,
                    max=2048.0,
                    step=1.0,
                    tooltip="custom: longest segment, in pixels at 256 px (length = 10 + uniform(0, this)).",
                ),
            ],
            outputs=_mask_outputs(),
        )

    @classmethod
    def execute(
        cls,
        width,
        height,
        batch_size,
        seed,
        preset,
        coverage,
        custom_strokes_min,
        custom_strokes_max,
        custom_max_width,
        custom_max_length,
        image=None,
    ) -> io.NodeOutput:
        h, w = _size(width, height, batch_size, image)
        custom = {}
        if preset == "custom":
            custom = dict(
                min_times=custom_strokes_min,
                max_times=custom_strokes_max,
                max_width=custom_max_width,
                max_len=custom_max_length,
                max_angle=4.0,
            )
        return _output(
            masks.irregular(h, w, batch_size, seed, preset=preset, coverage=_coverage(coverage), **custom), image
        )


class OutpaintMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditOutpaintMask",
            display_name="Outpaint Border Mask",
            category=schema.MASK_CATEGORY,
            description="A hole along the borders of the image, per side, with an optional soft ramp inwards.",
            inputs=[
                *_size_inputs(),
                io.Combo.Input("units", options=UNITS, default="fraction", tooltip="How the four borders are read."),
                io.Float.Input("left", default=0.125, min=0.0, max=MAX_SIDE, step=0.005, tooltip="Border on the left."),
                io.Float.Input("top", default=0.0, min=0.0, max=MAX_SIDE, step=0.005, tooltip="Border on the top."),
                io.Float.Input(
                    "right", default=0.125, min=0.0, max=MAX_SIDE, step=0.005, tooltip="Border on the right."
                ),
                io.Float.Input(
                    "bottom", default=0.0, min=0.0, max=MAX_SIDE, step=0.005, tooltip="Border at the bottom."
                ),
                io.Int.Input(
                    "feather",
                    default=0,
                    min=0,
                    max=1024,
                    tooltip="Soft ramp width in pixels from the border inwards; 0 = hard edge.",
                ),
            ],
            outputs=_mask_outputs(),
        )

    @classmethod
    def execute(cls, width, height, batch_size, units, left, top, right, bottom, feather, image=None) -> io.NodeOutput:
        h, w = _size(width, height, batch_size, image)
        sx, sy = (w, h) if units == "fraction" else (1, 1)
        mask = masks.outpaint_border(
            h, w, batch_size, round(left * sx), round(top * sy), round(right * sx), round(bottom * sy), feather=feather
        )
        return _output(mask, image)


# ---------------------------------------------------------------------------------------------------
# Masks from images, refinement, bounding box

FROM_IMAGE_MODES = ["luma", "colour key", "alpha", "difference"]


def _parse_colour(text: str) -> tuple[float, float, float]:
    value = text.strip().lstrip("#")
    if len(value) != 6 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ValueError(f"colour must be a hex code like #00ff00, got {text!r}")
    return tuple(int(value[i : i + 2], 16) / 255.0 for i in (0, 2, 4))


class MaskFromImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditMaskFromImage",
            display_name="Mask From Image",
            category=schema.MASK_CATEGORY,
            description="Make a mask from an image: luma above a threshold, a colour key with tolerance, the alpha "
            "channel (transparent = hole), or where two images differ.",
            inputs=[
                io.Image.Input("image", tooltip="The image to read (RGBA for the alpha mode)."),
                io.Combo.Input("mode", options=FROM_IMAGE_MODES, default="luma", tooltip="What makes a pixel a hole."),
                io.Float.Input(
                    "threshold",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="luma: holes where luma >= this; difference: holes where the largest channel "
                    "difference > this; alpha: holes where 1 - alpha >= this.",
                ),
                io.String.Input("colour", default="#00ff00", tooltip="colour key: the key colour as #rrggbb."),
                io.Float.Input(
                    "tolerance",
                    default=0.1,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="colour key: largest per-channel distance (0..1) still counted as the key colour.",
                ),
                io.Boolean.Input("invert", default=False, tooltip="Swap hole and keep."),
                io.Image.Input("image_b", optional=True, tooltip="difference: the second image, same size and batch."),
            ],
            outputs=_mask_outputs(),
        )

    @classmethod
    def execute(cls, image, mode, threshold, colour, tolerance, invert, image_b=None) -> io.NodeOutput:
        core = layout.image_to_bchw(image)
        if mode == "luma":
            mask = masks.from_luma(core, threshold)
        elif mode == "colour key":
            mask = masks.from_color(core, _parse_colour(colour), tolerance)
        elif mode == "alpha":
            mask = masks.from_alpha(core, threshold)
        else:
            if image_b is None:
                raise ValueError("mode 'difference' needs a second image on image_b")
            mask = masks.from_difference(core, layout.image_to_bchw(image_b), threshold)
        if invert:
            mask = 1.0 - mask
        return _output(mask, image)


class MaskRefine(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditMaskRefine",
            display_name="Mask Refine",
            category=schema.MASK_CATEGORY,
            description="Binarize, then grow or shrink, then feather a mask, in that order. Binarizing first turns the "
            "'almost 1' values of masks that went through JPEG into clean holes before anything else sees them.",
            inputs=[
                io.Mask.Input("mask", tooltip="The mask to refine."),
                io.Float.Input(
                    "threshold",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Values >= threshold become 1, the rest 0; 0 turns binarizing off.",
                ),
                io.Int.Input(
                    "grow",
                    default=0,
                    min=-1024,
                    max=1024,
                    tooltip="Grow the hole by this many pixels (negative shrinks it), with a round brush.",
                ),
                io.Int.Input(
                    "feather",
                    default=0,
                    min=0,
                    max=1024,
                    tooltip="Soften the edge over about this many pixels (Gaussian).",
                ),
                io.Boolean.Input("invert", default=False, tooltip="Swap hole and keep at the end."),
                io.Image.Input("image", optional=True, tooltip="Optional, for the preview only."),
            ],
            outputs=_mask_outputs(),
        )

    @classmethod
    def execute(cls, mask, threshold, grow, feather, invert, image=None) -> io.NodeOutput:
        core = layout.mask_to_b1hw(mask)
        refined = masks.refine(
            core,
            threshold=threshold if threshold > 0 else None,
            grow_pixels=grow,
            feather_radius=feather,
            invert=invert,
        )
        return _output(refined, image)


class MaskBoundingBox(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditMaskBoundingBox",
            display_name="Mask Bounding Box",
            category=schema.MASK_CATEGORY,
            description="The box around the hole (over the whole batch) as x, y, width, height, ready for cropping.",
            inputs=[
                io.Mask.Input("mask", tooltip="Mask whose hole (values > 0.5) is boxed."),
                io.Int.Input(
                    "padding",
                    default=0,
                    min=0,
                    max=MAX_SIDE,
                    tooltip="Pixels added on every side, clipped to the image.",
                ),
            ],
            outputs=[
                io.Int.Output("out_x", display_name="x", tooltip="Left edge in pixels."),
                io.Int.Output("out_y", display_name="y", tooltip="Top edge in pixels."),
                io.Int.Output("out_width", display_name="width", tooltip="Box width in pixels."),
                io.Int.Output("out_height", display_name="height", tooltip="Box height in pixels."),
            ],
        )

    @classmethod
    def execute(cls, mask, padding) -> io.NodeOutput:
        core = layout.mask_to_b1hw(mask)
        x, y, w, h = masks.bbox(core.amax(dim=0, keepdim=True), padding=padding)[0]
        return io.NodeOutput(x, y, w, h)


NODES = [BoxMask, RandomBlocksMask, StrokeMask, IrregularMask, OutpaintMask, MaskFromImage, MaskRefine, MaskBoundingBox]
