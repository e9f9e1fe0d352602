"""comfyui-gan-edit: GAN image editing and restoration nodes for ComfyUI.

ComfyUI imports this file; it registers the `gan_edit` model folder and hands ComfyUI the nodes
through the V3 entry point. The core (models/) is plain PyTorch and does not need ComfyUI.
"""

import os

from comfy_api.v0_0_2 import ComfyExtension, io

from .nodes import classical, damage, degrade, edit, enhance, inpaint, loader, masks, style, training, translate
from .nodes.comfy import register_model_folder

register_model_folder(os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "weights"))


class GanEditExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [
            *masks.NODES, *loader.NODES, *inpaint.NODES, *translate.NODES, *style.NODES, *degrade.NODES, *enhance.NODES,
            *edit.NODES, *damage.NODES, *training.NODES, *classical.NODES,
        ]


async def comfy_entrypoint() -> GanEditExtension:
    return GanEditExtension()
