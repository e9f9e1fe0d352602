"""Old-photo damage: the renderer (seeded, the mask is where content was destroyed, ageing is not in it), the
detector's tiling and thresholds, the classical top-hat, the scores, and the training / evaluation commands."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from models import masks, weights
from models.archs.damage import DamageNet, DamageNetConfig
from models.damage import DAMAGE, LOCAL_ONLY, detect, render, to_mask
from models.damage.classical import tophat
from models.damage.evaluate import Tally
from models.weights import LoadedModel
from nodes.train.cli import main as train_cli

pytestmark = pytest.mark.unit

AGEING_ONLY = dataclasses.replace(DAMAGE, clean_probability=1.0, grey_probability=1.0, sepia_probability=0.0,
                                  jpeg_probability=0.0, fade_probability=1.0,
                                  grain_probability=1.0, blur_probability=1.0)


def _photo(batch=2, size=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(batch, 3, 6, 6, generator=g), size=(size, size),
                                             mode="bicubic", align_corners=True)
    return (0.25 + 0.5 * smooth).clamp(0, 1)


def test_the_same_seed_gives_the_same_pair_and_items_do_not_depend_on_the_batch():
    photo = _photo(3)
    a, ma = render(photo, 7)
    b, mb = render(photo, 7)
    assert torch.equal(a, b) and torch.equal(ma, mb)
    single, mask_single = render(photo[:1], 7)
    assert torch.equal(single, a[:1]) and torch.equal(mask_single, ma[:1])
    c, mc = render(photo, 8)
    assert not torch.equal(ma, mc)
    assert a.dtype == ma.dtype == torch.float32 and ma.shape == (3, 1, 96, 96)
    assert set(ma.unique().tolist()) <= {0.0, 1.0} and 0.0 <= float(a.min()) and float(a.max()) <= 1.0


def test_the_mask_covers_what_the_local_damage_changed():
    photo = _photo(8, 128)
    no_crease = dataclasses.replace(LOCAL_ONLY, crease_probability=0.0, clean_probability=0.0)
    damaged, mask = render(photo, 3, no_crease)
    changed = (damaged - photo).abs().amax(1, keepdim=True) > 0.08
    assert float(mask.mean()) > 0.005, "damage is drawn"
    # what changed clearly lies in the mask (up to anti-aliased rims a pixel wide)
    outside = changed & (masks.grow(mask, 1) < 0.5)
    assert float(outside.sum()) <= 0.01 * float(changed.sum())
    # and most of the mask changed (a dark scratch over a dark spot may not)
    assert float((changed & (mask > 0.5)).sum()) >= 0.7 * float(mask.sum())


def test_ageing_changes_the_whole_photo_but_is_not_in_the_mask():
    photo = _photo(4)
    damaged, mask = render(photo, 1, AGEING_ONLY)
    assert float(mask.sum()) == 0.0
    assert float((damaged - photo).abs().mean()) > 0.02
    assert torch.allclose(damaged[:, 0], damaged[:, 1]) and torch.allclose(damaged[:, 1], damaged[:, 2]), "grey"


def test_grey_photos_and_bad_input():
    damaged, mask = render(_photo(1)[:, :1], 2)
    assert damaged.shape == (1, 1, 96, 96) and mask.shape == (1, 1, 96, 96)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        render(_photo(1), -1)
    with pytest.raises(ValueError, match="scratches range must lie within"):
        dataclasses.replace(DAMAGE, scratches=(0, 1000))
    with pytest.raises(ValueError, match="channels"):
        render(torch.rand(1, 2, 32, 32), 0)


def _model(seed=0):
    torch.manual_seed(seed)
    config = DamageNetConfig(base_channels=4, levels=2, max_channels=8)
    return LoadedModel(DamageNet(config).eval(), "damage_unet", config, "detect")


def test_tiles_compute_what_the_whole_image_would_away_from_their_inner_borders():
    model = _model()
    photo = torch.rand(2, 3, 64, 296)
    whole = detect(model, photo, tile=512)
    calls = []
    tiled = detect(model, photo, tile=192, overlap=32, progress=lambda d, t: calls.append((d, t)))
    assert whole.shape == tiled.shape == (2, 1, 64, 296)
    # two tiles across, one down: columns far (more than the receptive field) from the other tile's edge are
    # computed by one tile alone, exactly as in one pass; that needs tiles to start on the network's pixel grid
    assert torch.allclose(whole[..., :90], tiled[..., :90], atol=1e-5)
    assert torch.allclose(whole[..., 210:], tiled[..., 210:], atol=1e-5)
    assert (whole - tiled).abs().max() < 0.2
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    grey = detect(model, photo[:, :1])
    assert torch.allclose(grey, detect(model, photo[:, :1].expand(-1, 3, -1, -1)))
    assert 0.0 <= float(whole.min()) and float(whole.max()) <= 1.0


def test_detect_refuses_other_models_and_bad_tiles():
    with pytest.raises(ValueError, match="detect needs a 'damage_unet' model"):
        detect(LoadedModel(torch.nn.Identity(), "enhance_unet", None, "enhance"), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="tile must be an int >= 64"):
        detect(_model(), torch.rand(1, 3, 32, 32), tile=16)


def test_to_mask_thresholds_and_grows():
    p = torch.zeros(1, 1, 9, 9)
    p[0, 0, 4, 4] = 0.7
    assert float(to_mask(p, 0.5).sum()) == 1.0 and float(to_mask(p, 0.8).sum()) == 0.0
    assert float(to_mask(p, 0.5, grow=1).sum()) == 5.0
    with pytest.raises(ValueError, match=r"threshold must be a number in \(0, 1\)"):
        to_mask(p, 1.5)


def test_the_top_hat_answers_thin_lines_not_flat_areas_or_wide_shapes():
    image = torch.full((1, 3, 40, 40), 0.5)
    image[:, :, 10, :] = 1.0  # a 1 px bright line
    image[:, :, :, 30] = 0.0  # a 1 px dark line
    image[:, :, 20:35, 2:17] = 0.9  # a wide bright square
    r = tophat(image, 7)
    assert r[0, 0, 10, 5] > 0.45 and r[0, 0, 25, 30] > 0.45
    assert r[0, 0, 27, 9] < 1e-6 and r[0, 0, 5, 20] < 1e-6


def test_tally_counts_and_the_oracle_threshold():
    truth = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0]).view(1, 1, 1, 5)
    score = torch.tensor([0.9, 0.4, 0.6, 0.1, 0.0]).view(1, 1, 1, 5)
    tally = Tally()
    tally.add(score, truth)
    at = tally.at(0.5)  # finds pixel 0 (right) and pixel 2 (wrong), misses pixel 1
    assert (at.precision, at.recall, at.iou) == (0.5, 0.5, pytest.approx(1 / 3)) and at.f1 == 0.5
    best = tally.best()
    assert best.f1 == pytest.approx(0.8) and 0.1 < best.threshold <= 0.4  # both damaged, one false alarm


def test_the_training_command_learns_exports_and_resumes_and_evaluate_scores_it(tmp_path, capsys):
    out = tmp_path / "damage.safetensors"
    args = ["damage", "--data", "workflows/inputs", "--steps", "30", "--crop", "64", "--batch-size", "4",
            "--base-channels", "8", "--levels", "2", "--max-channels", "16", "--checkpoint-every", "15",
            "--preview-every", "15", "--log-every", "1", "--no-progress", "--out", str(out), "--stop-at", "15"]
    assert train_cli(args) == 0
    assert train_cli([*args[:-2], "--resume"]) == 0
    model = weights.load(out)
    assert (model.arch, model.task) == ("damage_unet", "detect")
    rows = [json.loads(line) for line in out.with_name("damage.metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 30
    early = sum(r["bce"] for r in rows[:5]) / 5
    late = sum(r["bce"] for r in rows[-5:]) / 5
    assert late < early, (early, late)
    capsys.readouterr()
    assert train_cli(["evaluate-damage", "--data", "workflows/inputs", "--model", str(out), "--max-side", "128",
                      "--json", str(tmp_path / "scores.json")]) == 0
    printed = capsys.readouterr().out
    assert "| damage (threshold 0.5) |" in printed and "top-hat" in printed
    report = json.loads((tmp_path / "scores.json").read_text())
    photos = sorted(p.name for p in Path("workflows/inputs").glob("*.jpg"))
    assert report["settings"]["images"] == photos and 0.0 <= report["rows"]["damage (oracle threshold)"]["f1"] <= 1


def test_the_shipped_old_photo_sample_is_the_renderer_s_heavy_damage_on_the_astronaut():
    """workflows/inputs/old_photo.jpg = render(astronaut.jpg, seed 3, HEAVY), saved as JPEG quality 95."""
    import numpy as np
    from PIL import Image

    from models import layout, metrics
    from models.damage import HEAVY

    def read(name):
        return layout.from_u8(np.asarray(Image.open(f"workflows/inputs/{name}").convert("RGB")))

    damaged, mask = render(read("astronaut.jpg"), 3, HEAVY)
    assert 0.02 < float(mask.mean()) < 0.08
    assert float(metrics.psnr(read("old_photo.jpg"), damaged)) > 35.0
