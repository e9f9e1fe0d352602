"""`GAN Image to Image`: translate images with a pix2pix / CycleGAN generator."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..models import translate
from . import comfy, schema

NORM_MODES = {"eval": "eval", "per-image batch statistics": "batch_stats"}


class GanImageToImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditImageToImage",
            display_name="GAN Image to Image",
            category=schema.CATEGORY,
            description="Translate each image with a pix2pix or CycleGAN generator (ResNet or U-Net), e.g. a "
            "converted public checkpoint. Any image size: the output has the input's size.",
            inputs=[
                io.Image.Input("image", tooltip="Images to translate."),
                schema.model_input("A translate model from Load GAN Model (pix2pix/CycleGAN generator, or the "
                                   "VGG-16 colouriser)."),
                io.Combo.Input("normalization", options=list(NORM_MODES), default="eval",
                               tooltip="eval: BatchNorm uses the statistics stored in the model. per-image batch "
                               "statistics: each image is normalised with its own statistics, as the reference "
                               "pix2pix test.py does without --eval (dropout stays off). Same result for "
                               "instance-norm models."),
                io.Combo.Input("size_handling", options=list(translate.RESIZE_MODES), default="pad",
                               tooltip="The network needs sizes that are multiples of 4 (ResNet) or 2^depth (U-Net, "
                               "256 for unet_256). pad: mirror the borders out and crop back (no resampling). "
                               "resize: scale to the nearest allowed size and back."),
                io.Boolean.Input("keep_luminance", default=False, optional=True,
                                 tooltip="Keep the input's own luminance exactly and take only the colours from the "
                                 "model: for colourisation, so detail and tones of the photo are never lost."),
            ],
            outputs=[schema.image_output("The translated images, same size.")],
        )

    @classmethod
    def execute(cls, image, model, normalization, size_handling, keep_luminance=False) -> io.NodeOutput:
        model.loaded.expect(translate.ACCEPTS, "GAN Image to Image")
        core_image = schema.core_image(image, "GAN Image to Image")
        _, device = comfy.load_to_device(model)
        out = translate.translate(
            model.loaded, core_image, device=device, progress=comfy.progress(core_image.shape[0]),
            norm_mode=NORM_MODES[normalization], resize_mode=size_handling, keep_luminance=keep_luminance,
        )
        if out.shape[1] == 1:  # a one-channel generator: show it as a grey IMAGE
            out = out.expand(-1, 3, -1, -1)
        return schema.image_result(out)


NODES = [GanImageToImage]
