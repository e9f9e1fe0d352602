"""Training data: recursive folders, corrupt files skipped and counted, stable split, seeded crops."""

import numpy as np
import pytest
import torch
from PIL import Image

from models.train import data

pytestmark = pytest.mark.unit


def _write(path, size=(40, 30), colour=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def folder(tmp_path):
    for i in range(12):
        _write(tmp_path / "a" / f"img{i}.png", colour=(i * 20, 0, 0))
    _write(tmp_path / "b" / "deep" / "photo.jpg")
    Image.new("RGB", (40, 30)).save(tmp_path / "b" / "x.webp")
    Image.new("RGB", (40, 30)).save(tmp_path / "b" / "y.bmp")
    (tmp_path / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "b" / "notes.txt").write_text("ignored")
    _write(tmp_path / "small.png", size=(10, 10))
    return tmp_path


def test_recursive_listing_and_skips(folder):
    found = data.load_images(folder, min_side=16)
    assert len(found) == 15  # 12 + jpg + webp + bmp
    reasons = {p.name: why for p, why in found.skipped}
    assert set(reasons) == {"broken.jpg", "small.png"}
    assert "smaller than 16 px" in reasons["small.png"]
    assert all(t.dtype == torch.uint8 and t.shape == (3, 30, 40) for t in found.images)


def test_max_side_downscales(folder):
    found = data.load_images(folder / "a", min_side=8, max_side=20)
    assert found.images[0].shape == (3, 15, 20)


def test_held_out_split_is_stable_and_complementary(folder):
    train = data.load_images(folder, min_side=16, holdout=0.3)
    held = data.load_images(folder, min_side=16, holdout=0.3, use_held_out=True)
    assert set(train.paths).isdisjoint(held.paths)
    assert len(train) + len(held) == 15 and len(held) > 0
    # adding a file moves no existing file across the split
    _write(folder / "a" / "new.png")
    again = data.load_images(folder, min_side=16, holdout=0.3, use_held_out=True)
    assert set(held.paths) <= set(again.paths)


def test_no_usable_images_is_a_clear_error(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"no usable training images .*1 skipped"):
        data.load_images(tmp_path, min_side=8)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_images(tmp_path / "missing", min_side=8)


def test_crops_are_seeded_in_range_and_cover_the_image():
    images = [torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 50, 70), dtype=np.uint8))]
    a = data.random_crops(images, 4, 32, data.step_generator(1, 5))
    b = data.random_crops(images, 4, 32, data.step_generator(1, 5))
    c = data.random_crops(images, 4, 32, data.step_generator(1, 6))
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0
    exact = data.random_crops(images, 8, 32, data.step_generator(2, 1), zoom=False)
    source = images[0].float() / 255
    # without zoom every crop is a verbatim (possibly mirrored) window of the image
    windows = source.unfold(1, 32, 1).unfold(2, 32, 1)  # [3, 19, 39, 32, 32]
    for crop in exact:
        hit = any(
            torch.equal(windows[:, i, j], crop) or torch.equal(windows[:, i, j], crop.flip(-1))
            for i in range(windows.shape[1]) for j in range(windows.shape[2])
        )
        assert hit


def test_small_images_are_upscaled_to_the_crop():
    crop = data.random_crops([torch.zeros(3, 10, 12, dtype=torch.uint8)], 1, 32, data.step_generator(0, 0))
    assert crop.shape == (1, 3, 32, 32)


def test_step_generators_differ_by_rank_and_stream():
    draws = {
        (r, s): torch.rand(3, generator=data.step_generator(7, 1, r, s)).tolist() for r in range(2) for s in range(2)
    }
    assert len({tuple(v) for v in draws.values()}) == 4
