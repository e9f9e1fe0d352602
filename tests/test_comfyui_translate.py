"""GAN Image to Image inside a real ComfyUI: converted public checkpoints, any size, wrong task."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reference import FIXTURES

from models import translate, weights
from models.archs.context_encoder import AnyMaskConfig, AnyMaskContextEncoder
from models.archs.pix2pix import UnetGenerator, UnetGeneratorConfig
from models.translate import pairs
from nodes.harness.client import ExecutionFailed

pytestmark = pytest.mark.integration

RANDOM_UNET = "translate_random_unet64.safetensors"


@pytest.fixture(scope="module")
def server(comfy, repo_root):
    """The shared server with chelsea.jpg (451x300) uploaded and translate models in models/gan_edit/."""
    comfy.client.upload_image(repo_root / "workflows" / "inputs" / "chelsea.jpg")
    folder = comfy.server.base_dir / "models" / "gan_edit"
    folder.mkdir(parents=True, exist_ok=True)
    if FIXTURES.is_dir():
        weights.convert(FIXTURES / "cyclegan_resnet6_instance_dropout.pth", folder / "translate_resnet6.safetensors")
        weights.convert(FIXTURES / "pix2pix_unet256_batch_dropout.pth", folder / "translate_unet256.safetensors")
    config = AnyMaskConfig(base_channels=4, downsamplings=2, bottleneck_blocks=1)
    torch.manual_seed(0)
    weights.save(AnyMaskContextEncoder(config), folder / "translate_not_a_translator.safetensors",
                 "context_encoder_anymask", config, "inpaint")
    unet = UnetGeneratorConfig(ngf=4, num_downs=6, norm="instance", use_dropout=True)
    weights.save(pairs.fold_grey_input(UnetGenerator(unet)), folder / RANDOM_UNET, "pix2pix_unet", unet, "translate",
                 {"made_by": "tests: random weights, grey input folded"})
    return comfy


def _graph(model: str, normalization: str = "eval", size_handling: str = "pad") -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "chelsea.jpg"}},
        "2": {"class_type": "GanEditLoadModel", "inputs": {"model_name": model}},
        "3": {"class_type": "GanEditImageToImage", "inputs": {
            "image": ["1", 0], "model": ["2", 0], "normalization": normalization, "size_handling": size_handling}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "translate/out"}},
    }


def _run(server, graph: dict, tmp_path: Path) -> list[np.ndarray]:
    files = server.client.run(graph, tmp_path, stem="g")
    return [np.asarray(Image.open(path).convert("RGB")) for path in sorted(files)]


def test_node_is_registered_with_tooltips(server):
    info = server.client.object_info()["GanEditImageToImage"]
    assert info["category"] == "GAN Edit" and info["display_name"] == "GAN Image to Image"
    assert all(spec[1].get("tooltip") for spec in info["input"]["required"].values())
    assert info["output"] == ["IMAGE"]


@pytest.mark.parametrize(
    "model, normalization, size_handling",
    [
        ("translate_resnet6.safetensors", "eval", "pad"),
        ("translate_unet256.safetensors", "per-image batch statistics", "pad"),
        ("translate_unet256.safetensors", "eval", "resize"),
    ],
)
def test_output_has_the_input_size(server, tmp_path, model, normalization, size_handling):
    (out,) = _run(server, _graph(model, normalization, size_handling), tmp_path)
    assert out.shape == (300, 451, 3)
    assert out.std() > 1.0  # a real picture, not a constant


def test_normalization_modes_differ_for_a_batch_norm_model(server, tmp_path):
    (evaluated,) = _run(server, _graph("translate_unet256.safetensors", "eval"), tmp_path / "a")
    (batch_stats,) = _run(server, _graph("translate_unet256.safetensors", "per-image batch statistics"), tmp_path / "b")
    assert np.abs(evaluated.astype(int) - batch_stats).max() > 5


def test_an_inpaint_model_is_refused_naming_the_task(server, tmp_path):
    expected = ("GAN Image to Image needs a model for the 'translate' task.*'context_encoder_anymask' model for "
                "'inpaint'")
    with pytest.raises(ExecutionFailed, match=expected):
        _run(server, _graph("translate_not_a_translator.safetensors"), tmp_path)


def test_a_model_file_of_ours_gives_what_the_core_gives(server, tmp_path, repo_root):
    """A random-weight U-Net written by weights.save: ComfyUI's result is the core's, to 8-bit rounding."""
    (out,) = _run(server, _graph(RANDOM_UNET), tmp_path)
    photo = np.array(Image.open(repo_root / "workflows" / "inputs" / "chelsea.jpg").convert("RGB"))
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    model = weights.load(server.server.base_dir / "models" / "gan_edit" / RANDOM_UNET)
    expected = (translate.translate(model, image)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert out.shape == (300, 451, 3) and out.std() > 1.0
    assert np.abs(out.astype(int) - expected).max() <= 1
    grey = translate.translate(model, pairs.grey(image))  # the folded first layer sees the luma only
    assert np.abs(out.astype(int) - (grey[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).max() <= 1
