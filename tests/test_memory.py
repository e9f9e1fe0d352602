"""The memory budget for tensors made from user numbers: estimates refuse before anything is allocated."""

import time

import pytest
import torch

from models import masks, memory
from models.archs.enhance import ARCHITECTURE, EnhanceConfig, EnhanceNet
from models.enhance import degrade, enhance, peak_bytes
from models.weights import LoadedModel

pytestmark = pytest.mark.unit


def test_the_limit_is_a_share_of_available_memory_or_the_override(monkeypatch):
    monkeypatch.delenv("GAN_EDIT_MEMORY_LIMIT_GB", raising=False)
    assert 0 < memory.limit() <= memory._available()
    monkeypatch.setenv("GAN_EDIT_MEMORY_LIMIT_GB", "0.5")
    assert memory.limit() == 2**29
    monkeypatch.setenv("GAN_EDIT_MEMORY_LIMIT_GB", "lots")
    with pytest.raises(ValueError, match="GAN_EDIT_MEMORY_LIMIT_GB must be a positive number of GiB, got 'lots'"):
        memory.limit()


def test_huge_masks_are_refused_at_once_with_the_numbers(monkeypatch):
    monkeypatch.setenv("GAN_EDIT_MEMORY_LIMIT_GB", "4")
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"^16384x16384x64 masks need 128.0 GiB; the limit is 4.0 GiB "
                       r"\(GAN_EDIT_MEMORY_LIMIT_GB\) - lower the batch or the size$"):
        masks.free_form_strokes(16384, 16384, 64, seed=0)
    assert time.perf_counter() - start < 0.5  # refused before drawing anything
    for make in (lambda: masks.box_mask(16384, 16384, 64, 0, 0, 8, 8),
                 lambda: masks.random_blocks(16384, 16384, 64, 0), lambda: masks.irregular(16384, 16384, 64, 0),
                 lambda: masks.outpaint_border(16384, 16384, 64, 8, 8, 8, 8)):
        with pytest.raises(ValueError, match="16384x16384x64 masks need"):
            make()
    assert masks.box_mask(64, 64, 2, 0, 0, 8, 8).shape == (2, 1, 64, 64)  # small ones are made as before


def test_degrade_enhance_and_inpaint_estimate_their_peak(monkeypatch):
    monkeypatch.setenv("GAN_EDIT_MEMORY_LIMIT_GB", str(1 / 1024))  # 1 MiB
    image = torch.rand(1, 3, 256, 256)  # 0.75 MiB
    with pytest.raises(ValueError, match=r"degrading 1 image\(s\) of 256x256 need [\d.]+ MiB; the limit is 1.0 MiB"):
        degrade.degrade(image, degrade.RESTORE)
    config = EnhanceConfig(base_channels=8, levels=1, blocks=0, context=False)
    model = LoadedModel(EnhanceNet(config).eval(), ARCHITECTURE.id, config, "enhance")
    with pytest.raises(ValueError, match="enhancing 1 image.*in tiles of 256 px need .* - lower the tile size"):
        enhance(model, image, tile=256, overlap=16)
    monkeypatch.setenv("GAN_EDIT_MEMORY_LIMIT_GB", "1")
    assert enhance(model, image, tile=256, overlap=16).shape == image.shape
    assert degrade.degrade(image, degrade.RESTORE).shape == image.shape


def test_the_tile_size_drives_the_enhance_estimate():
    config = EnhanceConfig()
    model = LoadedModel(EnhanceNet(config).eval(), ARCHITECTURE.id, config, "enhance")
    assert peak_bytes(model, (1, 3, 8192, 8192), 8192) > 4 * peak_bytes(model, (1, 3, 8192, 8192), 512)
    assert peak_bytes(model, (1, 3, 512, 512), 512) < 2**30  # the default tile on a 512 px image: under 1 GiB
