"""Unit tests of models/degrade.py: determinism, each step's effect, fixed degradations, contract, errors."""

import dataclasses
import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.io import decode_jpeg, encode_jpeg

from models.enhance import degrade as dg
from models.enhance.degrade import DegradeConfig

pytestmark = pytest.mark.unit


def _photo(batch: int = 2, height: int = 48, width: int = 64, seed: int = 0) -> torch.Tensor:
    """A smooth gradient with texture: structure at every scale, values inside (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height).view(1, 1, height, 1)
    x = torch.linspace(0, 1, width).view(1, 1, 1, width)
    planes = [0.2 + 0.6 * x * y, 0.3 + 0.4 * x + 0 * y, 0.7 - 0.4 * y + 0 * x]
    base = torch.cat(planes, dim=1).expand(batch, 3, height, width)
    return (base + 0.1 * torch.rand(batch, 3, height, width, generator=g)).clamp(0, 1)


def _high_frequency_energy(image: torch.Tensor) -> float:
    """Mean squared discrete Laplacian (interior pixels)."""
    lap = (4 * image[..., 1:-1, 1:-1] - image[..., :-2, 1:-1] - image[..., 2:, 1:-1]
           - image[..., 1:-1, :-2] - image[..., 1:-1, 2:])
    return float(lap.pow(2).mean())


def _flat(value: float = 0.5, size: int = 256) -> torch.Tensor:
    return torch.full((1, 3, size, size), value)


def _std_tolerance(sigma: float, n: int) -> float:
    """Five standard errors of a sample std over n normal draws: sigma / sqrt(2 n) each."""
    return 5 * sigma / math.sqrt(2 * n)


# --------------------------------------------------------------------------------------------
# determinism


def test_same_seed_same_output_different_seeds_differ():
    image = _photo()
    a = dg.degrade(image, dg.RESTORE, seed=7)
    assert torch.equal(a, dg.degrade(image, dg.RESTORE, seed=7))
    assert not torch.equal(a, dg.degrade(image, dg.RESTORE, seed=8))
    # items of one batch are drawn independently
    same = _photo(batch=1).expand(2, -1, -1, -1)
    out = dg.degrade(same, dg.FIXED["noise15"], seed=7)
    assert not torch.equal(out[0], out[1])


def test_item_does_not_depend_on_batch_size():
    image = _photo(batch=3)
    for config in (dg.RESTORE, dg.ENHANCE):
        three = dg.degrade(image, config, seed=3)
        two = dg.degrade(image[:2], config, seed=3)
        assert torch.equal(three[:2], two)


def test_other_steps_do_not_change_the_noise_draw():
    # the per-step random streams: adding a JPEG step leaves the blur and noise draws alone
    image = _photo(batch=1)
    blur_noise = dg.FIXED["blur1.5+noise5"]
    plus_jpeg = dataclasses.replace(blur_noise, jpeg_probability=1.0, jpeg_quality=(90, 90))
    expected = dg.jpeg(dg.degrade(image, blur_noise, seed=4), 90)
    assert torch.equal(dg.degrade(image, plus_jpeg, seed=4), expected)


def test_colour_only_keeps_each_items_colour_fault_and_drops_everything_else():
    image = _photo(batch=8)
    mix = DegradeConfig(colour_probability=0.5, exposure_gain=(0.3, 0.8), noise_probability=1.0,
                        noise_sigma=(10.0, 10.0), poisson_probability=0.0, jpeg_probability=1.0,
                        second_order_probability=1.0)
    alone = dg.colour_only(mix)
    assert alone.colour_probability == 0.5 and alone.exposure_gain == (0.3, 0.8)
    colour = dg.degrade(image, alone, seed=7)
    # the same items are darkened as in the full mix, by the same gain (the full mix adds zero-mean noise)
    full = dg.degrade(image, mix, seed=7)
    gain = colour.mean(dim=(1, 2, 3)) / image.mean(dim=(1, 2, 3))
    full_gain = full.mean(dim=(1, 2, 3)) / image.mean(dim=(1, 2, 3))
    darkened = gain < 0.9
    assert 0 < darkened.sum() < 8
    assert torch.equal(colour[~darkened], image[~darkened])  # no noise, JPEG or second pass anywhere
    assert (full_gain[darkened] - gain[darkened]).abs().max() < 0.03


def test_clean_probability_leaves_that_share_of_items_exactly_untouched():
    image = _photo(batch=1).expand(200, -1, -1, -1).contiguous()
    config = dataclasses.replace(dg.FIXED["noise15"], clean_probability=0.25)
    out = dg.degrade(image, config, seed=5)
    untouched = torch.tensor([torch.equal(o, i) for o, i in zip(out, image, strict=True)])
    assert 0.15 < untouched.float().mean() < 0.35
    # the other items get exactly the noise they get without the option (the decision has its own stream)
    plain = dg.degrade(image, dg.FIXED["noise15"], seed=5)
    assert torch.equal(out[~untouched], plain[~untouched])
    assert torch.equal(dg.degrade(image, dataclasses.replace(config, clean_probability=1.0), seed=5), image)


# --------------------------------------------------------------------------------------------
# each step degrades


@pytest.mark.parametrize("anisotropic", [0.0, 1.0])
def test_blur_lowers_high_frequency_energy(anisotropic):
    image = _photo()
    config = DegradeConfig(blur_probability=1.0, blur_sigma=(1.0, 2.0), anisotropic_probability=anisotropic)
    out = dg.degrade(image, config, seed=1)
    assert _high_frequency_energy(out) < 0.3 * _high_frequency_energy(image)
    # a blur keeps the mean (normalised kernel, reflection padding)
    assert abs(float(out.mean() - image.mean())) < 0.01


def test_isotropic_blur_matches_torchvision():
    image = _photo()
    out = dg.apply_fixed(image, "blur1.5+noise5", seed=0)
    blurred = TF.gaussian_blur(image, [11, 11], [1.5, 1.5])  # 2 * ceil(3 * 1.5) + 1 = 11
    residual = out - blurred
    # what is left is the sigma 5 noise (clipping aside)
    assert abs(float(residual.std()) - 5 / 255) < _std_tolerance(5 / 255, residual.numel()) + 1e-4


def test_anisotropic_kernel_is_normalised_and_rotated():
    kernel = dg.anisotropic_gaussian_kernel(3.0, 1.0, math.pi / 2, 25).double()
    assert abs(float(kernel.sum()) - 1) < 1e-6
    ax = torch.arange(-12, 13, dtype=torch.float64)
    var_x = float((kernel.sum(0) * ax**2).sum())
    var_y = float((kernel.sum(1) * ax**2).sum())
    # rotated by 90 degrees: the long axis (sigma 3) is now vertical
    assert var_y == pytest.approx(9.0, rel=0.02) and var_x == pytest.approx(1.0, rel=0.02)
    diagonal = dg.anisotropic_gaussian_kernel(3.0, 1.0, math.pi / 4, 25)
    assert torch.allclose(diagonal, diagonal.T, atol=1e-7)  # symmetric about the diagonal
    assert not torch.allclose(diagonal, diagonal.flip(0), atol=1e-4)  # but not about the horizontal axis


def test_blur_works_on_images_smaller_than_the_kernel():
    image = torch.rand(2, 3, 4, 5)
    config = DegradeConfig(blur_probability=1.0, blur_sigma=(3.0, 3.0))
    out = dg.degrade(image, config, seed=0)
    assert out.shape == image.shape and out.std() < image.std()


@pytest.mark.parametrize("sigma", [5.0, 15.0, 25.0])
def test_gaussian_noise_raises_the_std_of_a_flat_image_by_sigma(sigma):
    config = DegradeConfig(noise_probability=1.0, noise_sigma=(sigma, sigma), poisson_probability=0.0,
                           grey_noise_probability=0.0)
    out = dg.degrade(_flat(), config, seed=2)
    # at 0.5 +- 3.3 sigma no value is clipped for sigma <= 25/255 (0.5 / 0.098 > 5 sigma)
    assert abs(float(out.std()) - sigma / 255) < _std_tolerance(sigma / 255, out.numel())
    assert abs(float(out.mean()) - 0.5) < 5 * (sigma / 255) / math.sqrt(out.numel())


def test_grey_noise_is_the_same_in_every_channel_and_colour_noise_is_not():
    grey = DegradeConfig(noise_probability=1.0, noise_sigma=(10, 10), poisson_probability=0.0,
                         grey_noise_probability=1.0)
    out = dg.degrade(_flat(size=32), grey, seed=0)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    colour = dg.apply_fixed(_flat(size=32), "noise15")
    assert not torch.equal(colour[:, 0], colour[:, 1])


def test_poisson_noise_follows_shot_noise_statistics():
    value, scale = 0.5, 2.0
    config = DegradeConfig(noise_probability=1.0, poisson_probability=1.0, poisson_scale=(scale, scale),
                           grey_noise_probability=0.0)
    out = dg.degrade(_flat(value), config, seed=5)
    expected = scale * math.sqrt(value / 255)  # Poisson(255 v) / 255 has std sqrt(v / 255)
    assert abs(float(out.std()) - expected) < _std_tolerance(expected, out.numel()) + 1e-3
    # brighter pixels get more noise
    bright = dg.degrade(_flat(0.9), config, seed=5)
    assert float(bright.std()) > float(out.std())


def test_jpeg_q20_changes_the_image_and_matches_a_direct_encode_decode():
    image = _photo(batch=2)
    out = dg.apply_fixed(image, "jpeg20")
    assert float((out - image).abs().mean()) > 0.005
    for item in range(2):
        as_bytes = (image[item] * 255).round().to(torch.uint8)
        direct = decode_jpeg(encode_jpeg(as_bytes, quality=20)).float() / 255
        assert torch.equal(out[item], direct)
    # higher quality, closer to the input
    q90 = dg.degrade(image, DegradeConfig(jpeg_probability=1.0, jpeg_quality=(90, 90)), 0)
    assert float((q90 - image).abs().mean()) < float((out - image).abs().mean())


def test_resize_loses_detail():
    image = _photo()
    config = DegradeConfig(resize_probability=1.0, resize_scale=(0.25, 0.25), resize_modes=("area",))
    out = dg.degrade(image, config, seed=0)
    assert out.shape == image.shape
    assert _high_frequency_energy(out) < 0.3 * _high_frequency_energy(image)
    for mode in dg.RESIZE_MODES:
        one = dataclasses.replace(config, resize_modes=(mode,))
        assert dg.degrade(image, one, seed=0).shape == image.shape


def test_exposure_moves_mean_brightness_in_the_right_direction():
    image = _photo()
    dark = dg.apply_fixed(image, "underexposed")
    assert float(dark.mean()) < 0.6 * float(image.mean())
    # gain 0.5 and gamma 1.2, exactly
    assert torch.allclose(dark, (0.5 * image.pow(1.2)).clamp(0, 1), atol=1e-6)
    bright = dg.degrade(image, DegradeConfig(colour_probability=1.0, exposure_gain=(1.3, 1.3)), 0)
    assert float(bright.mean()) > float(image.mean())
    lifted = dg.degrade(image, DegradeConfig(colour_probability=1.0, gamma=(0.6, 0.6)), 0)
    assert float(lifted.mean()) > float(image.mean())


def test_lowered_contrast_and_saturation_and_colour_cast():
    image = _photo()
    flat = dg.degrade(image, DegradeConfig(colour_probability=1.0, contrast=(0.5, 0.5)), 0)
    assert float(flat.std()) < 0.6 * float(image.std())
    grey = dg.degrade(image, DegradeConfig(colour_probability=1.0, saturation=(0.0, 0.0)), 0)
    assert torch.allclose(grey[:, 0], grey[:, 1], atol=1e-6) and torch.allclose(grey[:, 1], grey[:, 2], atol=1e-6)
    cast = dg.degrade(image, DegradeConfig(colour_probability=1.0, colour_cast=0.3), 0)
    ratios = cast.mean(dim=(2, 3)) / image.mean(dim=(2, 3))
    assert float((ratios - 1).abs().max()) > 0.02  # some channel gain moved
    enhanced = dg.degrade(image, dg.ENHANCE, seed=1)
    assert float((enhanced - image).abs().mean()) > 0.01


def test_colour_factors_can_come_one_at_a_time():
    image = _photo(batch=1)
    every = dataclasses.replace(dg.ENHANCE, colour_probability=1.0, exposure_gain=(0.5, 0.5), contrast=(0.5, 0.5))
    assert torch.equal(dg.degrade(image, every, 3), dg.degrade(image, dataclasses.replace(every), 3))
    none = dataclasses.replace(every, colour_factor_probability=0.0)
    assert torch.allclose(dg.degrade(image, none, 3), image, atol=1e-6)  # every factor switched off
    some = dataclasses.replace(every, colour_factor_probability=0.5)
    means = [float(dg.degrade(image, some, seed).mean()) for seed in range(40)]
    dark = sum(m < 0.6 * float(image.mean()) for m in means)  # the exposure factor halves the values
    assert 8 <= dark <= 32, dark  # about half of the items, not all and not none
    with pytest.raises(ValueError, match="colour_factor_probability"):
        DegradeConfig(colour_factor_probability=1.5)


def test_restore_preset_degrades_and_stays_photo_like():
    image = _photo(batch=4)
    out = dg.degrade(image, dg.RESTORE, seed=0)
    error = (out - image).abs().mean(dim=(1, 2, 3))
    assert bool((error > 0.005).all()) and bool((error < 0.3).all())


# --------------------------------------------------------------------------------------------
# fixed degradations and presets


def test_fixed_degradations_are_reproducible_and_named_as_documented():
    assert list(dg.FIXED) == ["noise15", "noise25", "blur1.5+noise5", "jpeg20", "underexposed", "lowcontrast"]
    image = _photo()
    for name in dg.FIXED:
        a = dg.apply_fixed(image, name)
        assert torch.equal(a, dg.apply_fixed(image, name, seed=0))
        assert not torch.equal(a, image), name
    # the noise depends on the seed; JPEG and exposure do not
    assert not torch.equal(dg.apply_fixed(image, "noise25", 0), dg.apply_fixed(image, "noise25", 1))
    assert torch.equal(dg.apply_fixed(image, "jpeg20", 0), dg.apply_fixed(image, "jpeg20", 1))


def test_custom_config_neutral_values_turn_steps_off():
    image = _photo()
    assert torch.equal(dg.degrade(image, dg.custom_config(), 0), image)
    full = dg.custom_config(blur_sigma_max=2.0, noise_sigma_max=20, jpeg_quality_min=40, resize_scale_min=0.5,
                            colour_strength=1.0)
    assert full.blur_sigma == (0.2, 2.0) and full.noise_sigma == (1.0, 20.0) and full.jpeg_quality == (40, 95)
    assert full.resize_scale == (0.5, 1.0) and full.exposure_gain == dg.ENHANCE.exposure_gain
    assert not torch.equal(dg.degrade(image, full, 0), image)
    with pytest.raises(ValueError, match=r"noise_sigma_max must lie in \[0, 50\], got 60"):
        dg.custom_config(noise_sigma_max=60)
    with pytest.raises(ValueError, match="blur_sigma_max must be 0 \\(off\\) or >= 0.1"):
        dg.custom_config(blur_sigma_max=0.05)


# --------------------------------------------------------------------------------------------
# contract


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_shape_dtype_and_range(channels):
    image = torch.rand(2, channels, 20, 24, dtype=torch.float16)
    heavy = dataclasses.replace(dg.RESTORE, second_order_probability=1.0, noise_sigma=(30.0, 30.0),
                                colour_probability=1.0, exposure_gain=(4.0, 4.0))
    out = dg.degrade(image, heavy, seed=9)
    assert out.shape == image.shape and out.dtype == torch.float32 and out.device == image.device
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    if channels == 4:
        assert torch.equal(out[:, 3], image[:, 3].float())  # alpha passes through


def test_progress_is_called_per_item():
    calls = []
    dg.degrade(_photo(batch=3), dg.ENHANCE, 0, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"blur_sigma": (3.0, 1.0)}, r"blur_sigma range must have low <= high, got \(3.0, 1.0\)"),
        ({"noise_sigma": (1.0, 100.0)}, r"noise_sigma range must lie within \[0, 50\], got \(1.0, 100.0\)"),
        ({"jpeg_quality": (0, 50)}, r"jpeg_quality range must lie within \[1, 100\], got \(0, 50\)"),
        ({"jpeg_quality": (30.5, 50)}, r"jpeg_quality must be a pair of integers"),
        ({"noise_probability": 1.5}, r"noise_probability must lie in \[0, 1\], got 1.5"),
        ({"blur_sigma": 2.0}, r"blur_sigma must be a \(low, high\) pair, got 2.0"),
        ({"colour_cast": float("nan")}, r"colour_cast must be a finite number"),
        ({"resize_modes": ("nearest",)}, r"resize_modes must be chosen from .*got \['nearest'\]"),
        ({"resize_modes": ()}, r"resize_modes must be a non-empty tuple"),
    ],
)
def test_bad_configs_give_clear_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        DegradeConfig(**changes)


def test_configs_are_frozen_and_lists_become_tuples():
    config = DegradeConfig(blur_sigma=[1, 2])
    assert config.blur_sigma == (1.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.blur_probability = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (torch.rand(1, 20, 24, 3), r"must have 1 or 3 or 4 channels \(BCHW\), got shape \(1, 20, 24, 3\)"),
        (torch.rand(20, 24, 3), r"must have 4 dimensions \[B, C, H, W\], got shape \(20, 24, 3\)"),
        (torch.rand(1, 3, 8, 8) * 2, r"values must lie in \[0, 1\], got min"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), r"must be a floating point tensor"),
    ],
)
def test_bad_images_give_clear_errors(image, message):
    with pytest.raises(ValueError, match=message):
        dg.degrade(image, dg.RESTORE, 0)


def test_bad_seed_config_and_name_give_clear_errors():
    image = _photo()
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        dg.degrade(image, dg.RESTORE, -1)
    with pytest.raises(ValueError, match="config must be a DegradeConfig, got dict"):
        dg.degrade(image, {"noise_probability": 1.0}, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown fixed degradation 'noise50'; expected one of \['noise15'"):
        dg.apply_fixed(image, "noise50")
    with pytest.raises(ValueError, match=r"quality must lie in \[1, 100\], got 0"):
        dg.jpeg(image, 0)


def test_named_presets_and_a_clear_error_for_others():
    assert dg.preset("restore") is dg.RESTORE and dg.preset("noise15") is dg.FIXED["noise15"]
    assert set(dg.PRESETS) == {"restore", "enhance", *dg.FIXED}
    with pytest.raises(ValueError, match=r"unknown degradation preset 'denoise'; expected one of \['restore', "):
        dg.preset("denoise")
