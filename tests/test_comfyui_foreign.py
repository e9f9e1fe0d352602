"""Other projects' networks (through spandrel) in the pack's nodes inside a real ComfyUI."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from nodes.harness.client import ExecutionFailed

pytestmark = pytest.mark.integration

spandrel = pytest.importorskip("spandrel", reason="spandrel is one of ComfyUI's requirements")
from spandrel.architectures.Compact import Compact  # noqa: E402
from spandrel.architectures.DnCNN import DnCNN  # noqa: E402
from spandrel.architectures.LaMa import LaMa  # noqa: E402


def _random(net: torch.nn.Module) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.02)
    return net.eval()


@pytest.fixture(scope="module")
def dncnn():
    return _random(DnCNN(in_nc=3, out_nc=3, nc=8, nb=4))


@pytest.fixture(scope="module")
def server(comfy, repo_root, dncnn):
    """The shared server with a photo uploaded and public-architecture files where ComfyUI users keep them."""
    comfy.client.upload_image(repo_root / "workflows" / "inputs" / "coffee.jpg")
    ours = comfy.server.base_dir / "models" / "gan_edit"
    upscale = comfy.server.base_dir / "models" / "upscale_models"
    ours.mkdir(parents=True, exist_ok=True)
    upscale.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in _random(LaMa(in_nc=4, out_nc=3)).state_dict().items()},
              ours / "big-lama.safetensors")
    torch.save(dncnn.state_dict(), ours / "dncnn_color.pth")
    torch.save(dncnn.state_dict(), upscale / "1x_dncnn_color.pth")
    torch.save(_random(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)).state_dict(),
               upscale / "2x_compact.pth")
    return comfy


def _load(graph, name):
    graph["load"] = {"class_type": "LoadImage", "inputs": {"image": "coffee.jpg"}}
    graph["model"] = {"class_type": "GanEditLoadModel", "inputs": {"model_name": name}}
    return graph


def _enhance(**models):
    return {"class_type": "GanEditEnhance", "inputs": {"image": ["load", 0], "strength": 1.0, "tile_size": 512,
                                                       "tile_overlap": 32, **models}}


def _run(server, graph, tmp_path):
    files = server.client.run(graph, tmp_path, stem="g")
    return {path.stem.split("_")[1]: np.asarray(Image.open(path).convert("RGB")) for path in sorted(files)}


def _saving(graph, *nodes):
    """The graph with a SaveImage node `save<node>` for each node (outputs are keyed by those ids)."""
    for node in nodes:
        graph[f"save{node}"] = {"class_type": "SaveImage", "inputs": {"images": [node, 0], "filename_prefix": "f/x"}}
    return graph


def test_lama_fills_the_hole_and_keeps_every_other_pixel(server, tmp_path):
    graph = _load({}, "big-lama.safetensors")
    graph["mask"] = {"class_type": "GanEditBoxMask", "inputs": {
        "width": 600, "height": 400, "batch_size": 1, "image": ["load", 0], "units": "pixels", "centered": False,
        "x": 200.0, "y": 100.0, "box_width": 150.0, "box_height": 120.0}}
    graph["fill"] = {"class_type": "GanEditInpaint", "inputs": {
        "image": ["load", 0], "mask": ["mask", 0], "model": ["model", 0], "feather": 0, "context": 0.5,
        "working_size": 1024, "colour_match": False, "mask_size_mismatch": "error"}}
    out = _run(server, _saving(graph, "fill", "load"), tmp_path)
    result, original = out["savefill"], out["saveload"]
    hole = np.zeros(result.shape[:2], bool)
    hole[100:220, 200:350] = True
    assert np.array_equal(result[~hole], original[~hole])
    assert np.abs(result[hole].astype(int) - original[hole]).mean() > 2


def _expected_restore(dncnn, repo_root):
    image = np.asarray(Image.open(repo_root / "workflows" / "inputs" / "coffee.jpg").convert("RGB"))
    x = torch.from_numpy(image).float().div(255).permute(2, 0, 1)[None]
    descriptor = spandrel.ModelLoader().load_from_state_dict(dncnn.state_dict()).eval()
    with torch.no_grad():
        y = descriptor(x)
    return (y[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def test_a_public_restorer_from_load_gan_model_or_load_upscale_model_gives_spandrels_result(
        server, dncnn, repo_root, tmp_path):
    expected = _expected_restore(dncnn, repo_root)
    graph = _load({}, "dncnn_color.pth")
    graph["ours"] = _enhance(model=["model", 0])
    graph["up_model"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "1x_dncnn_color.pth"}}
    graph["theirs"] = _enhance(upscale_model=["up_model", 0])
    out = _run(server, _saving(graph, "ours", "theirs"), tmp_path)
    for name in ("saveours", "savetheirs"):
        assert out[name].shape == expected.shape
        assert np.abs(out[name].astype(int) - expected).max() <= 1, name
    assert np.abs(expected.astype(int) - np.asarray(Image.open(repo_root / "workflows" / "inputs" / "coffee.jpg")
                                                     .convert("RGB"))).mean() > 1  # the network changed it


def test_upscalers_wrong_tasks_and_missing_models_are_clear_errors(server, tmp_path):
    graph = _load({}, "big-lama.safetensors")
    graph["up_model"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "2x_compact.pth"}}
    graph["up"] = _enhance(upscale_model=["up_model", 0])
    _saving(graph, "up")
    with pytest.raises(ExecutionFailed, match=r"a 2x Compact upscaler; .*Upscale Image \(using Model\)"):
        _run(server, {k: v for k, v in graph.items() if k != "model"}, tmp_path / "a")
    graph["up"] = _enhance(model=["model", 0])
    with pytest.raises(ExecutionFailed, match="GAN Enhance needs a model for the 'enhance' task.*'spandrel' model "
                       "for 'inpaint'"):
        _run(server, graph, tmp_path / "b")
    graph["up"] = _enhance()
    with pytest.raises(ExecutionFailed, match="needs exactly one of model .* and upscale_model .*; got neither"):
        _run(server, {k: v for k, v in graph.items() if k not in ("model", "up_model")}, tmp_path / "c")
    out = _run(server, _saving({"load": graph["load"]}, "load"), tmp_path / "d")
    assert out["saveload"].shape == (400, 600, 3)
