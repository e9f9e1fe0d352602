"""The shipped colouriser: it keeps the photo's luminance exactly and its colours beat grey on photos of a source it
never trained on (the sample photos come from scikit-image; its training photos from gcompris and wallpapers)."""

from pathlib import Path

import pytest
import torch
from samples import PHOTOS, read_sample

from models import colour, metrics, translate, weights
from models.archs.colorize import VGGColorizerConfig
from models.translate import pairs

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
COLORIZER = ROOT / "models" / "weights" / "colorize_vgg16.safetensors"


@pytest.fixture(scope="module")
def colorizer():
    return weights.load(COLORIZER)


def test_the_file_is_a_vgg_colorizer_stored_small(colorizer):
    assert (colorizer.arch, colorizer.task) == ("vgg_colorizer", "translate")
    assert colorizer.config == VGGColorizerConfig()
    assert all(p.dtype == torch.float32 for p in colorizer.module.parameters())  # float16 storage, upcast
    assert COLORIZER.stat().st_size < 17_000_000
    settings = colorizer.provenance["task_settings"]
    assert settings["data"]["held_out_sources"] == ["opencv", "skimage"]


def test_colours_beat_grey_on_photos_of_a_source_it_never_saw(colorizer, record_property):
    """Chroma PSNR (BT.601 Cb, Cr) above the grey picture's on every sample photo, and the colourfulness
    nearer the photo's; the luma is the photo's, so luma SSIM is 1."""
    measured = {}
    for name in PHOTOS:
        photo = read_sample(name)
        grey = pairs.grey(photo)
        out = translate.translate(colorizer, photo)
        assert torch.allclose(colour.luma(out), colour.luma(photo), atol=1e-5)
        assert torch.allclose(out, translate.translate(colorizer, grey), atol=1e-5)  # it reads the luma only
        ours, baseline = metrics.chroma_psnr(out, photo).item(), metrics.chroma_psnr(grey, photo).item()
        target = metrics.colourfulness(photo).item()
        spread = abs(metrics.colourfulness(out).item() - target), abs(metrics.colourfulness(grey).item() - target)
        measured[name] = (round(ours, 2), round(baseline, 2), round(spread[0], 1), round(spread[1], 1))
        assert ours > baseline + CHROMA_MARGIN_DB, f"{name}: chroma PSNR {ours:.2f} dB, grey {baseline:.2f} dB"
        assert spread[0] < spread[1], f"{name}: colourfulness error {spread[0]:.1f}, grey's {spread[1]:.1f}"
    record_property("chroma PSNR, grey's, colourfulness error, grey's", measured)


CHROMA_MARGIN_DB = 0.3
"""Measured +0.47 / +2.50 / +0.80 dB over grey (astronaut, chelsea, coffee at 256 px; colourfulness error 52 / 15 / 56
against grey's 72 / 38 / 76)."""
