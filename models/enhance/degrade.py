"""Seeded, deterministic image degradations, shared by training, evaluation and the Degrade Image node.

Tensor contract (see DESIGN.md): images are BCHW float in [0, 1] with 1, 3 or 4 channels; a 4th
(alpha) channel passes through unchanged. The output is always float32, the input's shape and
device, clamped to [0, 1].

The recipe follows Real-ESRGAN's synthetic degradations (Wang et al. 2021, "Training Real-World
Blind Super-Resolution with Pure Synthetic Data") in spirit, at constant image size, and adds the
photographic faults an enhancement model should undo. Per item, in this order:

1. colour (``colour_probability``): a colour cast (per-channel gains), exposure (gain and gamma,
   ``adjust_gamma``), lowered contrast and saturation (``adjust_contrast`` / ``adjust_saturation``);
2. blur (``blur_probability``): an isotropic or (``anisotropic_probability``) anisotropic Gaussian
   kernel with a random rotation; the kernel is truncated at 3 sigma (or at the image size);
3. resize (``resize_probability``): down by a random scale, then back to the original size, each
   way with a random mode from ``resize_modes`` (bilinear, bicubic, area);
4. noise (``noise_probability``): Gaussian (sigma on the 0..255 scale) or, with
   ``poisson_probability``, Poisson (shot noise at 255 photons per unit of value, times a scale);
   either is grey (the same for every channel) with ``grey_noise_probability``;
5. JPEG (``jpeg_probability``): a real encode/decode with torchvision at a random quality, on the
   image rounded to 8 bits;
6. second order (``second_order_probability``): steps 2-5 once more with fresh draws, Real-ESRGAN's
   "high-order" degradation.

Before all of them, with ``clean_probability``, an item is left exactly as it is: a blind restorer must
see good photos too, or it learns to change every photo it is given.

Every random range ``(low, high)`` is drawn uniformly (JPEG quality: uniform integer, both ends
included); ``(v, v)`` fixes the value. The ranges each field accepts are in ``LIMITS``; the
defaults of ``DegradeConfig`` are the typical ranges, with every step switched off (probability 0).

Seeding: item ``i`` of a batch uses ``np.random.SeedSequence([seed, i])``, spawned into one child
stream per step, so the same image, config and seed give the same result on any machine, item ``i``
does not depend on the batch size, and switching a step on or off does not change what the other
steps draw. Noise is drawn on the CPU with a ``torch.Generator`` seeded from the step's stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torchvision.io import decode_jpeg, encode_jpeg

from .. import memory
from ..layout import validate_image

__all__ = [
    "ENHANCE",
    "FIXED",
    "LIMITS",
    "PRESETS",
    "RESIZE_MODES",
    "RESTORE",
    "DegradeConfig",
    "anisotropic_gaussian_kernel",
    "apply_fixed",
    "custom_config",
    "degrade",
    "jpeg",
    "preset",
]

#: Resize modes, as in Real-ESRGAN (``torch.nn.functional.interpolate`` names).
RESIZE_MODES: tuple[str, ...] = ("bilinear", "bicubic", "area")

#: Accepted bounds of every ranged field of ``DegradeConfig`` (both ends inclusive). The probability
#: fields accept [0, 1].
LIMITS: dict[str, tuple[float, float]] = {
    "colour_cast": (0.0, 0.5),  # max deviation of a channel gain from 1
    "exposure_gain": (0.1, 4.0),  # multiplies the values (<1 darker)
    "gamma": (0.25, 4.0),  # value ** gamma (>1 darker mid-tones)
    "contrast": (0.0, 1.0),  # adjust_contrast factor: 1 unchanged, 0 flat grey
    "saturation": (0.0, 1.0),  # adjust_saturation factor: 1 unchanged, 0 grey
    "blur_sigma": (0.1, 5.0),  # pixels
    "resize_scale": (0.1, 1.0),  # side length factor of the intermediate size
    "noise_sigma": (0.0, 50.0),  # Gaussian sigma on the 0..255 scale
    "poisson_scale": (0.0, 5.0),  # multiplies the Poisson noise
    "jpeg_quality": (1, 100),  # torchvision encode_jpeg quality
}

_PROBABILITIES = (
    "colour_probability",
    "colour_factor_probability",
    "blur_probability",
    "anisotropic_probability",
    "resize_probability",
    "noise_probability",
    "poisson_probability",
    "grey_noise_probability",
    "jpeg_probability",
    "second_order_probability",
    "clean_probability",
)
# One independent random stream per step (see the module docstring); the order is fixed forever.
# (SeedSequence.spawn gives child i the same stream whatever the count, so appending keeps the others.)
_STEPS = ("colour", "blur", "resize", "noise", "jpeg", "second", "blur2", "resize2", "noise2", "jpeg2", "clean")
# Poisson noise: a value v becomes Poisson(v * _PHOTONS) / _PHOTONS (Real-ESRGAN uses 2^ceil(log2(#unique values)),
# 256 for most photos).
_PHOTONS = 255.0


@dataclass(frozen=True)
class DegradeConfig:
    """What ``degrade`` may do, and how strongly. Ranges are ``(low, high)``; accepted bounds in ``LIMITS``.

    Typical ranges (the defaults) follow Real-ESRGAN: blur sigma 0.2-3, Gaussian noise sigma 1-30,
    Poisson scale 0.05-3, grey noise 40 % of the time, JPEG quality 30-95. Every step is off until
    its probability is raised; the presets ``RESTORE`` and ``ENHANCE`` switch them on.
    """

    # colour and exposure (step 1)
    colour_probability: float = 0.0
    colour_cast: float = 0.0  # each RGB channel gain uniform in [1 - c, 1 + c]
    exposure_gain: tuple[float, float] = (1.0, 1.0)
    gamma: tuple[float, float] = (1.0, 1.0)
    contrast: tuple[float, float] = (1.0, 1.0)
    saturation: tuple[float, float] = (1.0, 1.0)
    # < 1: each of cast, exposure (gain and gamma together), contrast and saturation is applied only with this
    # probability, so single faults are seen as well as mixtures (1: all of them, every time)
    colour_factor_probability: float = 1.0
    # blur (step 2)
    blur_probability: float = 0.0
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    anisotropic_probability: float = 0.5  # else isotropic; anisotropic draws both sigmas and an angle
    # resize down and back up (step 3)
    resize_probability: float = 0.0
    resize_scale: tuple[float, float] = (0.5, 1.0)
    resize_modes: tuple[str, ...] = RESIZE_MODES
    # noise (step 4)
    noise_probability: float = 0.0
    noise_sigma: tuple[float, float] = (1.0, 30.0)
    poisson_probability: float = 0.5  # else Gaussian
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    grey_noise_probability: float = 0.4
    # JPEG (step 5)
    jpeg_probability: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 95)
    # steps 2-5 once more (step 6)
    second_order_probability: float = 0.0
    # leave the item untouched (decided before every step)
    clean_probability: float = 0.0

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            _check_probability(name, getattr(self, name))
        cast_lo, cast_hi = LIMITS["colour_cast"]
        _check_number("colour_cast", self.colour_cast, cast_lo, cast_hi)
        for name in ("exposure_gain", "gamma", "contrast", "saturation", "blur_sigma", "resize_scale",
                     "noise_sigma", "poisson_scale"):
            object.__setattr__(self, name, _check_range(name, getattr(self, name), *LIMITS[name]))
        object.__setattr__(self, "jpeg_quality", _check_range("jpeg_quality", self.jpeg_quality,
                                                              *LIMITS["jpeg_quality"], integers=True))
        modes = self.resize_modes
        if isinstance(modes, str) or not isinstance(modes, tuple | list) or not modes:
            raise ValueError(f"resize_modes must be a non-empty tuple of {RESIZE_MODES}, got {modes!r}")
        bad = [m for m in modes if m not in RESIZE_MODES]
        if bad:
            raise ValueError(f"resize_modes must be chosen from {RESIZE_MODES}, got {bad}")
        object.__setattr__(self, "resize_modes", tuple(modes))


# --------------------------------------------------------------------------------------------
# validation


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _check_number(name: str, value: Any, lo: float, hi: float) -> float:
    if not _is_real(value) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}], got {float(value):g}")
    return float(value)


def _check_probability(name: str, value: Any) -> float:
    return _check_number(name, value, 0.0, 1.0)


def _check_range(name: str, value: Any, lo: float, hi: float, *, integers: bool = False) -> tuple[Any, Any]:
    if isinstance(value, str) or not isinstance(value, tuple | list) or len(value) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
    low, high = value
    kind = "integers" if integers else "finite numbers"
    ok = (lambda v: isinstance(v, int | np.integer) and not isinstance(v, bool)) if integers else _is_real
    if not (ok(low) and ok(high)) or not (math.isfinite(float(low)) and math.isfinite(float(high))):
        raise ValueError(f"{name} must be a pair of {kind}, got {value!r}")
    if low < lo or high > hi:
        raise ValueError(f"{name} range must lie within [{lo:g}, {hi:g}], got {tuple(value)}")
    if low > high:
        raise ValueError(f"{name} range must have low <= high, got {tuple(value)}")
    return (int(low), int(high)) if integers else (float(low), float(high))


def _check_seed(seed: Any) -> int:
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


# --------------------------------------------------------------------------------------------
# presets


def custom_config(
    blur_sigma_max: float = 0.0,
    noise_sigma_max: float = 0.0,
    jpeg_quality_min: int = 100,
    resize_scale_min: float = 1.0,
    colour_strength: float = 0.0,
) -> DegradeConfig:
    """A config from five strengths (the Degrade Image node's "custom" preset); each neutral value turns its step off.

    - ``blur_sigma_max`` in [0, 5]: blur with sigma uniform in [min(0.2, max), max]; 0 = no blur.
    - ``noise_sigma_max`` in [0, 50]: Gaussian noise, sigma uniform in [min(1, max), max] (0..255); 0 = none.
    - ``jpeg_quality_min`` in [1, 100]: JPEG at quality uniform in [min, max(min, 95)]; 100 = no JPEG.
    - ``resize_scale_min`` in [0.1, 1]: resize down by a scale uniform in [min, 1] and back; 1 = none.
    - ``colour_strength`` in [0, 1]: colour cast, exposure, contrast and saturation; 1 = ``ENHANCE``, 0 = none.
    """
    blur = _check_number("blur_sigma_max", blur_sigma_max, 0.0, LIMITS["blur_sigma"][1])
    noise = _check_number("noise_sigma_max", noise_sigma_max, 0.0, LIMITS["noise_sigma"][1])
    if isinstance(jpeg_quality_min, bool) or not isinstance(jpeg_quality_min, int | np.integer):
        raise ValueError(f"jpeg_quality_min must be an integer, got {jpeg_quality_min!r}")
    quality = int(_check_number("jpeg_quality_min", jpeg_quality_min, *LIMITS["jpeg_quality"]))
    scale = _check_number("resize_scale_min", resize_scale_min, *LIMITS["resize_scale"])
    strength = _check_number("colour_strength", colour_strength, 0.0, 1.0)
    if 0.0 < blur < LIMITS["blur_sigma"][0]:
        raise ValueError(f"blur_sigma_max must be 0 (off) or >= {LIMITS['blur_sigma'][0]:g}, got {blur:g}")
    return DegradeConfig(
        **_colour_fields(strength),
        blur_probability=1.0 if blur > 0 else 0.0,
        blur_sigma=(min(0.2, blur), blur) if blur > 0 else (0.2, 3.0),
        resize_probability=1.0 if scale < 1.0 else 0.0,
        resize_scale=(scale, 1.0),
        noise_probability=1.0 if noise > 0 else 0.0,
        noise_sigma=(min(1.0, noise), noise),
        poisson_probability=0.0,
        jpeg_probability=1.0 if quality < 100 else 0.0,
        jpeg_quality=(quality, max(quality, 95)),
    )


def _colour_fields(strength: float) -> dict[str, Any]:
    """The colour step at ``strength`` in [0, 1] (1 = ``ENHANCE``'s ranges, 0 = off)."""
    s = strength
    return {
        "colour_probability": 1.0 if s > 0 else 0.0,
        "colour_cast": 0.15 * s,
        "exposure_gain": (1.0 - 0.5 * s, 1.0 + 0.3 * s),
        "gamma": (1.0 - 0.3 * s, 1.0 + 0.6 * s),
        "contrast": (1.0 - 0.5 * s, 1.0),
        "saturation": (1.0 - 0.6 * s, 1.0),
    }


#: Restoration training pairs: blur, resize, noise and JPEG in Real-ESRGAN's ranges, except JPEG quality
#: from 15 (Real-ESRGAN: 30) so the quality-20 evaluation lies inside the training range. Each step is
#: switched on only part of the time, so single faults (noise alone, JPEG alone) are seen as often as
#: mixtures; a second order 10 % of the time.
RESTORE = DegradeConfig(
    blur_probability=0.5,
    resize_probability=0.3,
    noise_probability=0.75,
    jpeg_probability=0.5,
    jpeg_quality=(15, 95),
    second_order_probability=0.1,
)

#: Enhancement training pairs: colour cast up to +-15 % per channel, gain 0.5-1.3, gamma 0.7-1.6,
#: contrast and saturation lowered to 50 % and 40 % at most.
ENHANCE = DegradeConfig(**_colour_fields(1.0))

#: Fixed degradations for evaluation (only the noise depends on the seed): Gaussian colour noise of
#: sigma 15 and 25 (0..255), isotropic blur sigma 1.5 then noise sigma 5, JPEG quality 20, and one
#: stop under (values halved, gamma 1.2: a dark, slightly crushed exposure), and low contrast
#: (contrast 60 %, saturation 80 %: a flat, hazy look).
FIXED: dict[str, DegradeConfig] = {
    "noise15": DegradeConfig(noise_probability=1.0, noise_sigma=(15.0, 15.0), poisson_probability=0.0,
                             grey_noise_probability=0.0),
    "noise25": DegradeConfig(noise_probability=1.0, noise_sigma=(25.0, 25.0), poisson_probability=0.0,
                             grey_noise_probability=0.0),
    "blur1.5+noise5": DegradeConfig(blur_probability=1.0, blur_sigma=(1.5, 1.5), anisotropic_probability=0.0,
                                    noise_probability=1.0, noise_sigma=(5.0, 5.0), poisson_probability=0.0,
                                    grey_noise_probability=0.0),
    "jpeg20": DegradeConfig(jpeg_probability=1.0, jpeg_quality=(20, 20)),
    "underexposed": DegradeConfig(colour_probability=1.0, exposure_gain=(0.5, 0.5), gamma=(1.2, 1.2)),
    "lowcontrast": DegradeConfig(colour_probability=1.0, contrast=(0.6, 0.6), saturation=(0.8, 0.8)),
}

#: Every named degradation mix: the training presets and the fixed evaluation set.
PRESETS: dict[str, DegradeConfig] = {"restore": RESTORE, "enhance": ENHANCE, **FIXED}


def preset(name: str) -> DegradeConfig:
    """The named mix of `PRESETS`; a clear error for any other name."""
    if name not in PRESETS:
        raise ValueError(f"unknown degradation preset {name!r}; expected one of {list(PRESETS)}")
    return PRESETS[name]


def colour_only(config: DegradeConfig) -> DegradeConfig:
    """`config` with every step but the colour fault switched off. Each step draws from its own stream,
    so with the same seed an item gets exactly the colour fault (or none) that `config` gives it."""
    off = {f"{step}_probability": 0.0 for step in (*_STEP_FUNCTIONS, "second_order")}
    return replace(config, **off)


# --------------------------------------------------------------------------------------------
# the steps (one item [1, C, H, W], C in 1 or 3)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return lo if lo == hi else float(rng.uniform(lo, hi))


def _torch_generator(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))


def _colour(image: Tensor, config: DegradeConfig, rng: np.random.Generator) -> Tensor:
    channels = image.shape[1]
    gains = [1.0 + _uniform(rng, (-config.colour_cast, config.colour_cast)) for _ in range(3)]
    gain, gamma = _uniform(rng, config.exposure_gain), _uniform(rng, config.gamma)
    contrast, saturation = _uniform(rng, config.contrast), _uniform(rng, config.saturation)
    if config.colour_factor_probability < 1:  # drawn after the values, so those stay put whatever this is
        cast, exposure, flat, pale = rng.random(4) < config.colour_factor_probability
        gains = gains if cast else [1.0, 1.0, 1.0]
        gain, gamma = (gain, gamma) if exposure else (1.0, 1.0)
        contrast, saturation = contrast if flat else 1.0, saturation if pale else 1.0
    if channels == 3 and config.colour_cast > 0:
        image = (image * torch.tensor(gains, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)).clamp(0, 1)
    image = TF.adjust_gamma(image, gamma, gain)  # gain * image ** gamma, clamped
    image = TF.adjust_contrast(image, contrast)
    if channels == 3:
        image = TF.adjust_saturation(image, saturation)
    return image


def anisotropic_gaussian_kernel(sigma_x: float, sigma_y: float, angle: float, size: int) -> Tensor:
    """A normalised ``size x size`` Gaussian kernel with sigmas along its own axes, rotated by ``angle`` radians.

    Covariance ``R diag(sigma_x^2, sigma_y^2) R^T`` with ``R`` the rotation by ``angle``; ``size`` is odd.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {size}")
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"kernel sigmas must be > 0, got ({sigma_x:g}, {sigma_y:g})")
    c, s = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    covariance = rotation @ torch.diag(torch.tensor([sigma_x**2, sigma_y**2], dtype=torch.float64)) @ rotation.T
    radius = size // 2
    ax = torch.arange(-radius, radius + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    points = torch.stack([xx, yy], dim=-1)  # (x, y) per tap
    exponent = torch.einsum("...i,ij,...j->...", points, torch.linalg.inv(covariance), points)
    kernel = torch.exp(-0.5 * exponent)
    return (kernel / kernel.sum()).float()


def _kernel_size(sigma: float, height: int, width: int) -> int:
    """Odd size covering +-3 sigma, no larger than reflection padding allows (radius < image side)."""
    size = 2 * math.ceil(3.0 * sigma) + 1
    largest = 2 * (min(height, width) - 1) + 1
    return max(1, min(size, largest))


def _blur(image: Tensor, config: DegradeConfig, rng: np.random.Generator) -> Tensor:
    height, width = image.shape[-2:]
    if rng.random() < config.anisotropic_probability:
        sigma_x, sigma_y = _uniform(rng, config.blur_sigma), _uniform(rng, config.blur_sigma)
        angle = float(rng.uniform(0.0, math.pi))
        size = _kernel_size(max(sigma_x, sigma_y), height, width)
        if size == 1:
            return image
        # torchvision's gaussian_blur is separable (axis-aligned only): a rotated kernel needs a 2-D convolution.
        kernel = anisotropic_gaussian_kernel(sigma_x, sigma_y, angle, size).to(image.device, image.dtype)
        channels, radius = image.shape[1], size // 2
        padded = F.pad(image, (radius, radius, radius, radius), mode="reflect")
        return F.conv2d(padded, kernel.expand(channels, 1, size, size), groups=channels)
    sigma = _uniform(rng, config.blur_sigma)
    size = _kernel_size(sigma, height, width)
    return image if size == 1 else TF.gaussian_blur(image, [size, size], [sigma, sigma])


def _resize_to(image: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    if mode == "area":  # torchvision has no area mode; it is what F.interpolate calls adaptive average pooling
        return F.interpolate(image, size=size, mode="area")
    interpolation = TF.InterpolationMode.BILINEAR if mode == "bilinear" else TF.InterpolationMode.BICUBIC
    return TF.resize(image, list(size), interpolation=interpolation, antialias=True).clamp(0, 1)


def _resize(image: Tensor, config: DegradeConfig, rng: np.random.Generator) -> Tensor:
    height, width = image.shape[-2:]
    scale = _uniform(rng, config.resize_scale)
    down_mode = config.resize_modes[int(rng.integers(len(config.resize_modes)))]
    up_mode = config.resize_modes[int(rng.integers(len(config.resize_modes)))]
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    if small == (height, width):
        return image
    return _resize_to(_resize_to(image, small, down_mode), (height, width), up_mode)


def _noise(image: Tensor, config: DegradeConfig, rng: np.random.Generator) -> Tensor:
    poisson = rng.random() < config.poisson_probability
    grey = rng.random() < config.grey_noise_probability
    generator = _torch_generator(rng)
    channels = image.shape[1]
    cpu = image.detach().to("cpu", torch.float32)
    if poisson:
        scale = _uniform(rng, config.poisson_scale)
        source = TF.rgb_to_grayscale(cpu) if grey and channels == 3 else cpu
        noise = (torch.poisson(source * _PHOTONS, generator=generator) / _PHOTONS - source) * scale
    else:
        sigma = _uniform(rng, config.noise_sigma) / 255.0
        shape = (1, 1 if grey else channels, *image.shape[-2:])
        noise = torch.randn(shape, generator=generator) * sigma
    return (image + noise.to(image.device, image.dtype)).clamp(0, 1)


def jpeg(image: Tensor, quality: int) -> Tensor:
    """Real JPEG artefacts: round ``image`` [B, C, H, W] (C = 1 or 3) to 8 bits, encode at ``quality``, decode."""
    validate_image(image, channels=(1, 3))
    quality = int(_check_number("quality", quality, *LIMITS["jpeg_quality"]))
    as_bytes = (image.detach().float() * 255.0).round().clamp(0, 255).to("cpu", torch.uint8)
    decoded = [decode_jpeg(encode_jpeg(item, quality=quality)) for item in as_bytes]
    return torch.stack(decoded).to(image.device, torch.float32) / 255.0


def _jpeg(image: Tensor, config: DegradeConfig, rng: np.random.Generator) -> Tensor:
    lo, hi = config.jpeg_quality
    return jpeg(image, int(rng.integers(lo, hi + 1)))


_STEP_FUNCTIONS: dict[str, Callable[[Tensor, DegradeConfig, np.random.Generator], Tensor]] = {
    "blur": _blur,
    "resize": _resize,
    "noise": _noise,
    "jpeg": _jpeg,
}


def _degrade_item(image: Tensor, config: DegradeConfig, seed: int, item: int) -> Tensor:
    streams = np.random.SeedSequence([seed, item]).spawn(len(_STEPS))
    rngs = {name: np.random.default_rng(stream) for name, stream in zip(_STEPS, streams, strict=True)}
    if rngs["clean"].random() < config.clean_probability:
        return image
    # Each step first decides whether it runs (from its own stream), so the decisions stay put when
    # probabilities of other steps change.
    if rngs["colour"].random() < config.colour_probability:
        image = _colour(image, config, rngs["colour"])
    passes = [""]
    if rngs["second"].random() < config.second_order_probability:
        passes.append("2")
    for suffix in passes:
        for step, function in _STEP_FUNCTIONS.items():
            rng = rngs[step + suffix]
            if rng.random() < getattr(config, f"{step}_probability"):
                image = function(image, config, rng).clamp(0, 1)
    return image


def degrade(
    image: Tensor,
    config: DegradeConfig,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Degrade each item of ``image`` [B, C, H, W] in [0, 1] (C = 1, 3 or 4) with ``config``.

    Item ``i`` is seeded with ``SeedSequence([seed, i])``; the result is float32, on the input's
    device, in [0, 1], with the input's shape; an alpha channel is returned unchanged.
    ``progress(done, total)`` is called after each item.
    """
    validate_image(image, channels=(1, 3, 4))
    if not isinstance(config, DegradeConfig):
        raise ValueError(f"config must be a DegradeConfig, got {type(config).__name__}")
    seed = _check_seed(seed)
    batch, channels, height, width = image.shape
    # the per-item results, their concatenation and the clamped copy, plus one item's intermediates
    memory.require(4 * (4 * image.numel() + 12 * channels * height * width),
                   f"degrading {batch} image(s) of {width}x{height}", "lower the batch or the size")
    image = image.detach().float()
    colour, alpha = (image[:, :3], image[:, 3:]) if image.shape[1] == 4 else (image, None)
    total = image.shape[0]
    out = []
    for item in range(total):
        out.append(_degrade_item(colour[item : item + 1], config, seed, item))
        if progress is not None:
            progress(item + 1, total)
    result = torch.cat(out).clamp(0, 1)
    if alpha is not None:
        result = torch.cat([result, alpha], dim=1)
    return result.contiguous()


def apply_fixed(image: Tensor, name: str, seed: int = 0) -> Tensor:
    """Apply the fixed evaluation degradation ``FIXED[name]`` (see ``FIXED``) with ``seed``."""
    if name not in FIXED:
        raise ValueError(f"unknown fixed degradation {name!r}; expected one of {list(FIXED)}")
    return degrade(image, FIXED[name], seed)

