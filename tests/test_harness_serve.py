"""`python3 -m nodes.harness serve`: a persistent base a user can work with, printed at start."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from models import weights
from models.archs.enhance import EnhanceConfig, EnhanceNet
from nodes.harness.server import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def _serve(base: Path, port: int) -> tuple[subprocess.Popen, list[str]]:
    """Start `serve` and read its output until it says it is ready."""
    process = subprocess.Popen([sys.executable, "-m", "nodes.harness", "serve", "--base", str(base), "--port",
                                str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "press Ctrl-C to stop" in line:
            return process, lines
    process.kill()
    raise AssertionError("serve did not become ready:\n" + "\n".join(lines))


def _model_names(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/object_info/GanEditLoadModel", timeout=30) as response:
        spec = json.loads(response.read())["GanEditLoadModel"]["input"]["required"]["model_name"]
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=60)


def test_serve_keeps_its_folders_and_says_where_they_are(tmp_path):
    base = tmp_path / "serve"
    port = free_port()
    process, lines = _serve(base, port)
    try:
        text = "\n".join(lines)
        assert f"starting ComfyUI in {base.resolve()}" in text
        assert f"put weights in {base.resolve() / 'models' / 'gan_edit'}" in text
        for folder in ("input", "output", "models/gan_edit"):
            assert (base / folder).is_dir(), folder
        uploaded = sorted(p.name for p in (base / "input").iterdir())
        assert {"astronaut.jpg", "chelsea.jpg", "coffee.jpg"} <= set(uploaded)
        assert "mine.safetensors" not in _model_names(port)
    finally:
        assert _stop(process) == 0
    config = EnhanceConfig(base_channels=8, levels=1, blocks=0, context=False)
    torch.manual_seed(0)
    weights.save(EnhanceNet(config), base / "models" / "gan_edit" / "mine.safetensors", "enhance_unet", config,
                 "enhance")
    process, _ = _serve(base, port)
    try:
        assert "mine.safetensors" in _model_names(port)  # the README's instructions hold for serve's folder
        assert (base / "input" / "chelsea.jpg").is_file()
    finally:
        assert _stop(process) == 0
    assert (base / "models" / "gan_edit" / "mine.safetensors").is_file()
