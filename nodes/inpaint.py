"""`GAN Inpaint`: fill the holes of a mask with a Context Encoder."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..models import inpaint, layout
from . import comfy, schema


class GanInpaint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditInpaint",
            display_name="GAN Inpaint",
            category=schema.CATEGORY,
            description="Fill the masked holes of each image with a Context Encoder. Each hole is cut out with "
            "context around it, filled, and composited back: pixels outside the mask are returned unchanged.",
            inputs=[
                io.Image.Input("image", tooltip="Images to fill."),
                io.Mask.Input("mask", tooltip="1 = hole to fill. Batch 1 (used for every image) or the image batch."),
                schema.model_input("An inpaint model from Load GAN Model."),
                io.Int.Input("feather", default=0, min=0, max=256,
                             tooltip="Blend the fill into a soft band this many pixels outside the hole (0 = hard "
                             "edge)."),
                schema.context_input("Any-mask models: context margin around each hole, as a fraction of its size."),
                schema.working_size_input(1024, "Any-mask models: larger crops are downscaled to this for the "
                                          "network."),
                io.Boolean.Input("colour_match", default=False,
                                 tooltip="Shift the fill's colour to match the pixels around the hole."),
                schema.mismatch_input(),
                io.Float.Input("texture", default=0.0, min=0.0, max=1.0, step=0.05, optional=True,
                               tooltip="Add the fine detail of a patch fill (texture copied from around the hole) to "
                               "the model's fill: 0 = the model's fill as it is, 1 = all of the copied grain. Makes "
                               "smooth fills look like the photo; costs a few seconds per 256 px hole on a CPU."),
            ],
            outputs=[schema.image_output("The images with their holes filled.")],
        )

    @classmethod
    def execute(
        cls, image, mask, model, feather, context, working_size, colour_match, mask_size_mismatch, texture=0.0
    ) -> io.NodeOutput:
        model.loaded.expect(inpaint.ACCEPTS, "GAN Inpaint")
        core_image = schema.core_image(image, "GAN Inpaint")
        core_mask = schema.fit_mask(core_image, layout.mask_to_b1hw(mask), mask_size_mismatch)
        _, device = comfy.load_to_device(model)
        filled = inpaint.inpaint(
            model.loaded, core_image, core_mask, device=device, progress=comfy.progress(core_image.shape[0]),
            feather=feather, context=context, working_size=working_size, colour_match=colour_match,
            texture=texture,
        )
        return schema.image_result(filled)


NODES = [GanInpaint]
