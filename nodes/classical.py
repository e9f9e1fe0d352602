"""`Color Match` and `Classical Fill`: colour transfer and classical hole fills, thin over the core."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..models import colour, layout
from ..models.inpaint import classical
from . import comfy, schema


class ColorMatch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditColorMatch",
            display_name="Color Match",
            category=schema.RESTORE_CATEGORY,
            description="Move each image's colour statistics onto the reference's (e.g. an inpainted result onto "
            "the original, to remove a colour shift). Statistics leave out the pixels of the exclude mask.",
            inputs=[
                io.Image.Input("image", tooltip="Images whose colours to change."),
                io.Image.Input("reference", tooltip="Colour reference: batch 1 (for every image) or the image batch; "
                               "any size."),
                io.Combo.Input("method", options=list(colour.TRANSFER_METHODS), default="mean_std",
                               tooltip="mean_std: per-channel RGB mean and spread; histogram: per-channel quantile "
                               "matching; reinhard: mean and spread in Reinhard's lαβ colour space."),
                schema.strength_input("0 = the image unchanged (exactly), 1 = fully matched."),
                io.Mask.Input("exclude", optional=True,
                              tooltip="Optional. Pixels > 0.5 are left out of the statistics of the image, and of the "
                              "reference when it has the image's size (e.g. the inpainted hole). All pixels are "
                              "still recoloured."),
            ],
            outputs=[schema.image_output("The colour-matched images.")],
        )

    @classmethod
    def execute(cls, image, reference, method, strength, exclude=None) -> io.NodeOutput:
        core = schema.core_image(image, "Color Match")
        ref = schema.core_image(reference, "Color Match", "reference")
        mask = None if exclude is None else layout.mask_to_b1hw(exclude)
        ref_mask = mask if mask is not None and mask.shape[-2:] == ref.shape[-2:] else None
        return schema.image_result(colour.match_colours(core, ref, method, mask, ref_mask, strength,
                                                        device=comfy.compute_device()))


class ClassicalFill(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditClassicalFill",
            display_name="Classical Fill",
            category=schema.CATEGORY,
            description="Fill the masked holes without a model: the mean colour, a smooth push-pull blur, the "
            "harmonic (Laplace) fill, or texture copied from around the hole (PatchMatch-style patch synthesis). A "
            "pre-fill for a network or a baseline; pixels outside the hole are kept.",
            inputs=[
                io.Image.Input("image", tooltip="Images to fill."),
                io.Mask.Input("mask", tooltip="1 = hole. Values > 0.5 are filled, the rest kept exactly. Batch 1 (used "
                              "for every image) or the image batch."),
                io.Combo.Input("method", options=list(classical.METHODS), default="blur",
                               tooltip="mean: the mean colour of the known pixels; blur: a smooth blend of the "
                               "colours around the hole (instant); harmonic: the smoothest fill matching the hole's "
                               "edge, the best PSNR of these, but slow on big holes (on one CPU thread about 0.7 s for "
                               "a 256 px hole, 2 s for 512 px, 20 s for 1024 px); patch: copies texture from the "
                               "surroundings (sharp, not smooth: grass stays grass; it can copy the wrong thing into "
                               "a big hole), a few seconds per 128 px hole on a CPU."),
                schema.mismatch_input(),
            ],
            outputs=[schema.image_output("The images with their holes filled.")],
        )

    @classmethod
    def execute(cls, image, mask, method, mask_size_mismatch) -> io.NodeOutput:
        core = schema.core_image(image, "Classical Fill")
        core_mask = schema.fit_mask(core, layout.mask_to_b1hw(mask), mask_size_mismatch)
        filled = classical.fill(core, core_mask, method, device=comfy.compute_device(),
                                progress=comfy.progress(core.shape[0]))
        return schema.image_result(filled)


NODES = [ColorMatch, ClassicalFill]
