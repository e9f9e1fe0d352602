"""`GAN Edit`: masked, instruction-conditioned edits (remove, recolour, relight, harmonise_paste, blur_background)."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..models import edit, inpaint, layout
from ..models.archs.edit import INSTRUCTIONS
from . import comfy, schema
from .schema import GanModel

STARTER_INPAINTER = "context_encoder_anymask.safetensors"
"""What `remove` fills with when no inpaint_model is connected: the pack's any-mask inpainter."""


class GanEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditEdit",
            display_name="GAN Edit",
            category=schema.CATEGORY,
            description="Edit the masked region of each image with an edit GAN: remove what is under the mask (filled "
            "by an inpainting model, exactly as GAN Inpaint fills it), recolour it, relight it, harmonise a pasted "
            "reference into it, or blur the background around it. "
            "Pixels outside the mask are returned unchanged (blur_background: the inside is unchanged).",
            inputs=[
                io.Image.Input("image", tooltip="Images to edit."),
                io.Mask.Input("mask", tooltip="1 = the region (the subject for blur_background). Batch 1 or the "
                              "image batch."),
                schema.model_input("An edit model from Load GAN Model."),
                io.Combo.Input("instruction", options=list(INSTRUCTIONS), default="recolour",
                               tooltip="remove: fill the region from its surroundings with the inpaint model. "
                               "recolour: turn the region's main colour into `colour`, keeping its shading. relight: "
                               "brighten or darken it by `amount`. harmonise_paste: paste `reference` into it and "
                               "match its colour and light to the scene. blur_background: blur everything outside "
                               "the mask."),
                io.String.Input("colour", default="#1e90ff",
                                tooltip="recolour: the target colour as #rrggbb (or #rgb)."),
                schema.strength_input("How much of the edit to apply (0 = the input unchanged)."),
                io.Float.Input("amount", default=0.5, min=-1.0, max=1.0, step=0.05,
                               tooltip="relight: -1 (darker) .. 1 (brighter). blur_background: 0 .. 1, the blur "
                               "size. Ignored by the other instructions."),
                schema.context_input("Context margin around the region that the model sees, as a fraction of the "
                                     "region's size."),
                schema.working_size_input(256, "Larger crops are downscaled to this for the network; the change is "
                                          "scaled back up onto the full-resolution image."),
                schema.mismatch_input(),
                io.Image.Input("reference", optional=True,
                               tooltip="harmonise_paste: the image to paste (batch 1 or the image batch); without "
                               "reference_mask it is resized to the image and shows through the mask."),
                io.Mask.Input("reference_mask", optional=True,
                              tooltip="harmonise_paste: 1 = the part of the reference to paste (invert LoadImage's "
                              "alpha mask); its cut-out is scaled into the box of `mask`."),
                GanModel.Input("inpaint_model", optional=True,
                               tooltip=f"remove: the inpainting model that fills the region (any model GAN Inpaint "
                               f"takes: the pack's, LaMa, MAT); without one, the pack's {STARTER_INPAINTER}."),
            ],
            outputs=[schema.image_output("The edited images.")],
        )

    @classmethod
    def execute(
        cls, image, mask, model, instruction, colour, strength, amount, context, working_size, mask_size_mismatch,
        reference=None, reference_mask=None, inpaint_model=None,
    ) -> io.NodeOutput:
        model.loaded.expect(edit.ACCEPTS, "GAN Edit")
        inpainter = None
        if instruction == "remove":
            inpainter = inpaint_model if inpaint_model is not None else comfy.named_model(STARTER_INPAINTER)
            inpainter.loaded.expect(inpaint.ACCEPTS, "GAN Edit (inpaint_model)")
            comfy.load_to_device(inpainter)
        if instruction == "harmonise_paste" and reference is None:
            raise ValueError("GAN Edit: harmonise_paste needs a reference image (connect the `reference` input)")
        core_image = schema.core_image(image, "GAN Edit")
        core_mask = schema.fit_mask(core_image, layout.mask_to_b1hw(mask), mask_size_mismatch)
        _, device = comfy.load_to_device(model)
        result = edit.edit(
            model.loaded, core_image, core_mask, instruction, colour=colour, amount=float(amount),
            strength=float(strength), context=float(context), working_size=int(working_size),
            reference=None if reference is None else layout.image_to_bchw(reference)[:, :3],
            reference_mask=None if reference_mask is None else layout.mask_to_b1hw(reference_mask),
            device=device, progress=comfy.progress(core_image.shape[0]),
            inpainter=None if inpainter is None else inpainter.loaded,
        )
        return schema.image_result(result)


NODES = [GanEdit]
