"""GAN Train in a real ComfyUI: it trains, publishes a loadable model, and an interrupt resumes exactly."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch

from models import weights
from nodes.harness.client import ExecutionFailed, ExecutionInterrupted

pytestmark = pytest.mark.integration

PHOTOS = "gan_train_photos"
START = "enhance_restore.safetensors"


@pytest.fixture(scope="module")
def server(comfy, repo_root):
    folder = comfy.server.input_dir / PHOTOS
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg"):
        shutil.copy(repo_root / "workflows" / "inputs" / name, folder / name)
    return comfy


def _train(name: str, steps: int, **changes) -> dict:
    inputs = {"task": "enhance", "images": PHOTOS, "style": "", "start_model": START, "steps": steps,
              "batch_size": 2, "crop": 64, "learning_rate": 1e-4, "precision": "fp32", "training_seed": 3,
              "output_name": name, "preview_every": 2}
    inputs.update(changes)
    return {
        "1": {"class_type": "GanEditTrain", "inputs": inputs},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 1], "filename_prefix": f"{name}/preview"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 2], "filename_prefix": f"{name}/loss"}},
    }


def _state(path) -> dict[str, torch.Tensor]:
    return weights.load(path).module.state_dict()


def test_training_publishes_a_changed_model_that_load_gan_model_lists(server, repo_root, tmp_path):
    files = server.client.run(_train("ci_train_a", 4), tmp_path)
    assert len(files) == 2  # the preview and the loss curve
    published = server.server.base_dir / "models" / "gan_edit" / "ci_train_a.safetensors"
    trained, start = _state(published), _state(repo_root / "models" / "weights" / START)
    assert any(not torch.equal(trained[k], start[k]) for k in start), "training left every weight as it was"
    assert weights.load(published).provenance["steps"] == 4
    info = server.client.get_json("/object_info/GanEditLoadModel")
    assert "ci_train_a.safetensors" in json.dumps(info)  # listed without a restart
    runs = server.server.base_dir / "models" / "gan_edit_runs" / "ci_train_a"
    assert (runs / "ci_train_a.ckpt.pt").is_file()  # run files stay out of the model list
    assert "ci_train_a.ckpt.pt" not in json.dumps(info)


def test_an_interrupted_run_keeps_its_weights_and_resumes_to_the_uninterrupted_result(server, tmp_path):
    client, base = server.client, server.server.base_dir
    steps = 40
    metrics = base / "models" / "gan_edit_runs" / "ci_train_b" / "ci_train_b.metrics.jsonl"
    prompt_id = client.queue(_train("ci_train_b", steps))
    deadline = time.monotonic() + 300
    while not metrics.is_file() or len(metrics.read_text().splitlines()) < 3:
        assert time.monotonic() < deadline, "the training run never logged three steps"
        time.sleep(0.1)
    client.interrupt()
    with pytest.raises(ExecutionInterrupted):
        client.wait(prompt_id, timeout=120)
    published = base / "models" / "gan_edit" / "ci_train_b.safetensors"
    stopped_at = weights.load(published).provenance["steps"]
    assert 3 <= stopped_at < steps, f"the interrupt should land mid-run, it stopped at step {stopped_at}"
    client.run(_train("ci_train_b", steps), tmp_path / "resumed")  # the same settings: continues
    assert weights.load(published).provenance["steps"] == steps
    client.run(_train("ci_train_c", steps), tmp_path / "straight")  # the same run, never interrupted
    resumed, straight = _state(published), _state(base / "models" / "gan_edit" / "ci_train_c.safetensors")
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_bad_settings_are_clear_errors(server, tmp_path):
    client = server.client
    cases = [
        (_train("../escape", 2), "output_name must be"),
        (_train("ci_bad", 2, images="../.."), "inside ComfyUI's input folder"),
        (_train("ci_bad", 2, images="no_such_folder"), "no folder 'no_such_folder'"),
        (_train("ci_bad", 2, task="inpaint"), "trains from scratch"),
        (_train("ci_bad", 2, task="style", start_model="none"), "needs a style image"),
        (_train("ci_bad", 2, task="style", start_model="none", style="nope.jpg"), "no file 'nope.jpg'"),
    ]
    for prompt, message in cases:
        with pytest.raises(ExecutionFailed, match=message):
            client.run(prompt, tmp_path)
    client.run(_train("ci_train_d", 2), tmp_path / "d")
    styled = _train("ci_train_style", 2, task="style", start_model="none", style=f"{PHOTOS}/chelsea.jpg", crop=64)
    client.run(styled, tmp_path / "style")  # another task through the same node: a one-style network
    assert weights.load(server.server.base_dir / "models" / "gan_edit" / "ci_train_style.safetensors").task == "stylize"
    with pytest.raises(ExecutionFailed, match="with other settings"):
        client.run(_train("ci_train_d", 3), tmp_path / "d2")
