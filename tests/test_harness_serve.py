"""The persistent server folder behind `python3 -m nodes.harness serve`: kept between runs, usable by people."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models import weights
from models.archs.enhance import EnhanceConfig, EnhanceNet
from nodes.harness.__main__ import sample_inputs
from nodes.harness.client import ComfyClient
from nodes.harness.env import ensure_env
from nodes.harness.server import ComfyServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def _model_names(client: ComfyClient) -> list[str]:
    spec = client.object_info()["GanEditLoadModel"]["input"]["required"]["model_name"]
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


def test_a_persistent_base_keeps_its_folders_weights_and_inputs(tmp_path):
    base = tmp_path / "serve"
    with ComfyServer(ensure_env(), base_dir=base) as server:
        assert server.base_dir == base.resolve()
        for folder in ("input", "output", "models/gan_edit"):
            assert (base / folder).is_dir(), folder
        client = ComfyClient(server.url)
        for photo in sample_inputs():
            client.upload_image(photo)
        assert "mine.safetensors" not in _model_names(client)
    assert {"astronaut.jpg", "chelsea.jpg", "coffee.jpg"} <= {p.name for p in (base / "input").iterdir()}
    config = EnhanceConfig(base_channels=8, levels=1, blocks=0, context=False)
    torch.manual_seed(0)
    weights.save(EnhanceNet(config), base / "models" / "gan_edit" / "mine.safetensors", "enhance_unet", config,
                 "enhance")
    with ComfyServer(ensure_env(), base_dir=base) as server:  # the README's instructions hold for this folder
        assert "mine.safetensors" in _model_names(ComfyClient(server.url))
        assert (server.input_dir / "chelsea.jpg").is_file()
    assert (base / "models" / "gan_edit" / "mine.safetensors").is_file()


def test_serve_documents_its_folder():
    done = subprocess.run([sys.executable, "-m", "nodes.harness", "serve", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    assert "--base" in done.stdout and "kept between runs" in done.stdout
