"""models.metrics against scikit-image's reference implementations, and on constructed cases.

Tolerance: our metrics and skimage's both run in float64 on the very same values (the float32
test images convert exactly), so they differ only by summation order: ~1e-16 relative per sum over
at most ~1e5 terms. 1e-9 is far above that and far below any difference that matters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from models import masks, metrics

pytestmark = pytest.mark.unit

TOL = 1e-9


def sk_ssim(a: torch.Tensor, b: torch.Tensor, full: bool = False):
    x = a.permute(1, 2, 0).double().numpy()
    y = b.permute(1, 2, 0).double().numpy()
    return structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1,
        full=full,
    )


def noisy_pair(shape: tuple[int, ...], seed: int, noise: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g)
    b = (a + noise * torch.randn(shape, generator=g)).clamp(0.0, 1.0)
    return a, b


def real_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """skimage's astronaut photo (96x128 crop) and a JPEG-like blurred, shifted, darker version of it."""
    photo = torch.from_numpy(skdata.astronaut()[100:196, 150:278].copy()).permute(2, 0, 1).float() / 255.0
    blurred = torch.nn.functional.avg_pool2d(photo[None], 3, stride=1, padding=1, count_include_pad=False)[0]
    other = (0.9 * blurred.roll(1, dims=-1) + 0.02).clamp(0.0, 1.0)
    return photo[None], other[None]


@pytest.mark.parametrize("shape", [(2, 3, 37, 50), (1, 3, 11, 11), (1, 1, 64, 13), (1, 3, 128, 128)])
def test_ssim_matches_skimage_on_random_images(shape: tuple[int, ...]) -> None:
    a, b = noisy_pair(shape, seed=sum(shape))
    ours = metrics.ssim(a, b)
    assert ours.shape == (shape[0],) and ours.dtype == torch.float64
    for i in range(shape[0]):
        assert abs(float(ours[i]) - sk_ssim(a[i], b[i])) < TOL


def test_ssim_and_psnr_match_skimage_on_a_real_photo() -> None:
    a, b = real_pair()
    ref_ssim = sk_ssim(a[0], b[0])
    assert 0.3 < ref_ssim < 0.99  # a meaningful, non-trivial comparison
    assert abs(float(metrics.ssim(a, b)[0]) - ref_ssim) < TOL
    ref_psnr = peak_signal_noise_ratio(a[0].double().numpy(), b[0].double().numpy(), data_range=1.0)
    assert abs(float(metrics.psnr(a, b)[0]) - ref_psnr) < TOL


def test_masked_ssim_is_the_mean_of_skimages_map_over_the_hole() -> None:
    a, b = real_pair()
    hole = masks.random_blocks(96, 128, 1, seed=3)
    _, smap = sk_ssim(a[0], b[0], full=True)
    expected = smap.mean(axis=-1)[hole[0, 0].numpy() > 0.5].mean()
    assert abs(float(metrics.ssim(a, b, hole)[0]) - expected) < TOL


def test_psnr_matches_skimage_with_and_without_a_mask() -> None:
    a, b = noisy_pair((2, 3, 40, 30), seed=1)
    hole = masks.irregular(40, 30, 2, seed=5)
    for i in range(2):
        x, y = a[i].double().numpy(), b[i].double().numpy()
        assert abs(float(metrics.psnr(a, b)[i]) - peak_signal_noise_ratio(x, y, data_range=1.0)) < TOL
        sel = hole[i, 0].numpy() > 0.5
        ref = peak_signal_noise_ratio(x[:, sel], y[:, sel], data_range=1.0)
        assert abs(float(metrics.psnr(a, b, hole)[i]) - ref) < TOL
    # a batch-1 mask serves every item
    assert torch.equal(metrics.psnr(a, b, hole[:1])[1], metrics.psnr(a[1:], b[1:], hole[:1])[0])


def test_psnr_data_range_scales_like_skimage() -> None:
    a, b = noisy_pair((1, 3, 20, 20), seed=2)
    ref = peak_signal_noise_ratio(a[0].double().numpy(), b[0].double().numpy(), data_range=2.0)
    assert abs(float(metrics.psnr(a, b, data_range=2.0)[0]) - ref) < TOL


def test_identical_images_give_inf_psnr_ssim_one_and_zero_errors() -> None:
    a, _ = noisy_pair((2, 3, 24, 24), seed=4)
    hole = masks.center_box(24, 24, 2)
    assert metrics.psnr(a, a).tolist() == [math.inf, math.inf]
    assert metrics.psnr(a, a, hole).tolist() == [math.inf, math.inf]
    assert torch.allclose(metrics.ssim(a, a), torch.ones(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(metrics.ssim(a, a, hole), torch.ones(2, dtype=torch.float64), atol=1e-12)
    assert metrics.l1_percent(a, a, hole).tolist() == [0.0, 0.0]
    assert metrics.l2_percent(a, a).tolist() == [0.0, 0.0]
    # one equal, one different item: only the equal one is inf
    b = a.clone()
    b[1] = 1.0 - b[1]
    values = metrics.psnr(a, b)
    assert math.isinf(values[0]) and math.isfinite(values[1])


def test_l1_and_l2_percent_count_the_hole_only() -> None:
    a = torch.zeros(1, 3, 16, 16)
    b = torch.full((1, 3, 16, 16), 0.5)  # outside the hole: error 0.5, ignored with the mask
    hole = masks.box_mask(16, 16, 1, 4, 4, 8, 8)
    b[..., 4:12, 4:12] = 0.125  # exact in float32
    assert metrics.l1_percent(a, b, hole).item() == pytest.approx(12.5, abs=1e-12)
    assert metrics.l2_percent(a, b, hole).item() == pytest.approx(1.5625, abs=1e-12)
    # PSNR over the hole: MSE 1/64 -> 10 log10(64) dB
    assert metrics.psnr(a, b, hole).item() == pytest.approx(10 * math.log10(64), abs=1e-12)
    # without a mask: the whole image (64 px at 0.125, 192 at 0.5)
    assert metrics.l1_percent(a, b).item() == pytest.approx(100 * (64 * 0.125 + 192 * 0.5) / 256, abs=1e-12)


def test_l1_percent_matches_numpy_on_random_pairs() -> None:
    a, b = noisy_pair((3, 3, 33, 21), seed=7)
    hole = masks.random_blocks(33, 21, 3, seed=1)
    for i in range(3):
        sel = hole[i, 0].numpy() > 0.5
        diff = a[i].double().numpy()[:, sel] - b[i].double().numpy()[:, sel]
        assert abs(float(metrics.l1_percent(a, b, hole)[i]) - 100 * np.abs(diff).mean()) < TOL
        assert abs(float(metrics.l2_percent(a, b, hole)[i]) - 100 * np.square(diff).mean()) < TOL


def test_bad_inputs_are_refused_with_what_arrived() -> None:
    a, b = noisy_pair((1, 3, 16, 16), seed=0)
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(a, b[..., :8])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.l1_percent(a * 2, b)
    with pytest.raises(ValueError, match="selects no pixels"):
        metrics.l1_percent(a, b, torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="mask must be"):
        metrics.psnr(a, b, torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(a[..., :10, :], b[..., :10, :])
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(a, b, data_range=0)


# -- colour-aware scores -------------------------------------------------------------------------


def numpy_colourfulness(image: torch.Tensor) -> float:
    """Hasler & Süsstrunk (2003) written out in numpy, on the 0..255 scale."""
    r, g, b = (image[0].double().numpy() * 255.0)
    rg, yb = r - g, 0.5 * (r + g) - b
    return math.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)


def numpy_chroma_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    def cbcr(x):
        r, g, bl = x[0].double().numpy()
        y = 0.299 * r + 0.587 * g + 0.114 * bl
        return np.stack([0.564 * (bl - y), 0.713 * (r - y)])

    return 10 * math.log10(1.0 / np.mean((cbcr(a) - cbcr(b)) ** 2))


def test_colourfulness_matches_the_formula_and_is_zero_for_grey() -> None:
    photo, other = real_pair()
    assert float(metrics.colourfulness(photo)[0]) == pytest.approx(numpy_colourfulness(photo), rel=TOL)
    assert float(metrics.colourfulness(other)[0]) == pytest.approx(numpy_colourfulness(other), rel=TOL)
    grey = photo.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    assert float(metrics.colourfulness(grey)[0]) == 0.0
    assert float(metrics.colourfulness(photo)[0]) > 20  # the astronaut's flag and suit are colourful


def test_masked_colourfulness_is_the_colourfulness_of_the_selected_pixels() -> None:
    photo, _ = real_pair()
    mask = torch.zeros(1, 1, *photo.shape[-2:])
    mask[..., :, :40] = 1
    whole = metrics.colourfulness(photo[..., :, :40])
    assert float(metrics.colourfulness(photo, mask)[0]) == pytest.approx(float(whole[0]), rel=1e-9)


def test_chroma_psnr_sees_colours_only_and_luma_ssim_luminance_only() -> None:
    photo, other = real_pair()
    assert float(metrics.chroma_psnr(photo, other)[0]) == pytest.approx(numpy_chroma_psnr(photo, other), rel=TOL)
    assert metrics.chroma_psnr(photo, photo)[0] == math.inf
    # the same colours on another luminance: chroma PSNR is perfect, luma SSIM is not
    y = 0.299 * photo[:, 0] + 0.587 * photo[:, 1] + 0.114 * photo[:, 2]
    shifted = (photo - y[:, None] + (0.5 * y[:, None] + 0.25)).clamp(0, 1)
    assert float(metrics.chroma_psnr(shifted, photo)[0]) > 45
    assert float(metrics.luma_ssim(shifted, photo)[0]) < 0.95
    # the photo's luminance without its colours: luma SSIM is 1, chroma PSNR is finite and low
    grey = y[:, None].expand(-1, 3, -1, -1)
    assert float(metrics.luma_ssim(grey, photo)[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(metrics.chroma_psnr(grey, photo)[0]) < 30
    with pytest.raises(ValueError, match="RGB"):
        metrics.luma_ssim(grey[:, :1], photo[:, :1])
