"""GAN Style Transfer and GAN Stylize inside a real ComfyUI: converted public-format checkpoints, alpha,
masks, style blends, strength, tiles, and models of the wrong kind."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reference import FIXTURES

from models import stylize, weights
from models.archs.context_encoder import AnyMaskConfig, AnyMaskContextEncoder
from models.archs.patchgan import PatchGAN, PatchGANConfig
from nodes.harness.client import ExecutionFailed

pytestmark = pytest.mark.integration

WIDTH, HEIGHT = 128, 96
TOLERANCE = 1.25  # in 0..255: SaveImage truncates to 8 bits (up to one level), plus float noise across devices


@pytest.fixture(scope="module")
def folder(comfy) -> Path:
    return comfy.server.base_dir / "models" / "gan_edit"


@pytest.fixture(scope="module")
def server(comfy, repo_root, folder):
    """The shared server with photos uploaded and style models (plus wrong-kind ones) in models/gan_edit/."""
    for name in ("chelsea.jpg", "astronaut.jpg", "coffee.jpg"):
        comfy.client.upload_image(repo_root / "workflows" / "inputs" / name)
    folder.mkdir(parents=True, exist_ok=True)
    if FIXTURES.is_dir():
        weights.convert_adain_pair(FIXTURES / "adain_vgg.pth", FIXTURES / "adain_decoder.pth",
                           folder / "style_adain.safetensors")
        weights.convert(FIXTURES / "fast_style_transformernet.pth", folder / "style_fast.safetensors")
        weights.convert(FIXTURES / "cyclegan_resnet9_instance_nodropout.pth", folder / "style_cyclegan.safetensors")
    torch.manual_seed(0)
    config = AnyMaskConfig(base_channels=4, downsamplings=2, bottleneck_blocks=1)
    weights.save(AnyMaskContextEncoder(config), folder / "style_inpaint.safetensors", "context_encoder_anymask",
                 config, "inpaint")
    d = PatchGANConfig(input_nc=3, ndf=4, n_layers=1)
    weights.save(PatchGAN(d), folder / "style_discriminator.safetensors", "patchgan", d, "discriminate")
    return comfy


def _add_image(graph: dict, prefix: str, image: str, width: int = WIDTH, height: int = HEIGHT,
               batch: int = 1) -> list:
    """Add LoadImage -> ImageScale (nearest: the 8-bit values are kept) -> RepeatImageBatch under the ids
    prefix+"1".."3"; returns the link to the batch."""
    graph[f"{prefix}1"] = {"class_type": "LoadImage", "inputs": {"image": image}}
    graph[f"{prefix}2"] = {"class_type": "ImageScale", "inputs": {
        "image": [f"{prefix}1", 0], "upscale_method": "nearest-exact", "width": width, "height": height,
        "crop": "center"}}
    graph[f"{prefix}3"] = {"class_type": "RepeatImageBatch", "inputs": {"image": [f"{prefix}2", 0], "amount": batch}}
    return [f"{prefix}3", 0]


def _style_graph(model: str = "style_adain.safetensors", *, alpha: float = 1.0, preserve_colour: bool = False,
                 mask: dict | None = None, style_batch: int = 1, content_batch: int = 1,
                 second: tuple[str, float] | None = None, style_weight: float = 1.0) -> dict:
    graph: dict = {}
    content = _add_image(graph, "10", "chelsea.jpg", batch=content_batch)
    style = _add_image(graph, "20", "astronaut.jpg", 64, 64, batch=style_batch)
    inputs = {"content": content, "style": style, "model": ["3", 0], "alpha": alpha,
              "preserve_colour": preserve_colour, "style_weight": style_weight}
    if mask is not None:
        graph["4"] = mask
        inputs["mask"] = ["4", 0]
    if second is not None:
        inputs["style_2"] = _add_image(graph, "30", second[0], 80, 48)
        inputs["style_2_weight"] = second[1]
    graph["3"] = {"class_type": "GanEditLoadModel", "inputs": {"model_name": model}}
    graph["5"] = {"class_type": "GanEditStyleTransfer", "inputs": inputs}
    graph["6"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "style/result"}}
    graph["7"] = {"class_type": "SaveImage", "inputs": {"images": content, "filename_prefix": "style/content"}}
    return graph


def _stylize_graph(model: str = "style_fast.safetensors", *, strength: float = 1.0, tile: int = 0,
                   overlap: int = 32) -> dict:
    graph: dict = {}
    image = _add_image(graph, "10", "coffee.jpg")
    graph["3"] = {"class_type": "GanEditLoadModel", "inputs": {"model_name": model}}
    graph["5"] = {"class_type": "GanEditStylize", "inputs": {
        "image": image, "model": ["3", 0], "strength": strength, "tile": tile, "overlap": overlap}}
    graph["6"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "style/result"}}
    graph["7"] = {"class_type": "SaveImage", "inputs": {"images": image, "filename_prefix": "style/content"}}
    return graph


def _run(server, graph: dict, tmp_path: Path) -> dict[str, list[np.ndarray]]:
    """The saved images by SaveImage node id ("6" = result, "7" = content), as uint8 HWC arrays."""
    by_node: dict[str, list[np.ndarray]] = {}
    for path in sorted(server.client.run(graph, tmp_path, stem="g")):
        by_node.setdefault(path.stem.split("_")[1], []).append(np.asarray(Image.open(path).convert("RGB")))
    return by_node


def _bchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0


def _hwc255(image: torch.Tensor) -> np.ndarray:
    return image[0].permute(1, 2, 0).double().numpy() * 255.0


def _box(x: int, y: int, width: int, height: int) -> dict:
    return {"class_type": "GanEditBoxMask", "inputs": {
        "width": WIDTH, "height": HEIGHT, "batch_size": 1, "units": "pixels", "centered": False,
        "x": float(x), "y": float(y), "box_width": float(width), "box_height": float(height)}}


def _solid(value: float, width: int, height: int) -> dict:
    return {"class_type": "SolidMask", "inputs": {"value": value, "width": width, "height": height}}


def test_nodes_are_registered_with_tooltips(server):
    info = server.client.object_info()
    for node_id, display in (("GanEditStyleTransfer", "GAN Style Transfer"), ("GanEditStylize", "GAN Stylize")):
        node = info[node_id]
        assert node["category"] == "GAN Edit/style" and node["display_name"] == display
        specs = {**node["input"]["required"], **node["input"].get("optional", {})}
        assert all(spec[1].get("tooltip") for spec in specs.values())
        assert node["output"] == ["IMAGE"] and node["output_name"] == ["image"]
    optional = info["GanEditStyleTransfer"]["input"]["optional"]
    assert {"mask", "style_2", "style_2_weight", "style_3", "style_3_weight"} <= set(optional)


def test_alpha_0_is_the_decoders_reconstruction_and_alpha_1_differs(server, folder, tmp_path):
    zero = _run(server, _style_graph(alpha=0.0), tmp_path / "zero")
    full = _run(server, _style_graph(alpha=1.0), tmp_path / "full")
    result, content = zero["6"][0], zero["7"][0]
    assert result.shape == (HEIGHT, WIDTH, 3)
    model = weights.load(folder / "style_adain.safetensors")
    x = _bchw(content)
    with torch.inference_mode():
        reconstruction = model.module.decode(model.module.decoder_inputs(x)).clamp(0, 1)
    core = stylize.adain_style(model, x, [torch.rand(1, 3, 32, 32)], alpha=0.0)
    assert torch.allclose(core, reconstruction, atol=1e-5)
    assert np.abs(result - _hwc255(reconstruction)).max() <= TOLERANCE
    assert np.abs(result.astype(int) - content).mean() > 1.0  # a reconstruction, not the content itself
    assert np.abs(full["6"][0].astype(int) - result).mean() > 1.0  # the style did something


def test_alpha_1_matches_the_core_function(server, folder, tmp_path):
    out = _run(server, _style_graph(alpha=1.0, preserve_colour=True), tmp_path)
    graph = _style_graph()
    style_only = {k: v for k, v in graph.items() if k.startswith("20")}
    style_only["8"] = {"class_type": "SaveImage", "inputs": {"images": ["203", 0], "filename_prefix": "style/s"}}
    (style,) = _run(server, style_only, tmp_path / "style")["8"]
    model = weights.load(folder / "style_adain.safetensors")
    core = stylize.adain_style(model, _bchw(out["7"][0]), [_bchw(style)], alpha=1.0, preserve_colour=True)
    assert np.abs(out["6"][0] - _hwc255(core)).max() <= TOLERANCE


def test_mask_confines_the_change(server, tmp_path):
    out = _run(server, _style_graph(mask=_box(32, 16, 48, 40)), tmp_path)
    result, content = out["6"][0], out["7"][0]
    inside = np.zeros((HEIGHT, WIDTH), bool)
    inside[16:56, 32:80] = True
    assert np.array_equal(result[~inside], content[~inside])
    assert np.abs(result[inside].astype(int) - content[inside]).mean() > 1.0


def test_one_mask_serves_a_batch_and_a_wrong_size_is_an_error(server, tmp_path):
    out = _run(server, _style_graph(mask=_box(0, 0, 64, 96), content_batch=2), tmp_path / "a")
    assert len(out["6"]) == 2
    for result, content in zip(out["6"], out["7"], strict=True):
        assert np.array_equal(result[:, 64:], content[:, 64:])
    with pytest.raises(ExecutionFailed, match=r"mask size must equal the content size \(96, 128\).*\(64, 64\)"):
        _run(server, _style_graph(mask=_solid(1.0, 64, 64)), tmp_path / "b")


def test_two_styles_weighted_1_0_equal_the_first_alone(server, tmp_path):
    single = _run(server, _style_graph(), tmp_path / "one")["6"][0]
    blended = _run(server, _style_graph(second=("coffee.jpg", 0.0)), tmp_path / "two")["6"][0]
    assert np.array_equal(single, blended)  # weight 0 contributes exactly nothing
    other = _run(server, _style_graph(second=("coffee.jpg", 1.0), style_weight=0.0), tmp_path / "other")["6"][0]
    assert np.abs(other.astype(int) - single).mean() > 1.0


def test_style_batch_mismatch_is_an_error(server, tmp_path):
    with pytest.raises(ExecutionFailed, match=r"style has batch 3; a style batch must be 1 .*content batch 2"):
        _run(server, _style_graph(style_batch=3, content_batch=2), tmp_path)


def test_stylize_strength_0_is_the_input_and_1_the_network(server, folder, tmp_path):
    zero = _run(server, _stylize_graph(strength=0.0), tmp_path / "zero")
    assert np.array_equal(zero["6"][0], zero["7"][0])
    full = _run(server, _stylize_graph(strength=1.0), tmp_path / "full")
    model = weights.load(folder / "style_fast.safetensors")
    core = stylize.fast_style(model, _bchw(full["7"][0]))
    assert full["6"][0].shape == (HEIGHT, WIDTH, 3)
    assert np.abs(full["6"][0] - _hwc255(core)).max() <= TOLERANCE


def test_stylize_in_tiles_keeps_the_size(server, tmp_path):
    out = _run(server, _stylize_graph(tile=64, overlap=16), tmp_path)
    assert out["6"][0].shape == (HEIGHT, WIDTH, 3) and out["6"][0].std() > 1.0
    with pytest.raises(ExecutionFailed, match="overlap must be an int"):
        _run(server, _stylize_graph(tile=32, overlap=32), tmp_path / "bad")


def test_stylize_takes_a_cyclegan_generator(server, tmp_path):
    out = _run(server, _stylize_graph("style_cyclegan.safetensors", strength=0.5), tmp_path)
    result, content = out["6"][0], out["7"][0]
    assert result.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(result.astype(int) - content).mean() > 1.0


@pytest.mark.parametrize("model, task", [
    ("style_inpaint.safetensors", "inpaint"),
    ("style_discriminator.safetensors", "discriminate"),
])
def test_models_of_other_tasks_are_refused_naming_the_task(server, tmp_path, model, task):
    with pytest.raises(ExecutionFailed, match=rf"GAN Style Transfer needs an AdaIN model.*model for '{task}'"):
        _run(server, _style_graph(model), tmp_path / "transfer")
    with pytest.raises(ExecutionFailed, match=rf"GAN Stylize needs a fast-style model.*model for '{task}'"):
        _run(server, _stylize_graph(model), tmp_path / "stylize")


def test_each_node_points_to_the_other_for_the_others_models(server, tmp_path):
    with pytest.raises(ExecutionFailed, match=r"'transformer_net' model for 'stylize' \(use GAN Stylize"):
        _run(server, _style_graph("style_fast.safetensors"), tmp_path / "a")
    with pytest.raises(ExecutionFailed, match=r"'adain' model for 'stylize' \(use GAN Style Transfer"):
        _run(server, _stylize_graph("style_adain.safetensors"), tmp_path / "b")
