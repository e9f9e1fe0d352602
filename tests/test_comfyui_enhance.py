"""The GAN Enhance node inside a real ComfyUI server, driven over its HTTP API."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from models import weights
from models.archs.enhance import ARCHITECTURE, EnhanceConfig, EnhanceNet
from nodes.harness.client import ExecutionFailed

pytestmark = pytest.mark.integration

NODE = "GanEditEnhance"
TINY = EnhanceConfig(base_channels=8, levels=2, blocks=1, context_size=32, curve_knots=8)


@pytest.fixture(scope="module")
def server(comfy, repo_root):
    """The shared server with the sample photos and a small enhance model whose output differs from its input."""
    comfy.client.upload_image(repo_root / "workflows" / "inputs" / "coffee.jpg")
    folder = comfy.server.base_dir / "models" / "gan_edit"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = EnhanceNet(TINY)
    for head in (net.tail, net.context.colour, net.context.film, net.context.curve):
        nn.init.normal_(head.weight, std=0.05)
        nn.init.normal_(head.bias, std=0.02)
    weights.save(net, folder / "tiny_enhance.safetensors", ARCHITECTURE.id, TINY, "enhance", {"made_by": "test"})
    return comfy


def _graph(model="tiny_enhance.safetensors", strength=1.0, tile=512, overlap=32, mask=False):
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "coffee.jpg"}},
        "2": {"class_type": "GanEditLoadModel", "inputs": {"model_name": model}},
        "3": {"class_type": NODE, "inputs": {"image": ["1", 0], "model": ["2", 0], "strength": strength,
                                             "tile_size": tile, "tile_overlap": overlap}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "t/enhanced"}},
    }
    if mask:
        graph["5"] = {"class_type": "GanEditBoxMask", "inputs": {
            "width": 600, "height": 400, "batch_size": 1, "image": ["1", 0], "units": "pixels", "centered": False,
            "x": 100.0, "y": 50.0, "box_width": 200.0, "box_height": 150.0}}
        graph["3"]["inputs"]["mask"] = ["5", 0]
    return graph


def _run(server, graph, tmp_path, stem="e") -> np.ndarray:
    (path,) = server.client.run(graph, tmp_path, stem=stem)
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def _original(server) -> np.ndarray:
    return np.asarray(Image.open(server.server.input_dir / "coffee.jpg").convert("RGB")).astype(np.int16)


def test_node_is_registered_with_tooltips(server):
    schema = server.client.object_info()[NODE]
    assert schema["display_name"] == "GAN Enhance" and schema["category"] == "GAN Edit/restore"
    inputs = {**schema["input"]["required"], **schema["input"].get("optional", {})}
    assert set(inputs) == {"image", "model", "upscale_model", "strength", "tile_size", "tile_overlap", "mask"}
    assert set(schema["input"].get("optional", {})) == {"model", "upscale_model", "mask"}  # one of the two models
    for name, spec in inputs.items():
        assert len(spec) > 1 and spec[1].get("tooltip"), f"{name} has no tooltip"


def test_strength_zero_returns_the_input_and_full_strength_changes_it(server, tmp_path):
    original = _original(server)
    assert np.array_equal(_run(server, _graph(strength=0.0), tmp_path, "s0"), original)
    changed = np.abs(_run(server, _graph(strength=1.0), tmp_path, "s1") - original).mean()
    assert changed > 1.0, changed


def test_tiles_blend_into_the_one_pass_result(server, tmp_path):
    whole = _run(server, _graph(tile=1024), tmp_path, "whole")
    tiled = _run(server, _graph(tile=192, overlap=32), tmp_path, "tiled")
    diff = np.abs(whole - tiled)
    assert diff.mean() < 0.5 and diff.max() <= 16, (diff.mean(), diff.max())


def test_mask_confines_the_change(server, tmp_path):
    original = _original(server)
    out = _run(server, _graph(mask=True), tmp_path, "masked")
    inside = np.zeros(original.shape[:2], bool)
    inside[50:200, 100:300] = True
    assert np.array_equal(out[~inside], original[~inside])
    assert np.abs(out[inside] - original[inside]).mean() > 1.0


def test_wrong_task_and_bad_settings_give_clear_errors_and_the_server_carries_on(server, tmp_path):
    with pytest.raises(ExecutionFailed, match="GAN Enhance needs a model for the 'enhance' task"):
        server.client.run(_graph(model="context_encoder_anymask.safetensors"), tmp_path)
    with pytest.raises(ExecutionFailed, match=r"overlap must be an int in \[0, tile/4\]"):
        server.client.run(_graph(tile=128, overlap=100), tmp_path)
    assert _run(server, _graph(strength=0.0), tmp_path, "after").shape == _original(server).shape
