"""The Degrade Image node inside a real ComfyUI server, driven over its HTTP API."""

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from nodes.harness.client import ExecutionFailed

pytestmark = pytest.mark.integration

NODE = "GanEditDegradeImage"


@pytest.fixture(scope="module")
def uploaded(comfy, repo_root):
    comfy.client.upload_image(repo_root / "workflows" / "inputs" / "chelsea.jpg")
    return comfy


def _original(comfy) -> np.ndarray:
    """chelsea.jpg as LoadImage sees it: PIL's decode, RGB, 8 bits."""
    data = (comfy.server.input_dir / "chelsea.jpg").read_bytes()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _graph(preset: str, seed: int = 0, repeat: int = 0, **custom) -> dict:
    inputs = {
        "image": ["1", 0], "preset": preset, "blur_sigma_max": 2.0, "noise_sigma_max": 15.0,
        "jpeg_quality_min": 50, "resize_scale_min": 1.0, "colour_strength": 0.0, "seed": seed, **custom,
    }
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "chelsea.jpg"}},
        "2": {"class_type": NODE, "inputs": inputs},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "gan_edit/degrade"}},
    }
    if repeat:
        prompt["4"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": repeat}}
        inputs["image"] = ["4", 0]
    return prompt


def expected_psnr_of_clipped_noise(original: np.ndarray, sigma: float) -> tuple[float, float]:
    """Expected PSNR (dB) of ``floor(255 * clip(x + n, 0, 1))`` against ``x`` for n ~ N(0, (sigma/255)^2),
    and the standard deviation of the measured PSNR over ``original.size`` independent pixels.

    Exact per 8-bit input level v: the saved level k has probability P(k <= 255 (x + n) < k + 1), with
    everything below 0 landing on k = 0 and everything at or above 255 on k = 255 (SaveImage clips, then
    truncates to uint8). Without clipping and rounding the PSNR would be 20 log10(255 / sigma).
    """
    levels = torch.arange(256, dtype=torch.float64)
    v = levels.view(-1, 1)  # input level
    edges = torch.special.ndtr((levels.view(1, -1) - v) / sigma)  # P(255 (x + n) < k) for k = 0..255
    upper = torch.cat([edges[:, 1:], torch.ones(256, 1, dtype=torch.float64)], dim=1)
    lower = torch.cat([torch.zeros(256, 1, dtype=torch.float64), edges[:, 1:]], dim=1)
    p = upper - lower  # P(saved level = k | input level v); rows sum to 1
    err2 = (levels.view(1, -1) - v) ** 2
    mean_sq = (p * err2).sum(1)  # E[(k - v)^2] per input level
    var_sq = (p * err2**2).sum(1) - mean_sq**2
    counts = torch.from_numpy(np.bincount(original.ravel(), minlength=256)).double()
    n = float(counts.sum())
    mse = float((counts * mean_sq).sum()) / n
    mse_std = math.sqrt(float((counts * var_sq).sum())) / n
    return 10 * math.log10(255**2 / mse), 10 / math.log(10) * mse_std / mse


def test_node_is_registered_with_description_and_tooltips(comfy):
    schema = comfy.client.object_info()[NODE]
    assert schema["category"] == "GAN Edit/restore" and schema["display_name"] == "Degrade Image"
    assert len(schema["description"]) > 40
    inputs = {**schema["input"]["required"], **schema["input"].get("optional", {})}
    assert set(inputs) == {"image", "preset", "blur_sigma_max", "noise_sigma_max", "jpeg_quality_min",
                           "resize_scale_min", "colour_strength", "seed"}
    for name, spec in inputs.items():
        assert len(spec) > 1 and spec[1].get("tooltip"), f"{name} has no tooltip"
    presets = inputs["preset"][1]["options"] if isinstance(inputs["preset"][0], str) else inputs["preset"][0]
    assert presets == ["restore", "enhance", "custom", "noise15", "noise25", "blur1.5+noise5", "jpeg20",
                       "underexposed", "lowcontrast"]
    assert inputs["seed"][1].get("control_after_generate")
    assert schema["output_name"] == ["image"]


def test_noise25_gives_the_psnr_of_sigma_25_noise(uploaded, tmp_path):
    (path,) = uploaded.client.run(_graph("noise25", seed=3), tmp_path, stem="noise25")
    original = _original(uploaded)
    degraded = np.asarray(Image.open(path).convert("RGB"))
    assert degraded.shape == original.shape
    mse = float(((degraded.astype(np.float64) - original) ** 2).mean())
    psnr = 10 * math.log10(255**2 / mse)
    expected, std = expected_psnr_of_clipped_noise(original, 25.0)
    # clipping only pulls values back towards the original: at least the unclipped 20.17 dB, a little more
    assert 20 * math.log10(255 / 25) - 0.01 < expected < 21.0
    assert abs(psnr - expected) < 5 * std + 0.005, (psnr, expected, std)


def test_any_batch_items_differ_and_custom_settings_run(uploaded, tmp_path):
    prompt = _graph("custom", seed=1, repeat=2, blur_sigma_max=1.5, noise_sigma_max=10.0, jpeg_quality_min=40,
                    resize_scale_min=0.5, colour_strength=0.5)
    paths = uploaded.client.run(prompt, tmp_path, stem="batch")
    assert len(paths) == 2
    first, second = (np.asarray(Image.open(p).convert("RGB")).astype(int) for p in paths)
    original = _original(uploaded)
    assert first.shape == second.shape == original.shape
    assert np.abs(first - second).mean() > 1  # each item has its own draws
    assert np.abs(first - original).mean() > 2


def test_bad_custom_setting_gives_a_readable_error(uploaded, tmp_path):
    with pytest.raises(ExecutionFailed) as info:
        uploaded.client.run(_graph("custom", blur_sigma_max=0.05), tmp_path, stem="bad")
    assert info.value.node_id == "2" and info.value.exception_type.endswith("ValueError")
    assert "blur_sigma_max must be 0 (off) or >= 0.1, got 0.05" in info.value.exception_message


def test_a_clipped_input_is_warned_about_in_the_log(comfy, tmp_path):
    """A mostly white picture (what a 16-bit PNG can become in LoadImage) still runs, with a warning in the log."""
    white = np.full((48, 64, 3), 255, np.uint8)
    white[:8] = 40
    path = tmp_path / "mostly_white.png"
    Image.fromarray(white).save(path)
    comfy.client.upload_image(path)
    prompt = _graph("noise15")
    prompt["1"]["inputs"]["image"] = "mostly_white.png"
    before = len(comfy.server.log_text())
    comfy.client.run(prompt, tmp_path / "out")
    new_log = comfy.server.log_text()[before:]
    assert "Degrade Image: 83% of the image's values are exactly 1.0 (pure white): the input looks clipped" in new_log
