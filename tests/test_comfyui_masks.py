"""The mask nodes inside a real ComfyUI server, driven over its HTTP API."""

import copy
import io

import numpy as np
import pytest
from PIL import Image

from nodes.harness.client import ExecutionFailed, PromptRejected, load_workflow

pytestmark = pytest.mark.integration

MASK_NODES = {
    "GanEditBoxMask", "GanEditRandomBlocksMask", "GanEditStrokeMask", "GanEditIrregularMask",
    "GanEditOutpaintMask", "GanEditMaskFromImage", "GanEditMaskRefine", "GanEditMaskBoundingBox",
}


@pytest.fixture(scope="module")
def uploaded(comfy, repo_root):
    for path in sorted((repo_root / "workflows" / "inputs").glob("*.jpg")):
        comfy.client.upload_image(path)
    return comfy


@pytest.fixture(scope="module")
def masks_outputs(uploaded, repo_root, tmp_path_factory):
    """Run workflows/api/masks.json once; its saved PNGs grouped by SaveImage node id."""
    out = tmp_path_factory.mktemp("masks")
    files = uploaded.client.run(load_workflow(repo_root / "workflows" / "api" / "masks.json"), out, stem="masks")
    grouped = {}
    for path in sorted(files):
        node = path.stem.split("_")[1]
        grouped.setdefault(node, []).append(np.asarray(Image.open(path).convert("L")) > 127)
    return grouped


def test_every_mask_node_is_registered_with_description_and_tooltips(comfy):
    info = comfy.client.object_info()
    assert MASK_NODES <= set(info)
    for node in MASK_NODES:
        schema = info[node]
        assert schema["category"] == "GAN Edit/mask"
        assert len(schema["description"]) > 40, node
        inputs = {**schema["input"]["required"], **schema["input"].get("optional", {})}
        for name, spec in inputs.items():
            assert len(spec) > 1 and spec[1].get("tooltip"), f"{node}.{name} has no tooltip"


def test_random_masks_land_in_their_coverage_buckets(masks_outputs):
    strokes, blocks = masks_outputs["4"], masks_outputs["11"]
    assert len(strokes) == 4 and len(blocks) == 2
    assert all(0.10 <= m.mean() <= 0.20 for m in strokes), [m.mean() for m in strokes]
    assert all(0.20 <= m.mean() <= 0.30 for m in blocks), [m.mean() for m in blocks]
    # items of one batch differ
    assert not np.array_equal(strokes[0], strokes[1])


def test_center_and_irregular_masks(masks_outputs):
    (center,) = masks_outputs["14"]
    assert center.shape == (512, 512)
    assert center[128:384, 128:384].all() and center.sum() == 256 * 256
    thick = masks_outputs["8"]
    assert len(thick) == 4 and all(0 < m.mean() <= 0.5 for m in thick)


def test_previews_show_the_photo(masks_outputs, uploaded, repo_root):
    # the refine preview keeps the photo outside the hole: not a plain black/white mask
    preview_files = masks_outputs["19"]
    assert len(preview_files) == 1
    (refined,) = preview_files
    assert 0.05 < refined.mean() < 0.95


def _queue_expecting_rejection(client, prompt):
    with pytest.raises(PromptRejected) as info:
        client.queue(prompt)
    return info.value


def test_out_of_range_value_is_rejected_and_the_server_keeps_working(uploaded, repo_root, tmp_path):
    client = uploaded.client
    prompt = load_workflow(repo_root / "workflows" / "api" / "masks.json")
    bad = copy.deepcopy(prompt)
    bad["2"]["inputs"]["batch_size"] = 1000
    error = _queue_expecting_rejection(client, bad)
    errors = error.payload["node_errors"]["2"]["errors"]
    assert errors[0]["type"] == "value_bigger_than_max"
    assert "batch_size" in str(error)

    good = {k: prompt[k] for k in ("12", "13", "14")}
    good["12"] = copy.deepcopy(prompt["12"])
    good["12"]["inputs"].pop("image")
    good["12"]["inputs"].update(width=64, height=48)
    (path,) = client.run(good, tmp_path, stem="good")
    mask = np.asarray(Image.open(path).convert("L")) > 127
    assert mask.shape == (48, 64) and mask.sum() == 32 * 24


def test_inverted_ranges_give_a_readable_execution_error(uploaded, repo_root, tmp_path):
    prompt = load_workflow(repo_root / "workflows" / "api" / "masks.json")
    prompt = {k: prompt[k] for k in ("1", "9", "10", "11")}
    prompt["9"]["inputs"].update(count_min=5, count_max=2)
    with pytest.raises(ExecutionFailed) as info:
        uploaded.client.run(prompt, tmp_path, stem="inverted")
    assert info.value.node_id == "9" and info.value.exception_type.endswith("ValueError")
    assert "count must have low <= high, got (5, 2)" in info.value.exception_message


def test_execution_error_is_readable_and_server_survives(uploaded, tmp_path):
    client = uploaded.client
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "chelsea.jpg"}},
        "2": {"class_type": "GanEditMaskFromImage", "inputs": {
            "image": ["1", 0], "mode": "difference", "threshold": 0.1, "colour": "#00ff00", "tolerance": 0.1,
            "invert": False}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 1], "filename_prefix": "gan_edit/err"}},
    }
    with pytest.raises(ExecutionFailed, match="mode 'difference' needs a second image on image_b"):
        client.run(prompt, tmp_path, stem="err")
    prompt["2"]["inputs"]["image_b"] = ["1", 0]  # identical images: no difference, an empty mask
    prompt["3"]["inputs"]["images"] = ["2", 1]
    (path,) = client.run(prompt, tmp_path, stem="ok")
    preview = np.asarray(Image.open(path).convert("RGB")).astype(int)
    original = np.asarray(Image.open(io.BytesIO((uploaded.server.input_dir / "chelsea.jpg").read_bytes())))
    assert preview.shape == original.shape
    assert np.abs(preview - original).max() <= 1  # no hole anywhere: the preview is the photo itself
