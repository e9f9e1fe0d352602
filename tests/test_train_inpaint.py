"""Training the Context Encoders: both variants learn, export what the loader opens, and run under torchrun."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gradients import gradient_folder
from lossnet import random_vgg

from models import masks, weights
from models.archs.context_encoder import AnyMaskConfig, ContextEncoderConfig
from models.inpaint import classical, inpaint
from models.train.data import load_images
from models.train.engine import RunOptions, Trainer
from models.train.inpaint import BOX_SIDE, InpaintSettings, InpaintTask, draw_masks, paper_hole
from nodes.train.cli import main as train_cli

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
TINY = AnyMaskConfig(base_channels=4, downsamplings=2, bottleneck_blocks=1, norm="batch")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return gradient_folder(tmp_path_factory.mktemp("photos"), size=(48, 64))


def _run(tmp_path, settings, photos, steps, **kw):
    data = load_images(photos, min_side=16)
    options = RunOptions(out=tmp_path / "ce.safetensors", steps=steps, log_every=1, checkpoint_every=steps,
                         preview_every=steps, progress=False, **kw)
    return Trainer(InpaintTask(settings, data), options).run()


def _losses(tmp_path, key):  # the metrics rows of the last run
    rows = [json.loads(x) for x in (tmp_path / "ce.metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows]


def _hole_error(model, image, mask):
    filled = inpaint(model, image, mask)
    return float(((filled - image).abs() * mask).sum() / (3 * mask.sum()))


def test_anymask_learns_and_exports_a_loadable_inpainter(tmp_path, photos):
    settings = InpaintSettings(variant="anymask", batch_size=4, crop=32, lr=2e-3, anymask=TINY, discriminator_width=4)
    out = _run(tmp_path, settings, photos, steps=30)
    loaded = weights.load(out)
    assert loaded.arch == "context_encoder_anymask" and loaded.task == "inpaint" and loaded.config == TINY
    assert loaded.provenance["task_settings"]["data"]["images"] == 6
    image = load_images(photos, min_side=16).images[3][None, :, :40, :40].float() / 255
    mask = masks.box_mask(40, 40, 1, 12, 12, 12, 14)
    torch.manual_seed(0)  # the engine's initialisation: the same network before training
    untrained = weights.LoadedModel(InpaintTask(settings, None).networks()["G"], loaded.arch, TINY, "inpaint")
    assert _hole_error(loaded, image, mask) < 0.5 * _hole_error(untrained, image, mask)
    filled = inpaint(loaded, image, mask)
    assert torch.equal(filled[:, :, :12], image[:, :, :12])
    assert (tmp_path / "ce.previews" / "step_0000030.png").is_file()


def test_harmonic_prefill_trains_without_a_discriminator_and_loads_with_its_config(tmp_path, photos):
    config = dataclasses.replace(TINY, prefill="harmonic")
    settings = InpaintSettings(batch_size=4, crop=32, lr=2e-3, adv_weight=0.0, anymask=config, discriminator_width=4)
    out = _run(tmp_path, settings, photos, steps=20)
    assert set(_losses(tmp_path, "loss_d")) == {0.0} and set(_losses(tmp_path, "adv")) == {0.0}
    loaded = weights.load(out)
    assert loaded.config == config and loaded.config.prefill == "harmonic"
    image = load_images(photos, min_side=16).images[3][None, :, :40, :40].float() / 255
    mask = masks.box_mask(40, 40, 1, 12, 12, 12, 14)
    harmonic = classical.fill(image, mask, "harmonic")
    harmonic_error = float(((harmonic - image).abs() * mask).sum() / (3 * mask.sum()))
    assert _hole_error(loaded, image, mask) < 1.5 * harmonic_error + 0.01  # it starts at that fill
    filled = inpaint(loaded, image, mask)
    assert torch.equal(filled[:, :, :12], image[:, :, :12])


def test_init_fine_tunes_a_saved_inpainter_with_a_perceptual_term(tmp_path, photos):
    config = dataclasses.replace(TINY, prefill="harmonic")
    settings = InpaintSettings(batch_size=4, crop=32, lr=2e-3, adv_weight=0.0, anymask=config, discriminator_width=4)
    first = weights.load(_run(tmp_path / "a", settings, photos, steps=4))
    data = load_images(photos, min_side=16)
    tuned = dataclasses.replace(settings, init=str(tmp_path / "a" / "ce.safetensors"), perceptual_weight=1.0)
    with pytest.raises(ValueError, match="needs a VGG-16 loss network"):
        InpaintTask(tuned, data)
    generator = InpaintTask(tuned, data, random_vgg()).networks()["G"]
    for name, tensor in first.module.state_dict().items():
        assert torch.equal(generator.state_dict()[name], tensor), name
    options = RunOptions(out=tmp_path / "b" / "ce.safetensors", steps=3, log_every=1, checkpoint_every=3,
                         preview_every=3, progress=False)
    second = weights.load(Trainer(InpaintTask(tuned, data, random_vgg()), options).run())
    rows = [json.loads(x) for x in (tmp_path / "b" / "ce.metrics.jsonl").read_text().splitlines()]
    assert all(r["perceptual"] > 0 for r in rows)
    assert second.provenance["task_settings"]["settings"]["init"] == "ce.safetensors"  # a name, not a path
    assert any(not torch.equal(second.module.state_dict()[k], v) for k, v in first.module.state_dict().items())
    other = dataclasses.replace(tuned, anymask=TINY)
    with pytest.raises(ValueError, match="--init"):
        InpaintTask(other, data, random_vgg()).networks()
    with pytest.raises(ValueError, match="anymask variant"):
        InpaintSettings(variant="paper", perceptual_weight=1.0)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_paper_variant_trains_the_port_layout(tmp_path, photos, precision):
    paper = ContextEncoderConfig(nef=4, ngf=4, bottleneck=8)
    settings = InpaintSettings(variant="paper", batch_size=2, crop=128, paper=paper, discriminator_width=4)
    out = _run(tmp_path, settings, photos, steps=3, precision=precision)  # bf16: BCE needs float32 targets
    loaded = weights.load(out)
    assert loaded.arch == "context_encoder" and loaded.config == paper
    assert set(_losses(tmp_path, "l2")) and all(v > 0 for v in _losses(tmp_path, "l2"))
    assert paper_hole(128) == (36, 92)


def test_box_masks_are_one_object_sized_rectangle():
    drawn = draw_masks(32, 128, ("box",), torch.Generator().manual_seed(0))
    sides = []
    for mask in drawn[:, 0]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        h, w = int(rows[-1] - rows[0]) + 1, int(cols[-1] - cols[0]) + 1
        assert int(mask.sum()) == h * w  # one filled rectangle
        sides += [h, w]
    lo, hi = BOX_SIDE
    assert lo * 128 - 1 <= min(sides) and max(sides) <= hi * 128 + 1
    assert max(sides) > 0.6 * 128  # larger than any block of the default kinds (at most half the side)


def test_bad_settings_are_clear():
    with pytest.raises(ValueError, match="multiple of the model stride 8"):
        InpaintSettings(crop=100)
    with pytest.raises(ValueError, match="paper variant trains on 128px crops"):
        InpaintSettings(variant="paper", crop=64)
    with pytest.raises(ValueError, match="mask_kinds must be a non-empty subset"):
        InpaintSettings(mask_kinds=("circles",))


def test_cli_writes_what_the_loader_opens(tmp_path, photos, capsys):
    out = tmp_path / "cli.safetensors"
    code = train_cli(["inpaint", "--data", str(photos), "--out", str(out), "--steps", "2", "--batch-size", "2",
                      "--crop", "32", "--base-channels", "4", "--downsamplings", "2", "--bottleneck-blocks", "1",
                      "--width", "4", "--no-progress", "--holdout", "0.2"])
    assert code == 0 and f"wrote {out}" in capsys.readouterr().out
    loaded = weights.load(out)
    assert loaded.provenance["steps"] == 2
    assert loaded.provenance["task_settings"]["settings"]["crop"] == 32


def test_cli_reports_a_missing_data_folder(tmp_path, capsys):
    code = train_cli(["inpaint", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.safetensors")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_two_cpu_ranks_under_torchrun_stay_in_sync(tmp_path, photos):
    out = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "nodes.train", "inpaint", "--data", str(photos), "--out", str(out), "--steps", "3",
           "--checkpoint-every", "2", "--batch-size", "2", "--crop", "32", "--base-channels", "4",
           "--downsamplings", "2", "--bottleneck-blocks", "1", "--width", "4", "--no-progress", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step 2: all 2 ranks agree" in done.stderr and "step 3: all 2 ranks agree" in done.stderr
    loaded = weights.load(out)
    assert loaded.provenance["world_size"] == 2 and loaded.provenance["steps"] == 3
