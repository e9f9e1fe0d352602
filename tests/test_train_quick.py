"""The GAN Train node's recipes (`models.train.quick`) and loss-curve picture (`models.train.curves`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from models.archs.enhance import EnhanceConfig
from models.train import curves, quick
from models.train.adain import AdaINTask
from models.train.edit import EditTask
from models.train.enhance import EnhanceTask
from models.train.inpaint import InpaintTask
from models.train.pix2pix import Pix2PixTask
from models.train.style import StyleTask

REPO = Path(__file__).resolve().parents[1]
RESTORER = REPO / "models" / "weights" / "enhance_restore.safetensors"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(2):
        Image.effect_noise((96, 80), 40 + 20 * i).convert("RGB").save(folder / f"p{i}.png")
    return folder


def test_each_task_gets_its_own_task_with_the_node_settings(data) -> None:
    enhance = quick.make_task("enhance", data, batch_size=3, crop=64, lr=5e-5)
    assert isinstance(enhance, EnhanceTask) and enhance.settings.net == EnhanceConfig()
    assert (enhance.settings.batch_size, enhance.settings.crop, enhance.settings.lr) == (3, 64, 5e-5)
    assert enhance.settings.adv_weight == 0.0 and len(enhance.data) == 2
    assert isinstance(quick.make_task("inpaint", data, batch_size=2, crop=64, lr=1e-4), InpaintTask)
    assert isinstance(quick.make_task("edit", data, batch_size=2, crop=64, lr=1e-4), EditTask)
    for kind, crop, net in (("colorize", 256, "unet_256"), ("poster", 128, "unet_128"), ("colorize", 96,
                                                                                          "resnet_6blocks")):
        task = quick.make_task(kind, data, batch_size=1, crop=crop, lr=2e-4)
        assert isinstance(task, Pix2PixTask) and task.settings.net_g == net and task.data.synthetic == kind
    style_image = data / "p0.png"
    style = quick.make_task("style", data, batch_size=1, crop=64, lr=1e-3, style=style_image)
    assert isinstance(style, StyleTask)
    adain = quick.make_task("adain", data, batch_size=1, crop=64, lr=1e-4, style=data)
    assert isinstance(adain, AdaINTask)


def test_fine_tuning_takes_the_start_models_config_and_weights(data) -> None:
    task = quick.make_task("enhance", data, batch_size=2, crop=64, lr=1e-4, init=RESTORER)
    from models import weights

    start = weights.load(RESTORER)
    assert task.settings.net == start.config
    generator = task.networks()["G"]
    assert all(torch.equal(v, start.module.state_dict()[k]) for k, v in generator.state_dict().items())


def test_wrong_requests_are_clear_errors(data, tmp_path) -> None:
    with pytest.raises(ValueError, match="'style' needs a style image"):
        quick.make_task("style", data, batch_size=1, crop=64, lr=1e-3)
    with pytest.raises(ValueError, match="'enhance' takes no style"):
        quick.make_task("enhance", data, batch_size=1, crop=64, lr=1e-3, style=data / "p0.png")
    with pytest.raises(ValueError, match="task must be one of"):
        quick.make_task("denoise", data, batch_size=2, crop=64, lr=1e-4)
    with pytest.raises(ValueError, match="trains from scratch"):
        quick.make_task("inpaint", data, batch_size=2, crop=64, lr=1e-4, init=RESTORER)
    other = REPO / "models" / "weights" / "edit_starter.safetensors"
    with pytest.raises(ValueError, match="not an enhance model"):
        quick.make_task("enhance", data, batch_size=2, crop=64, lr=1e-4, init=other)


def test_the_loss_curve_draws_each_loss_on_a_shared_scale(tmp_path) -> None:
    rows = [{"step": s, "time_s": s, "l1": 1.0 / s, "l1_input": 0.5, "lr_G": 1e-4} for s in range(1, 41)]
    path = tmp_path / "run.metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert curves.read_metrics(path) == rows and curves.read_metrics(tmp_path / "none.jsonl") == []
    image = curves.plot(rows, 320, 200)
    assert image.shape == (1, 3, 200, 320) and 0 <= image.min() and image.max() <= 1
    red = (image[0, 0] > 0.8) & (image[0, 1] < 0.45) & (image[0, 2] < 0.4)  # l1, the first colour
    blue = (image[0, 2] > 0.8) & (image[0, 0] < 0.4)  # l1_input, the second
    assert red.sum() > 50 and blue.sum() > 50
    plot_rows = slice(10, 200 - 16 - 28)
    red_rows = torch.nonzero(red[plot_rows].any(dim=1)).flatten()
    blue_rows = torch.nonzero(blue[plot_rows].any(dim=1)).flatten()
    assert red_rows.max() - red_rows.min() > 50  # a falling curve spans the height
    assert blue_rows.max() - blue_rows.min() <= 2  # a constant one is a flat line
    assert curves.smooth([1.0, 3.0, math.nan, 5.0], 2)[:2] == [1.0, 2.0]
    empty = curves.plot([], 320, 200)
    assert empty.shape == (1, 3, 200, 320)
