"""The independent evaluation degradations (`models.enhance.plain`) and how evaluation uses them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import layout, metrics
from models.enhance import evaluate, plain


def photo(size: int = 64) -> torch.Tensor:
    """A smooth colour photo-like image [1,3,S,S] on the 8-bit grid, away from 0 and 255."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    image = torch.stack([0.3 + 0.4 * x, 0.35 + 0.3 * y, 0.5 - 0.2 * x * y])[None]
    return torch.round(image * 255) / 255


def u8(image: torch.Tensor) -> np.ndarray:
    return layout.to_u8(image).astype(np.float64)


@pytest.mark.parametrize("sigma", [5, 15, 25])
def test_noise_has_the_named_standard_deviation_on_the_8_bit_scale(sigma: int) -> None:
    clean = photo(128)
    noisy = plain.apply(clean, f"noise{sigma}", seed=3)
    residual = u8(noisy) - u8(clean)
    assert residual.std() == pytest.approx(sigma, rel=0.05)
    assert abs(residual.mean()) < 0.5  # no clipping on this mid-grey image, so no bias
    assert torch.equal(noisy, plain.apply(clean, f"noise{sigma}", seed=3))  # seeded
    assert not torch.equal(noisy, plain.apply(clean, f"noise{sigma}", seed=4))
    assert torch.equal(noisy * 255, torch.round(noisy * 255))  # 8-bit values


def test_luma_noise_is_the_same_on_every_channel_and_colour_noise_is_not() -> None:
    clean = photo()
    luma = u8(plain.apply(clean, "noise15-luma", seed=0)) - u8(clean)
    colour = u8(plain.apply(clean, "noise15", seed=0)) - u8(clean)
    assert np.array_equal(luma[..., 0], luma[..., 1]) and np.array_equal(luma[..., 1], luma[..., 2])
    assert not np.array_equal(colour[..., 0], colour[..., 1])


def test_clean_is_the_photo_and_the_others_change_it_as_named() -> None:
    clean = photo()
    assert torch.equal(plain.apply(clean, "clean"), clean)
    dark = u8(plain.apply(clean, "lowlight"))
    expected = 255 * (0.5 * u8(clean) / 255) ** 1.2
    assert np.abs(dark - expected).max() <= 0.5
    flat = plain.apply(clean, "lowcontrast")
    assert u8(flat).std() < 0.7 * u8(clean).std() and abs(u8(flat).mean() - u8(clean).mean()) < 2
    cast = u8(plain.apply(clean, "colourcast")).mean(axis=(0, 1)) / u8(clean).mean(axis=(0, 1))
    assert cast == pytest.approx([1.12, 1.0, 0.85], abs=0.01)
    for name in ("jpeg20", "jpeg50"):
        assert 25 < float(metrics.psnr(plain.apply(clean, name), clean)) < 60
    assert float(metrics.psnr(plain.apply(clean, "jpeg20"), clean)) < float(metrics.psnr(plain.apply(clean, "jpeg50"),
                                                                                        clean))


def test_blur_is_a_normalised_gaussian_of_the_named_width() -> None:
    impulse = np.zeros((31, 31, 3))
    impulse[15, 15] = 1.0
    blurred = plain.gaussian_blur(impulse, 1.5)
    assert blurred.sum() == pytest.approx(3.0)
    ys = np.arange(31) - 15
    variance = (blurred[:, 15, 0] * ys**2).sum() / blurred[:, 15, 0].sum()
    assert variance == pytest.approx(1.5**2, rel=0.05)


def test_unknown_names_and_shapes_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown plain degradation 'fog'"):
        plain.apply(photo(), "fog")
    with pytest.raises(ValueError, match=r"\[1, 3, H, W\]"):
        plain.apply(torch.zeros(2, 3, 8, 8), "clean")


def test_prepare_image_resize_modes() -> None:
    image = (torch.rand(3, 100, 80) * 255).to(torch.uint8)
    crop = metrics.prepare_image(image, 64, "crop")
    assert crop.shape == (1, 3, 64, 64)
    assert torch.equal(crop[0], image[:, 18:82, 8:72].float() / 255)  # the centre square, not resampled
    sharp, soft = metrics.prepare_image(image, 40, "lanczos"), metrics.prepare_image(image, 40, "bilinear")
    assert sharp.shape == soft.shape == (1, 3, 40, 40)
    assert torch.equal(sharp * 255, torch.round(sharp * 255))  # Lanczos on 8-bit values stays 8-bit
    laplacian = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])[None, None].expand(3, 1, 3, 3)

    def detail(x: torch.Tensor) -> float:
        return float(torch.nn.functional.conv2d(x, laplacian, groups=3).var())

    assert detail(sharp) > 1.2 * detail(soft)  # the sharp filter keeps more of the fine detail
    assert metrics.prepare_image(image, 200, "crop").shape == (1, 3, 80, 80)  # smaller: its whole centre square
    with pytest.raises(ValueError, match="resize must be one of"):
        metrics.prepare_image(image, 40, "nearest")


def test_evaluation_with_plain_degradations_scores_a_perfect_restorer_at_the_cap_and_adds_the_distance() -> None:
    image = (photo(80)[0] * 255).to(torch.uint8)
    clean = metrics.prepare_image(image, 64, "crop")
    calls = []

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        calls.append(a.shape)
        return (a - b).abs().mean(dim=(1, 2, 3))

    classical = {"halve": {"": lambda x: x * 0.5}, "keep": {"": lambda x: x}}
    rows = evaluate.evaluate_restoration({"oracle": lambda x: clean}, [image], degradations=("clean", "noise15"),
                                         size=64, resize="crop", classical=classical, perceptual=distance)
    by = {(r.degradation, r.method): r for r in rows}
    assert by["clean", "degraded input"].psnr == evaluate.PSNR_CAP and by["clean", "degraded input"].stlpips == 0
    assert by["noise15", "degraded input"].psnr < 30 and by["noise15", "degraded input"].stlpips > 0
    assert by["noise15", "oracle"].psnr == evaluate.PSNR_CAP and by["noise15", "oracle"].stlpips == 0
    assert by["noise15", "keep"].stlpips is not None and by["noise15", "halve"].stlpips is None  # the best only
    assert len(calls) == 2 * 3  # per degradation: the input, the model, the best classical method
    assert "ST-LPIPS" in evaluate.format_table(rows)
