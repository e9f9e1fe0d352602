"""`Load GAN Model`: a weights file from the gan_edit folder -> GAN_MODEL."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..models import weights
from . import comfy
from .schema import CATEGORY, GanModel


class LoadGanModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditLoadModel",
            display_name="Load GAN Model",
            category=CATEGORY,
            description="Load a GAN Edit weights file (.safetensors written by this pack or its trainer), or a "
            "public .pth checkpoint of a supported architecture, from models/gan_edit/ or the pack's starter "
            "weights.",
            inputs=[
                io.Combo.Input("model_name", options=comfy.model_names(), tooltip="File in the gan_edit model folder."),
            ],
            outputs=[GanModel.Output("model", tooltip="The loaded model, with its task and architecture.")],
        )

    @classmethod
    def execute(cls, model_name) -> io.NodeOutput:
        loaded = weights.load(comfy.model_path(model_name))
        return io.NodeOutput(comfy.wrap_model(loaded))


NODES = [LoadGanModel]
