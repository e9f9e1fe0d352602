"""`GAN Enhance`: restore or enhance images with an enhance model, in tiles, optionally inside a mask only."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..models import enhance, layout
from . import comfy
from .degrade import CATEGORY
from .loader import GanModel, require_task


class GanEnhance(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditEnhance",
            display_name="GAN Enhance",
            category=CATEGORY,
            description="Restore (noise, blur, JPEG artefacts) or enhance (colour cast, exposure, contrast) each "
            "image with an enhance model. Large images are processed in overlapping tiles that are blended "
            "seamlessly; every tile gets the whole image's colour correction.",
            inputs=[
                io.Image.Input("image", tooltip="Images to enhance (any size and batch; an alpha channel is kept)."),
                GanModel.Input("model", tooltip="An enhance model from Load GAN Model (e.g. a restorer or "
                               "auto-enhancer)."),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="Blend between the input (0, returned exactly) and the model's result (1).",
                ),
                io.Int.Input(
                    "tile_size",
                    default=512,
                    min=enhance.MIN_TILE,
                    max=8192,
                    step=64,
                    tooltip="Largest tile side in pixels. Smaller tiles use less memory; on a GPU out-of-memory "
                    f"error the tile is halved automatically (down to {enhance.MIN_TILE}).",
                ),
                io.Int.Input(
                    "tile_overlap",
                    default=32,
                    min=0,
                    max=512,
                    tooltip="Pixels shared by neighbouring tiles, blended with linear ramps (at most a quarter of "
                    "the tile size).",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Optional: enhance only where the mask is 1 (soft values blend); pixels where it is 0 "
                    "are returned unchanged. Batch 1 or the image batch, same size as the image.",
                ),
            ],
            outputs=[io.Image.Output("out_image", display_name="image", tooltip="The enhanced images, same size.")],
        )

    @classmethod
    def execute(cls, image, model, strength, tile_size, tile_overlap, mask=None) -> io.NodeOutput:
        require_task(model, "enhance", "GAN Enhance")
        core_image = layout.image_to_bchw(image)
        if core_image.shape[1] == 1:  # a grey IMAGE: enhance it as RGB
            core_image = core_image.expand(-1, 3, -1, -1)
        core_mask = layout.mask_to_b1hw(mask) if mask is not None else None
        _, device = comfy.load_to_device(model)
        out = enhance.enhance(
            model.loaded,
            core_image,
            strength=strength,
            mask=core_mask,
            tile=tile_size,
            overlap=tile_overlap,
            device=device,
            progress=comfy.progress(core_image.shape[0]),  # enhance() reports tiles done of all tiles
        )
        return io.NodeOutput(layout.bchw_to_image(out).to(comfy.intermediate_device()))


NODES = [GanEnhance]
