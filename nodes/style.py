"""`GAN Style Transfer` (AdaIN, any style image) and `GAN Stylize` (one-style networks)."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..models import layout, stylize
from . import comfy, schema


def _weight_input(name: str, tooltip: str, optional: bool = False) -> io.Float.Input:
    return io.Float.Input(name, default=1.0, min=0.0, max=100.0, step=0.05, optional=optional, tooltip=tooltip)


class GanStyleTransfer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditStyleTransfer",
            display_name="GAN Style Transfer",
            category=schema.STYLE_CATEGORY,
            description="Arbitrary style transfer with an AdaIN model (Huang & Belongie 2017): the content "
            "images take the colours and textures of any style image(s). Several styles are blended by "
            "weight; a mask confines the change.",
            inputs=[
                io.Image.Input("content", tooltip="Images to stylise (any size from 16x16 px)."),
                io.Image.Input("style", tooltip="Style image: 1 image for every content image, or one per content "
                               "image. Its size may differ from the content's."),
                schema.model_input("An AdaIN model from Load GAN Model (convert the public vgg_normalised.pth + "
                                   "decoder.pth with `python -m nodes.train convert-adain`)."),
                io.Float.Input("alpha", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="How much style: 0 = the decoder's reconstruction of the content, 1 = full "
                               "style."),
                io.Boolean.Input("preserve_colour", default=False,
                                 tooltip="Keep the content's colours: only the brightness (luma) of the stylised "
                                 "image is used."),
                _weight_input("style_weight", "Weight of `style` in the blend (weights are normalised to sum 1)."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional: stylise only where the mask is 1 (soft values blend); pixels "
                              "where it is 0 are returned unchanged. Batch 1 (used for every image) or the "
                              "content batch; must have the content's size."),
                io.Image.Input("style_2", optional=True, tooltip="Optional second style image, blended by weight."),
                _weight_input("style_2_weight", "Weight of `style_2` (used only when style_2 is connected).",
                              optional=True),
                io.Image.Input("style_3", optional=True, tooltip="Optional third style image, blended by weight."),
                _weight_input("style_3_weight", "Weight of `style_3` (used only when style_3 is connected).",
                              optional=True),
            ],
            outputs=[schema.image_output("The stylised images, content size.")],
        )

    @classmethod
    def execute(
        cls, content, style, model, alpha, preserve_colour, style_weight, mask=None, style_2=None,
        style_2_weight=1.0, style_3=None, style_3_weight=1.0,
    ) -> io.NodeOutput:
        model.loaded.expect(stylize.STYLE_TRANSFER, "GAN Style Transfer")
        core_content = schema.core_image(content, "GAN Style Transfer", "content")
        named = [("style", style, style_weight), ("style_2", style_2, style_2_weight),
                 ("style_3", style_3, style_3_weight)]
        used = [(name, layout.image_to_bchw(image), weight) for name, image, weight in named if image is not None]
        core_mask = layout.mask_to_b1hw(mask) if mask is not None else None
        _, device = comfy.load_to_device(model)
        out = stylize.adain_style(
            model.loaded, core_content, [image for _, image, _ in used], [weight for _, _, weight in used], alpha,
            preserve_colour=preserve_colour, mask=core_mask, device=device,
            progress=comfy.progress(core_content.shape[0]), names=[name for name, _, _ in used],
        )
        return schema.image_result(out)


class GanStylize(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditStylize",
            display_name="GAN Stylize",
            category=schema.STYLE_CATEGORY,
            description="Stylise images with a network trained for one style: a fast neural style "
            "TransformerNet (Johnson et al.) or a CycleGAN/pix2pix generator (e.g. photo -> Monet). "
            "Strength blends the result with the input; large images can be processed in tiles.",
            inputs=[
                io.Image.Input("image", tooltip="Images to stylise (any size)."),
                schema.model_input("A fast-style (transformer_net) model or a CycleGAN/pix2pix generator from "
                                   "Load GAN Model."),
                schema.strength_input("Blend with the input: 0 = the input unchanged, 1 = the network's result."),
                io.Int.Input("tile", default=0, min=0, max=8192, step=16,
                             tooltip="Fast-style models: process images in tiles of this many px, blended over "
                             "the overlap, to bound memory on large images (at least 16; each tile is "
                             "normalised on its own, so the look shifts slightly). 0 = whole images. "
                             "Generator models always run whole images."),
                io.Int.Input("overlap", default=32, min=0, max=4096, step=8,
                             tooltip="Tiles only: px shared by neighbouring tiles and blended linearly (at most "
                             "half the tile)."),
            ],
            outputs=[schema.image_output("The stylised images, input size.")],
        )

    @classmethod
    def execute(cls, image, model, strength, tile, overlap) -> io.NodeOutput:
        model.loaded.expect(stylize.ONE_STYLE, "GAN Stylize")
        core_image = schema.core_image(image, "GAN Stylize")
        _, device = comfy.load_to_device(model)
        out = stylize.one_style(
            model.loaded, core_image, strength=strength, device=device, progress=comfy.progress(core_image.shape[0]),
            tile=tile, overlap=overlap,
        )
        return schema.image_result(out)


NODES = [GanStyleTransfer, GanStylize]
