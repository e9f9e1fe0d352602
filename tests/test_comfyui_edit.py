"""GAN Edit inside a real ComfyUI: compositing per instruction, references, batches and the error cases."""

import numpy as np
import pytest
import torch
from PIL import Image

from models import weights
from models.archs.edit import EditConfig, EditGenerator
from models.archs.patchgan import PatchGAN, PatchGANConfig
from nodes.harness.client import ExecutionFailed

pytestmark = pytest.mark.integration

TINY = EditConfig(base_channels=6, downsamplings=2, blocks=1, embed_dim=4)
RELIGHT_ONLY = EditConfig(base_channels=4, downsamplings=2, blocks=1, embed_dim=2, instructions=("relight",))


def _perturbed(config):
    torch.manual_seed(0)
    module = EditGenerator(config)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return module


@pytest.fixture(scope="module")
def server(comfy, repo_root):
    for path in sorted((repo_root / "workflows" / "inputs").glob("*.jpg")):
        comfy.client.upload_image(path)
    folder = comfy.server.base_dir / "models" / "gan_edit"
    folder.mkdir(parents=True, exist_ok=True)
    weights.save(_perturbed(TINY), folder / "tiny_edit.safetensors", "edit", TINY, "edit", {"made_by": "test"})
    weights.save(_perturbed(RELIGHT_ONLY), folder / "relight_only.safetensors", "edit", RELIGHT_ONLY, "edit")
    d = PatchGANConfig(input_nc=3, ndf=4, n_layers=1)
    weights.save(PatchGAN(d), folder / "a_discriminator.safetensors", "patchgan", d, "discriminate")
    return comfy


BOX = {"class_type": "GanEditBoxMask", "inputs": {
    "width": 600, "height": 400, "batch_size": 1, "image": ["1", 0], "units": "pixels", "centered": False,
    "x": 200.0, "y": 100.0, "box_width": 150.0, "box_height": 120.0}}


def _graph(instruction="recolour", model="tiny_edit.safetensors", mask_node=None, image_batch=1, reference=False,
           colour="#1e90ff", amount=0.5, strength=1.0, mismatch="error"):
    inputs = {"image": ["2", 0], "mask": ["3", 0], "model": ["4", 0], "instruction": instruction, "colour": colour,
              "strength": strength, "amount": amount, "context": 0.5, "working_size": 512,
              "mask_size_mismatch": mismatch}
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "coffee.jpg"}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": image_batch}},
        "3": mask_node or BOX,
        "4": {"class_type": "GanEditLoadModel", "inputs": {"model_name": model}},
        "5": {"class_type": "GanEditEdit", "inputs": inputs},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "t/result"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t/original"}},
    }
    if reference:
        graph["8"] = {"class_type": "LoadImage", "inputs": {"image": "chelsea.jpg"}}
        inputs["reference"] = ["8", 0]
    return graph


def _run(server, graph, tmp_path):
    files = server.client.run(graph, tmp_path, stem="g")
    by_node = {}
    for path in sorted(files):
        by_node.setdefault(path.stem.split("_")[1], []).append(np.asarray(Image.open(path).convert("RGB")))
    return by_node


def _box():
    box = np.zeros((400, 600), bool)
    box[100:220, 200:350] = True
    return box


def test_node_is_registered_with_tooltips(server):
    info = server.client.object_info()["GanEditEdit"]
    specs = {**info["input"]["required"], **info["input"].get("optional", {})}
    assert {"reference", "reference_mask", "colour", "amount", "strength"} <= set(specs)
    assert all(spec[1].get("tooltip") for spec in specs.values())
    kind, spec = info["input"]["required"]["instruction"]
    options = spec["options"] if kind == "COMBO" else kind
    assert list(options) == ["remove", "recolour", "relight", "harmonise_paste", "blur_background"]


@pytest.mark.parametrize("instruction", ["recolour", "remove", "relight"])
def test_outside_the_mask_is_kept_bit_for_bit(server, tmp_path, instruction):
    out = _run(server, _graph(instruction, image_batch=2), tmp_path)
    results, originals = out["6"], out["7"]
    assert len(results) == 2
    box = _box()
    for result, original in zip(results, originals, strict=True):
        assert np.array_equal(result[~box], original[~box])
        assert np.abs(result[box].astype(int) - original[box]).mean() > 1


def test_remove_fills_exactly_as_gan_inpaint_with_the_starter_or_the_connected_inpainter(server, tmp_path):
    graph = _graph("remove")
    graph["9"] = {"class_type": "GanEditLoadModel", "inputs": {"model_name": "context_encoder_anymask.safetensors"}}
    graph["10"] = {"class_type": "GanEditInpaint", "inputs": {
        "image": ["2", 0], "mask": ["3", 0], "model": ["9", 0], "feather": 0, "context": 0.5, "working_size": 512,
        "colour_match": False, "mask_size_mismatch": "error"}}
    graph["11"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "t/inpainted"}}
    out = _run(server, graph, tmp_path / "a")
    assert np.array_equal(out["6"][0], out["11"][0])  # no inpaint_model: the pack's starter inpainter
    assert np.abs(out["6"][0][_box()].astype(int) - out["7"][0][_box()]).mean() > 1
    graph["5"]["inputs"]["inpaint_model"] = ["9", 0]
    graph["5"]["inputs"]["strength"] = 0.5
    half = _run(server, graph, tmp_path / "b")
    box = _box()
    original, inpainted = (half[k][0].astype(float) for k in ("7", "11"))
    # strength 0.5: half way between the photo and GAN Inpaint's fill, within the 8-bit rounding
    assert np.abs(half["6"][0][box] - (original[box] + inpainted[box]) / 2).max() <= 1.0


def test_remove_with_a_model_that_cannot_inpaint_is_a_clear_error(server, tmp_path):
    graph = _graph("remove")
    graph["9"] = {"class_type": "GanEditLoadModel", "inputs": {"model_name": "tiny_edit.safetensors"}}
    graph["5"]["inputs"]["inpaint_model"] = ["9", 0]
    with pytest.raises(ExecutionFailed, match=r"GAN Edit \(inpaint_model\) needs a model for the 'inpaint' task"):
        _run(server, graph, tmp_path)


def test_blur_background_keeps_the_inside_and_changes_the_outside(server, tmp_path):
    out = _run(server, _graph("blur_background", amount=0.8), tmp_path)
    result, original, box = out["6"][0], out["7"][0], _box()
    assert np.array_equal(result[box], original[box])
    assert np.abs(result[~box].astype(int) - original[~box]).mean() > 1


def test_strength_zero_returns_the_input(server, tmp_path):
    out = _run(server, _graph("relight", strength=0.0), tmp_path)
    assert np.array_equal(out["6"][0], out["7"][0])


def test_harmonise_paste_needs_a_reference_and_pastes_it(server, tmp_path, repo_root):
    with pytest.raises(ExecutionFailed, match="harmonise_paste needs a reference image"):
        _run(server, _graph("harmonise_paste"), tmp_path / "a")
    out = _run(server, _graph("harmonise_paste", reference=True, strength=0.0), tmp_path / "b")
    result, original, box = out["6"][0], out["7"][0], _box()
    assert np.array_equal(result[~box], original[~box])
    cat = Image.open(repo_root / "workflows" / "inputs" / "chelsea.jpg").convert("RGB")
    cat = np.asarray(cat.resize((600, 400), Image.Resampling.BILINEAR))
    # strength 0: the plain paste, i.e. the reference (resized to the image) inside the box
    assert np.abs(result[box].astype(int) - cat[box]).mean() < 3


def test_wrong_task_model_names_the_task(server, tmp_path):
    with pytest.raises(ExecutionFailed, match="needs a model for the 'edit' task.*'patchgan' model for 'discriminate'"):
        _run(server, _graph(model="a_discriminator.safetensors"), tmp_path)


def test_instruction_the_model_does_not_know(server, tmp_path):
    with pytest.raises(ExecutionFailed, match=r"trained for \['relight'\], not 'recolour'"):
        _run(server, _graph("recolour", model="relight_only.safetensors"), tmp_path / "a")
    out = _run(server, _graph("relight", model="relight_only.safetensors"), tmp_path / "b")
    assert out["6"][0].shape == (400, 600, 3)


def test_bad_colour_and_bad_amount_are_errors(server, tmp_path):
    with pytest.raises(ExecutionFailed, match="hex string"):
        _run(server, _graph("recolour", colour="blue-ish"), tmp_path / "a")
    with pytest.raises(ExecutionFailed, match=r"amount for blur_background must be in \[0, 1\]"):
        _run(server, _graph("blur_background", amount=-0.5), tmp_path / "b")


def _solid(value, width, height):
    return {"class_type": "SolidMask", "inputs": {"value": value, "width": width, "height": height}}


def test_mask_size_mismatch_is_an_error_unless_resizing_is_chosen(server, tmp_path):
    with pytest.raises(ExecutionFailed, match=r"mask size must equal the image size \(400, 600\).*\(64, 64\)"):
        _run(server, _graph(mask_node=_solid(1.0, 64, 64)), tmp_path / "a")
    out = _run(server, _graph(mask_node=_solid(1.0, 64, 64), mismatch="resize mask"), tmp_path / "b")
    assert out["6"][0].shape == (400, 600, 3)


def test_batch_mismatch_is_an_error(server, tmp_path):
    masks3 = {"class_type": "GanEditRandomBlocksMask", "inputs": {
        "width": 600, "height": 400, "batch_size": 3, "seed": 1, "count_min": 1, "count_max": 3, "size_min": 0.1,
        "size_max": 0.3, "max_coverage": 0.5, "coverage": "any"}}
    with pytest.raises(ExecutionFailed, match="mask batch must be 1 or equal the image batch 2"):
        _run(server, _graph(mask_node=masks3, image_batch=2), tmp_path / "a")
    out = _run(server, _graph(mask_node=masks3, image_batch=3), tmp_path / "b")
    assert len(out["6"]) == 3
