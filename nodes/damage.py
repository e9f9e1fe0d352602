"""`Detect Damage`: find the scratches, dust, creases, stains and torn corners of a scanned old photo (-> MASK);
`Add Old-Photo Damage`: draw such damage over clean photos, with its true mask, to make pairs."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..models import damage, layout, masks
from ..models.enhance import MIN_TILE
from . import comfy, schema


class DetectDamage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditDetectDamage",
            display_name="Detect Damage",
            category=schema.RESTORE_CATEGORY,
            description="Find the damage of scanned old photos (scratches, hairs, dust specks, creases, stains, torn "
            "corners) with a damage detector, as a mask to inpaint. Film grain, fading, sepia and blur are not "
            "damage: leave those to GAN Enhance. Large photos are processed in overlapping tiles.",
            inputs=[
                io.Image.Input("image", tooltip="Scanned photos (any size and batch; grey or colour; alpha ignored)."),
                schema.model_input("A damage detector from Load GAN Model (the pack ships damage_detector)."),
                io.Float.Input("threshold", default=0.5, min=0.01, max=0.99, step=0.01,
                               tooltip="A pixel is damage when the detector is at least this sure. Lower finds more "
                               "(and more false alarms), higher finds less."),
                io.Int.Input("grow", default=2, min=-64, max=256,
                             tooltip="Pixels to grow the mask by (negative: shrink), so inpainting also covers the "
                             "soft rim of each scratch."),
                io.Int.Input("tile_size", default=512, min=MIN_TILE, max=8192, step=64,
                             tooltip="Largest tile side in pixels. Smaller tiles use less memory; on a GPU "
                             f"out-of-memory error the tile is halved automatically (down to {MIN_TILE})."),
                io.Int.Input("tile_overlap", default=32, min=0, max=512,
                             tooltip="Pixels shared by neighbouring tiles, blended with linear ramps (at most a "
                             "quarter of the tile size)."),
            ],
            outputs=[
                io.Mask.Output("out_mask", display_name="mask", tooltip="1 where the photo is damaged (to fill)."),
                io.Mask.Output("probability", tooltip="The detector's confidence per pixel, before threshold and "
                               "grow."),
                io.Image.Output("preview", tooltip="The photo with the mask tinted red over it."),
            ],
        )

    @classmethod
    def execute(cls, image, model, threshold, grow, tile_size, tile_overlap) -> io.NodeOutput:
        model.loaded.expect(damage.ACCEPTS, "Detect Damage")
        core_image = schema.core_image(image, "Detect Damage")
        _, device = comfy.load_to_device(model)
        probability = damage.detect(model.loaded, core_image, tile=tile_size, overlap=tile_overlap, device=device,
                                    progress=comfy.progress(core_image.shape[0]))
        mask = damage.to_mask(probability, threshold, grow)
        preview = masks.overlay(mask, core_image)
        out = comfy.intermediate_device()
        return io.NodeOutput(layout.b1hw_to_mask(mask).to(out), layout.b1hw_to_mask(probability).to(out),
                             layout.bchw_to_image(preview).to(out))


class AddOldPhotoDamage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditAddOldPhotoDamage",
            display_name="Add Old-Photo Damage",
            category=schema.RESTORE_CATEGORY,
            description="Draw synthetic old-photo damage over clean photos, seeded and reproducible: scratches, "
            "hairs, dust, creases, stains and torn corners (returned as the true mask), optionally over ageing "
            "(black and white, sepia, fading, grain, scan blur, JPEG; not in the mask). The damage the detector "
            "was trained on: use it to test a restoration workflow or to make training pairs.",
            inputs=[
                io.Image.Input("image", tooltip="Clean photos (grey or colour; an alpha channel is not accepted)."),
                schema.seed_input("Seed of the damage; item i of a batch gets its own draw from it."),
                io.Boolean.Input("ageing", default=True,
                                 tooltip="Also age the photo (grey, sepia, fading, grain, blur, JPEG). Off: only the "
                                 "damage, so the output differs from the input only inside the mask (and where a "
                                 "crease's soft shadow darkens it)."),
            ],
            outputs=[
                schema.image_output("The damaged photos, same size."),
                io.Mask.Output("out_mask", display_name="mask", tooltip="1 where the damage destroyed the photo."),
            ],
        )

    @classmethod
    def execute(cls, image, seed, ageing) -> io.NodeOutput:
        core = layout.image_to_bchw(image)
        if core.shape[1] == 4:
            raise ValueError("Add Old-Photo Damage takes RGB or grey images, got one with an alpha channel (4 "
                             "channels); remove the alpha first")
        comfy.raise_if_interrupted()
        damaged, mask = damage.render(core, seed, damage.DAMAGE if ageing else damage.LOCAL_ONLY)
        out = comfy.intermediate_device()
        return io.NodeOutput(layout.bchw_to_image(damaged).to(out), layout.b1hw_to_mask(mask).to(out))


NODES = [DetectDamage, AddOldPhotoDamage]
