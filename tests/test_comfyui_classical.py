"""Classical Fill and Color Match inside a real ComfyUI: kept pixels, a smooth fill, matched colours, bad masks."""

import numpy as np
import pytest
from PIL import Image

from nodes.harness.client import ExecutionFailed

pytestmark = pytest.mark.integration

HOLE = (slice(100, 220), slice(200, 350))  # rows, columns of the box mask below


@pytest.fixture(scope="module")
def server(comfy, repo_root):
    for path in sorted((repo_root / "workflows" / "inputs").glob("*.jpg")):
        comfy.client.upload_image(path)
    return comfy


def _box():
    return {"class_type": "GanEditBoxMask", "inputs": {
        "width": 600, "height": 400, "batch_size": 1, "image": ["2", 0], "units": "pixels", "centered": False,
        "x": 200.0, "y": 100.0, "box_width": 150.0, "box_height": 120.0}}


def _graph(method="harmonic", mask=None):
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "coffee.jpg"}},
        "11": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "area", "width": 3,
                                                      "height": 2, "crop": "disabled"}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["11", 0], "upscale_method": "bilinear", "width": 600,
                                                     "height": 400, "crop": "disabled"}},  # a smooth photo
        "3": mask or _box(),
        "4": {"class_type": "GanEditClassicalFill", "inputs": {
            "image": ["2", 0], "mask": ["3", 0], "method": method, "mask_size_mismatch": "error"}},
        "5": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "6": {"class_type": "GanEditColorMatch", "inputs": {
            "image": ["4", 0], "reference": ["5", 0], "method": "mean_std", "strength": 1.0, "exclude": ["3", 0]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "c/filled"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "c/original"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "c/matched"}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "c/reference"}},
    }


def _run(server, graph, tmp_path):
    files = server.client.run(graph, tmp_path, stem="g")
    by_node = {}
    for path in sorted(files):
        by_node[path.stem.split("_")[1]] = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
    return by_node


def test_nodes_are_registered_with_tooltips(server):
    info = server.client.object_info()
    for node in ("GanEditClassicalFill", "GanEditColorMatch"):
        inputs = {**info[node]["input"]["required"], **info[node]["input"].get("optional", {})}
        assert all(spec[1].get("tooltip") for spec in inputs.values()), node


def test_fill_keeps_the_outside_fills_smoothly_and_colour_match_takes_the_reference_mean(server, tmp_path):
    out = _run(server, _graph(), tmp_path / "h")
    filled, original, matched, reference = out["7"], out["8"], out["9"], out["10"]
    outside = np.ones(original.shape[:2], bool)
    outside[HOLE] = False
    assert np.array_equal(filled[outside], original[outside])
    harmonic_error = np.abs(filled[HOLE] - original[HOLE]).mean()
    mean = _run(server, _graph("mean"), tmp_path / "m")["7"]
    mean_error = np.abs(mean[HOLE] - original[HOLE]).mean()
    assert harmonic_error < 0.25 * mean_error and harmonic_error < 4, (harmonic_error, mean_error)
    assert np.allclose(matched[outside].mean(axis=0), reference[outside].mean(axis=0), atol=3.0)
    assert not np.allclose(filled[outside].mean(axis=0), reference[outside].mean(axis=0), atol=10.0)


def test_mismatched_mask_is_a_clear_error_and_the_next_prompt_runs(server, tmp_path):
    solid = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}}
    with pytest.raises(ExecutionFailed, match=r"mask size must equal the image size \(400, 600\).*\(64, 64\)"):
        _run(server, _graph(mask=solid), tmp_path / "bad")
    out = _run(server, _graph("blur"), tmp_path / "ok")
    assert out["7"].shape == (400, 600, 3)


def test_patch_fill_copies_texture_where_harmonic_is_smooth(server, tmp_path):
    def photo_graph(method):
        graph = _graph(method)
        graph["2"]["inputs"]["image"] = ["1", 0]  # the photo itself, with its texture (no 3x2 smoothing)
        return graph

    patch = _run(server, photo_graph("patch"), tmp_path / "p")
    harmonic = _run(server, photo_graph("harmonic"), tmp_path / "h")["7"]
    filled, original = patch["7"], patch["8"]
    outside = np.ones(original.shape[:2], bool)
    outside[HOLE] = False
    assert np.array_equal(filled[outside], original[outside])

    def detail(image):  # mean absolute horizontal step inside the hole
        return np.abs(np.diff(image[HOLE], axis=1)).mean()

    assert detail(harmonic) < 0.3 * detail(original)  # diffusion is smooth
    assert detail(filled) > 0.5 * detail(original)  # the copy has the photo's texture
