"""Training the edit GAN: a tiny run learns, exports what the loader and `edit` open; the CLIs run end to end."""

import json

import pytest
import torch
from gradients import gradient_folder

from models import masks, weights
from models.archs.edit import EditConfig
from models.edit import edit
from models.train.data import load_images
from models.train.edit import EditSettings, EditTask, parse_instructions, synthesise_batch
from models.train.engine import RunOptions, Trainer
from nodes.train.cli import main as train_cli

pytestmark = pytest.mark.unit

TINY = EditConfig(base_channels=6, downsamplings=2, blocks=1, embed_dim=4, instructions=("relight", "remove"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Smooth colour gradients with a little texture."""
    return gradient_folder(tmp_path_factory.mktemp("photos"), size=(48, 64), texture=0.1)


def test_synthesised_batch_matches_the_network_input_contract():
    g = torch.Generator().manual_seed(0)
    photos = torch.rand(2, 3, 32, 32)
    mask = masks.box_mask(32, 32, 2, 8, 8, 16, 16)
    batch = synthesise_batch(TINY, photos, mask, ["relight", "remove"], g)
    assert batch["x"].shape == (2, TINY.in_channels, 32, 32)
    assert torch.equal(batch["region"], mask) and float(batch["source"].min()) >= -1
    assert torch.equal(batch["x"][1, :3, 8:24, 8:24], torch.zeros(3, 16, 16))  # remove: region hidden


def test_tiny_run_learns_and_exports_a_working_edit_model(tmp_path, photos):
    settings = EditSettings(batch_size=4, crop=32, lr=2e-3, generator=TINY, discriminator_width=4)
    data = load_images(photos, min_side=16)
    options = RunOptions(out=tmp_path / "e.safetensors", steps=40, log_every=1, checkpoint_every=40,
                         preview_every=40, progress=False)
    out = Trainer(EditTask(settings, data), options).run()
    rows = [json.loads(x) for x in (tmp_path / "e.metrics.jsonl").read_text().splitlines()]
    first = sum(r["l1_region"] for r in rows[:8]) / 8
    last = sum(r["l1_region"] for r in rows[-8:]) / 8
    assert last < 0.8 * first, (first, last)
    loaded = weights.load(out)
    assert loaded.arch == "edit" and loaded.task == "edit" and loaded.config == TINY
    assert loaded.provenance["task_settings"]["settings"]["generator"]["instructions"] == ["relight", "remove"]
    image = data.images[0][None].float() / 255
    mask = masks.box_mask(48, 64, 1, 10, 10, 20, 30)
    result = edit(loaded, image, mask, "relight", amount=0.8)
    assert torch.equal(result[..., :10, :], image[..., :10, :])
    assert float(result[..., 15:25, 15:35].mean()) > float(image[..., 15:25, 15:35].mean())  # brighter
    assert (tmp_path / "e.previews" / "step_0000040.png").is_file()


def test_instruction_list_parsing():
    assert parse_instructions(" remove, relight ") == ("remove", "relight")
    with pytest.raises(ValueError, match="--instructions must list some of"):
        parse_instructions("remove,sharpen")
    with pytest.raises(ValueError, match="once each"):
        parse_instructions("remove,remove")


def test_cli_trains_then_evaluates(tmp_path, photos, capsys, repo_root):
    out = tmp_path / "cli.safetensors"
    code = train_cli(["edit", "--data", str(photos), "--out", str(out), "--steps", "2", "--crop", "32",
                      "--batch-size", "2", "--base-channels", "4", "--blocks", "1", "--embed-dim", "2", "--d-width",
                      "4", "--instructions", "recolour,blur_background", "--no-progress", "--threads", "1"])
    assert code == 0 and weights.load(out).config.instructions == ("recolour", "blur_background")
    code = train_cli(["evaluate-edit", "--model", str(out), "--data", str(photos), "--holdout", "0", "--limit", "2",
                      "--size", "32", "--json", str(tmp_path / "r.json")])
    table = capsys.readouterr().out
    assert code == 0
    assert "| recolour | cli |" in table and "| recolour | HSV hue shift |" in table
    assert "| blur_background | Gaussian blur |" in table and "| blur_background | input (untouched) |" in table
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["rows"]) == 6 and report["settings"]["images"] == ["g0.png", "g1.png"]
    # ST-LPIPS of every row: zero only where the method returns the target itself
    distances = {(r["instruction"], r["method"]): r["stlpips_region"] for r in report["rows"]}
    assert all(d is not None and d >= 0 for d in distances.values())
    assert distances[("blur_background", "input (untouched)")] > distances[("blur_background", "Gaussian blur")]
    # remove with an inpainting model, as GAN Edit removes, is a row of its own; the model must inpaint
    remover = tmp_path / "remover.safetensors"
    assert train_cli(["edit", "--data", str(photos), "--out", str(remover), "--steps", "1", "--crop", "32",
                      "--batch-size", "2", "--base-channels", "4", "--blocks", "1", "--embed-dim", "2", "--d-width",
                      "4", "--instructions", "remove", "--no-progress", "--threads", "1"]) == 0
    inpainter = repo_root / "models" / "weights" / "context_encoder_anymask.safetensors"
    code = train_cli(["evaluate-edit", "--model", str(remover), "--inpaint-model", str(inpainter), "--data",
                      str(photos), "--holdout", "0", "--limit", "2", "--size", "64", "--no-stlpips"])
    table = capsys.readouterr().out
    assert code == 0 and "| remove | remover + context_encoder_anymask |" in table and "| remove | cv2 Telea |" in table
    code = train_cli(["evaluate-edit", "--model", str(remover), "--inpaint-model", str(out), "--data", str(photos),
                      "--holdout", "0", "--limit", "1", "--no-stlpips"])
    assert code == 2 and "--inpaint-model needs a model for the 'inpaint' task" in capsys.readouterr().err
    code = train_cli(["evaluate-edit", "--model", str(out), "--data", str(photos), "--holdout", "0",
                      "--instructions", "relight"])
    assert code == 2 and "not 'relight'" in capsys.readouterr().err
