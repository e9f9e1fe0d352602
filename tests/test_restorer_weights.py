"""The shipped guided restorer on the sample photos (scikit-image photos, a source it never trained on): a clean
photo passes through, light noise comes off, and a JPEG is never made worse."""

from pathlib import Path

import pytest
import torch
from samples import PHOTOS, read_sample

from models import metrics, weights
from models.enhance import enhance, plain

pytestmark = pytest.mark.unit

RESTORER = Path(__file__).resolve().parents[1] / "models" / "weights" / "enhance_guided.safetensors"
CLEAN_DB = 52.0  # measured 54.2-57.3 dB on the three photos at 256 px
LIGHT_NOISE_GAIN_DB = 2.4  # Gaussian noise sigma 5 (plain degradations): measured +2.55 to +3.33 dB


@pytest.fixture(scope="module")
def restorer():
    return weights.load(RESTORER)


def _psnr(restorer, degraded: torch.Tensor, clean: torch.Tensor) -> float:
    return float(metrics.psnr(enhance(restorer, degraded).clamp(0, 1), clean))


def test_the_restorer_reads_the_noise_level_from_the_quietest_squares(restorer):
    assert restorer.config.guide and restorer.config.noise_estimator == "blocks"


@pytest.mark.parametrize("name", PHOTOS)
def test_a_clean_photo_passes_through(restorer, name):
    clean = read_sample(name)
    assert _psnr(restorer, clean, clean) > CLEAN_DB  # the previous restorer: 42.7-51.0 dB


@pytest.mark.parametrize("name", PHOTOS)
def test_light_noise_comes_off(restorer, name):
    clean = read_sample(name)
    noisy = plain.apply(clean, "noise5", 0)
    gain = _psnr(restorer, noisy, clean) - float(metrics.psnr(noisy, clean))
    assert gain > LIGHT_NOISE_GAIN_DB, f"{gain:.2f} dB"  # the previous restorer: 1.68-2.94 dB


@pytest.mark.parametrize("name", PHOTOS)
def test_a_jpeg_is_never_made_worse(restorer, name):
    clean = read_sample(name)
    jpeg = plain.apply(clean, "jpeg20", 0)
    assert _psnr(restorer, jpeg, clean) > float(metrics.psnr(jpeg, clean)) - 0.05  # previous: -0.17 on chelsea
