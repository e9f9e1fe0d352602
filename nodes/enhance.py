"""`GAN Enhance`: restore or enhance images with an enhance model, in tiles, optionally inside a mask only."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..models import enhance, layout, weights
from . import comfy, schema


class GanEnhance(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditEnhance",
            display_name="GAN Enhance",
            category=schema.RESTORE_CATEGORY,
            description="Restore (noise, blur, JPEG artefacts) or enhance (colour cast, exposure, contrast) each "
            "image with an enhance model. Large images are processed in overlapping tiles that are blended "
            "seamlessly; every tile gets the whole image's colour correction.",
            inputs=[
                io.Image.Input("image", tooltip="Images to enhance (any size and batch; an alpha channel is kept)."),
                schema.GanModel.Input("model", optional=True, tooltip="An enhance model from Load GAN Model: the "
                                      "pack's restorer or auto-enhancer, or a public 1x restorer (SCUNet, NAFNet, "
                                      "FBCNN, DnCNN, DRUNet, ...). Give this or upscale_model."),
                schema.strength_input("Blend between the input (0, returned exactly) and the model's result (1)."),
                io.Int.Input("tile_size", default=512, min=enhance.MIN_TILE, max=8192, step=64,
                             tooltip="Largest tile side in pixels. Smaller tiles use less memory; on a GPU "
                             f"out-of-memory error the tile is halved automatically (down to {enhance.MIN_TILE})."),
                io.Int.Input("tile_overlap", default=32, min=0, max=512,
                             tooltip="Pixels shared by neighbouring tiles, blended with linear ramps (at most a "
                             "quarter of the tile size)."),
                io.UpscaleModel.Input("upscale_model", optional=True,
                                      tooltip="Instead of model: a 1x restoration model from ComfyUI's Load Upscale "
                                      "Model (2x/4x upscalers belong to Upscale Image (using Model))."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional: enhance only where the mask is 1 (soft values blend); pixels where "
                              "it is 0 are returned unchanged. Batch 1 or the image batch, same size as the image."),
            ],
            outputs=[schema.image_output("The enhanced images, same size.")],
        )

    @classmethod
    def execute(cls, image, strength, tile_size, tile_overlap, model=None, upscale_model=None,
                mask=None) -> io.NodeOutput:
        if (model is None) == (upscale_model is None):
            raise ValueError("GAN Enhance needs exactly one of model (Load GAN Model) and upscale_model (Load Upscale "
                             f"Model); got {'both' if model is not None else 'neither'}")
        if upscale_model is not None:
            model = comfy.wrap_model(weights.from_spandrel(upscale_model, "the upscale_model input"))
        model.loaded.expect(enhance.ACCEPTS, "GAN Enhance")
        core_image = schema.core_image(image, "GAN Enhance")
        core_mask = layout.mask_to_b1hw(mask) if mask is not None else None
        _, device = comfy.load_to_device(model)
        out = enhance.enhance(
            model.loaded, core_image, strength=strength, mask=core_mask, tile=tile_size, overlap=tile_overlap,
            device=device, progress=comfy.progress(core_image.shape[0]),  # enhance() reports tiles of all tiles
        )
        return schema.image_result(out)


NODES = [GanEnhance]
