"""GAN Inpaint and Load GAN Model inside a real ComfyUI: compositing, batches, bad models, bad masks."""

import numpy as np
import pytest
import torch
from PIL import Image

from models import weights
from models.archs.context_encoder import AnyMaskConfig, AnyMaskContextEncoder
from models.archs.patchgan import PatchGAN, PatchGANConfig
from nodes.harness.client import ExecutionFailed, PromptRejected

pytestmark = pytest.mark.integration

TINY = AnyMaskConfig(base_channels=8, downsamplings=3, bottleneck_blocks=1, norm="batch")


@pytest.fixture(scope="module")
def server(comfy, repo_root):
    """The shared server with sample photos uploaded and a few model files in models/gan_edit/."""
    for path in sorted((repo_root / "workflows" / "inputs").glob("*.jpg")):
        comfy.client.upload_image(path)
    folder = comfy.server.base_dir / "models" / "gan_edit"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    weights.save(AnyMaskContextEncoder(TINY), folder / "tiny_inpaint.safetensors", "context_encoder_anymask", TINY,
                 "inpaint", {"made_by": "test"})
    d = PatchGANConfig(input_nc=3, ndf=4, n_layers=1)
    weights.save(PatchGAN(d), folder / "a_discriminator.safetensors", "patchgan", d, "discriminate")
    data = (folder / "tiny_inpaint.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    return comfy


def _graph(model="tiny_inpaint.safetensors", mask_node=None, image_batch=1, mismatch="error"):
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "coffee.jpg"}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": image_batch}},
        "3": mask_node or {"class_type": "GanEditBoxMask", "inputs": {
            "width": 600, "height": 400, "batch_size": 1, "image": ["1", 0], "units": "pixels", "centered": False,
            "x": 200.0, "y": 100.0, "box_width": 150.0, "box_height": 120.0}},
        "4": {"class_type": "GanEditLoadModel", "inputs": {"model_name": model}},
        "5": {"class_type": "GanEditInpaint", "inputs": {
            "image": ["2", 0], "mask": ["3", 0], "model": ["4", 0], "feather": 0, "context": 0.5,
            "working_size": 1024, "colour_match": False, "mask_size_mismatch": mismatch}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "t/result"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t/original"}},
    }
    return graph


def _run(server, graph, tmp_path):
    files = server.client.run(graph, tmp_path, stem="g")
    by_node = {}
    for path in sorted(files):
        by_node.setdefault(path.stem.split("_")[1], []).append(np.asarray(Image.open(path).convert("RGB")))
    return by_node


def test_nodes_are_registered_with_tooltips(server):
    info = server.client.object_info()
    inpaint, loader = info["GanEditInpaint"], info["GanEditLoadModel"]
    assert all(spec[1].get("tooltip") for spec in inpaint["input"]["required"].values())
    kind, spec = loader["input"]["required"]["model_name"]
    options = spec["options"] if kind == "COMBO" else kind
    assert {"tiny_inpaint.safetensors", "a_discriminator.safetensors"} <= set(options)


def test_pixels_outside_the_hole_are_kept_bit_for_bit(server, tmp_path):
    out = _run(server, _graph(image_batch=2), tmp_path)
    results, originals = out["6"], out["7"]
    assert len(results) == 2
    hole = np.zeros((400, 600), bool)
    hole[100:220, 200:350] = True
    for result, original in zip(results, originals, strict=True):
        assert np.array_equal(result[~hole], original[~hole])
        assert np.abs(result[hole].astype(int) - original[hole]).mean() > 2  # the hole was repainted


def test_wrong_task_model_names_the_task(server, tmp_path):
    expected = "needs a model for the 'inpaint' task.*'patchgan' model for 'discriminate'"
    with pytest.raises(ExecutionFailed, match=expected):
        _run(server, _graph(model="a_discriminator.safetensors"), tmp_path)


def test_truncated_and_missing_weights(server, tmp_path):
    with pytest.raises(ExecutionFailed, match="truncated"):
        _run(server, _graph(model="truncated.safetensors"), tmp_path)
    with pytest.raises((PromptRejected, ExecutionFailed), match="not_there.safetensors"):
        _run(server, _graph(model="not_there.safetensors"), tmp_path)


def _solid(value, width, height):
    return {"class_type": "SolidMask", "inputs": {"value": value, "width": width, "height": height}}


def test_empty_mask_returns_the_image_and_full_mask_works(server, tmp_path):
    out = _run(server, _graph(mask_node=_solid(0.0, 600, 400)), tmp_path / "empty")
    assert np.array_equal(out["6"][0], out["7"][0])
    out = _run(server, _graph(mask_node=_solid(1.0, 600, 400)), tmp_path / "full")
    assert out["6"][0].shape == (400, 600, 3) and not np.array_equal(out["6"][0], out["7"][0])


def test_mask_size_mismatch_is_an_error_unless_resizing_is_chosen(server, tmp_path):
    with pytest.raises(ExecutionFailed, match=r"mask size must equal the image size \(400, 600\).*\(64, 64\)"):
        _run(server, _graph(mask_node=_solid(1.0, 64, 64)), tmp_path / "a")
    out = _run(server, _graph(mask_node=_solid(1.0, 64, 64), mismatch="resize mask"), tmp_path / "b")
    assert out["6"][0].shape == (400, 600, 3)


def test_batch_mismatch_is_an_error_and_the_server_carries_on(server, tmp_path):
    masks3 = {"class_type": "GanEditRandomBlocksMask", "inputs": {
        "width": 600, "height": 400, "batch_size": 3, "seed": 1, "count_min": 1, "count_max": 3, "size_min": 0.1,
        "size_max": 0.3, "max_coverage": 0.5, "coverage": "any"}}
    with pytest.raises(ExecutionFailed, match="mask batch must be 1 or equal the image batch 2"):
        _run(server, _graph(mask_node=masks3, image_batch=2), tmp_path / "a")
    out = _run(server, _graph(mask_node=masks3, image_batch=3), tmp_path / "b")
    assert len(out["6"]) == 3


def test_widget_bounds_are_the_cores(server):
    """Inpaint and Edit offer exactly the working_size / context / strength ranges the core accepts."""
    from models.ranges import CONTEXT, STRENGTH, WORKING_SIZE

    info = server.client.object_info()
    for node in ("GanEditInpaint", "GanEditEdit"):
        required = info[node]["input"]["required"]
        assert (required["working_size"][1]["min"], required["working_size"][1]["max"]) == (
            WORKING_SIZE.low, WORKING_SIZE.high)
        assert (required["context"][1]["min"], required["context"][1]["max"]) == (CONTEXT.low, CONTEXT.high)
    for node in ("GanEditEdit", "GanEditEnhance", "GanEditStylize"):
        strength = info[node]["input"]["required"]["strength"][1]
        assert (strength["min"], strength["max"]) == (STRENGTH.low, STRENGTH.high)


def test_texture_sharpens_the_fill_and_old_prompts_without_it_still_run(server, tmp_path):
    from models.ranges import STRENGTH

    texture = server.client.object_info()["GanEditInpaint"]["input"]["optional"]["texture"][1]
    assert texture["tooltip"] and (texture["min"], texture["max"], texture["default"]) == (
        STRENGTH.low, STRENGTH.high, 0.0)
    plain = _run(server, _graph(), tmp_path / "plain")  # a prompt from before the option: no texture key
    graph = _graph()
    graph["5"]["inputs"]["texture"] = 1.0
    textured = _run(server, graph, tmp_path / "textured")
    original = plain["7"][0].astype(float)
    hole = np.zeros((400, 600), bool)
    hole[100:220, 200:350] = True
    assert np.array_equal(textured["6"][0][~hole], plain["6"][0][~hole])

    def detail(image):  # mean absolute horizontal step inside the hole
        return np.abs(np.diff(image.astype(float)[hole].reshape(120, 150, 3), axis=1)).mean()

    assert detail(plain["6"][0]) < 0.5 * detail(original) < detail(textured["6"][0]) - detail(plain["6"][0])
