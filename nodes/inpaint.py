"""`GAN Inpaint`: fill the holes of a mask with a Context Encoder."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..models import inpaint, layout, masks
from . import comfy
from .loader import CATEGORY, GanModel, require_task

MISMATCH = ["error", "resize mask"]


class GanInpaint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditInpaint",
            display_name="GAN Inpaint",
            category=CATEGORY,
            description="Fill the masked holes of each image with a Context Encoder. Each hole is cut out with "
            "context around it, filled, and composited back: pixels outside the mask are returned unchanged.",
            inputs=[
                io.Image.Input("image", tooltip="Images to fill."),
                io.Mask.Input("mask", tooltip="1 = hole to fill. Batch 1 (used for every image) or the image batch."),
                GanModel.Input("model", tooltip="An inpaint model from Load GAN Model."),
                io.Int.Input(
                    "feather",
                    default=0,
                    min=0,
                    max=256,
                    tooltip="Blend the fill into a soft band this many pixels outside the hole (0 = hard edge).",
                ),
                io.Float.Input(
                    "context",
                    default=0.5,
                    min=0.0,
                    max=4.0,
                    step=0.05,
                    tooltip="Any-mask models: context margin around each hole, as a fraction of its size.",
                ),
                io.Int.Input(
                    "working_size",
                    default=1024,
                    min=64,
                    max=8192,
                    step=64,
                    tooltip="Any-mask models: larger crops are downscaled to this for the network.",
                ),
                io.Boolean.Input(
                    "colour_match",
                    default=False,
                    tooltip="Shift the fill's colour to match the pixels around the hole.",
                ),
                io.Combo.Input(
                    "mask_size_mismatch",
                    options=MISMATCH,
                    default="error",
                    tooltip="What to do when the mask's size differs from the image's.",
                ),
            ],
            outputs=[io.Image.Output("out_image", display_name="image", tooltip="The images with their holes filled.")],
        )

    @classmethod
    def execute(
        cls, image, mask, model, feather, context, working_size, colour_match, mask_size_mismatch
    ) -> io.NodeOutput:
        require_task(model, "inpaint", "GAN Inpaint")
        core_image = layout.image_to_bchw(image)
        core_mask = layout.mask_to_b1hw(mask)
        if core_image.shape[1] != 3:
            raise ValueError(f"GAN Inpaint needs RGB images, got {core_image.shape[1]} channels")
        if core_mask.shape[-2:] != core_image.shape[-2:] and mask_size_mismatch == "resize mask":
            core_mask = masks.resize(core_mask, *core_image.shape[-2:])
        _, device = comfy.load_to_device(model)
        filled = inpaint.inpaint(
            model.loaded,
            core_image,
            core_mask,
            device=device,
            progress=comfy.progress(core_image.shape[0]),
            feather=feather,
            context=context,
            working_size=working_size,
            colour_match=colour_match,
        )
        return io.NodeOutput(layout.bchw_to_image(filled).to(comfy.intermediate_device()))


NODES = [GanInpaint]
