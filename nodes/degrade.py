"""`Degrade Image`: seeded, reproducible degradations (a thin wrapper over models/degrade.py)."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..models.enhance import degrade
from . import comfy, schema

CUSTOM = "custom"
PRESET_CHOICES = ["restore", "enhance", CUSTOM, *degrade.FIXED]


class DegradeImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditDegradeImage",
            display_name="Degrade Image",
            category=schema.RESTORE_CATEGORY,
            description="Make seeded, reproducible degraded copies (blur, resize, noise, JPEG, colour and exposure "
            "faults, after Real-ESRGAN's recipe): training pairs, or the fixed evaluation degradations.",
            inputs=[
                io.Image.Input("image", tooltip="Images to degrade (any batch; an alpha channel is kept as it is)."),
                io.Combo.Input(
                    "preset",
                    options=PRESET_CHOICES,
                    default="restore",
                    tooltip="restore: random blur, resize, noise and JPEG. enhance: random colour cast, exposure, "
                    "contrast and saturation. custom: the five settings below. The others are the fixed "
                    "evaluation degradations (noise sigma 15/25, blur 1.5 + noise 5, JPEG quality 20, underexposed, "
                    "low contrast).",
                ),
                io.Float.Input(
                    "blur_sigma_max",
                    default=2.0,
                    min=0.0,
                    max=5.0,
                    step=0.1,
                    tooltip="custom only: Gaussian blur (isotropic or rotated anisotropic), sigma up to this "
                    "many pixels. 0 = no blur; otherwise at least 0.1.",
                ),
                io.Float.Input(
                    "noise_sigma_max",
                    default=15.0,
                    min=0.0,
                    max=50.0,
                    step=0.5,
                    tooltip="custom only: Gaussian noise, sigma up to this on the 0..255 scale. 0 = no noise.",
                ),
                io.Int.Input(
                    "jpeg_quality_min",
                    default=50,
                    min=1,
                    max=100,
                    tooltip="custom only: JPEG compression at a quality between this and 95. 100 = no JPEG.",
                ),
                io.Float.Input(
                    "resize_scale_min",
                    default=1.0,
                    min=0.1,
                    max=1.0,
                    step=0.05,
                    tooltip="custom only: shrink by a scale between this and 1, then resize back (lost detail). "
                    "1 = no resize.",
                ),
                io.Float.Input(
                    "colour_strength",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="custom only: colour cast, exposure, lowered contrast and saturation; 1 = the enhance "
                    "preset's ranges, 0 = none.",
                ),
                schema.seed_input("Same image, settings and seed give the same result. Items of one batch differ."),
            ],
            outputs=[schema.image_output("The degraded images, same size.")],
        )

    @classmethod
    def execute(
        cls, image, preset, blur_sigma_max, noise_sigma_max, jpeg_quality_min, resize_scale_min, colour_strength, seed
    ) -> io.NodeOutput:
        if preset == CUSTOM:
            config = degrade.custom_config(blur_sigma_max, noise_sigma_max, jpeg_quality_min, resize_scale_min,
                                           colour_strength)
        else:
            config = degrade.preset(preset)
        core = schema.core_image(image, "Degrade Image")
        out = degrade.degrade(core, config, seed, progress=comfy.progress(core.shape[0]))
        return schema.image_result(out)


NODES = [DegradeImage]
