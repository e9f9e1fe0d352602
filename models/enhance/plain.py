"""Plain, independent degradations for evaluation: 8-bit images in, 8-bit images out.

`models.enhance.degrade` makes the training pairs, so scoring a model only on its output would let a
quirk of that code (a noise scale, a colour conversion) flatter the model that learnt it. These are
written separately and as plainly as possible, on uint8 RGB arrays [H, W, 3] with numpy and Pillow,
each result rounded back to 8 bits as a saved photo would be:

* ``clean``: the photo itself (a restorer must pass it through);
* ``noiseN``: Gaussian noise of standard deviation N on the 0..255 scale, drawn per channel, added and
  clipped; ``noise15-luma``: the same noise on all three channels (sensor luma noise);
* ``blur1.5+noise5``: Gaussian blur of sigma 1.5 px (separable, mirrored borders) then noise 5;
* ``jpegQ``: a JPEG round trip through Pillow at quality Q (4:2:0 chroma, Pillow's default);
* ``lowlight``: values times 0.5, then raised to the power 1.2 (one stop under, slightly crushed);
* ``lowcontrast``: contrast 60 % around the mean luminance and saturation 80 % (a flat, hazy look);
* ``colourcast``: channel gains (1.12, 1.0, 0.85), a warm cast.

Only the noise depends on the seed.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image
from torch import Tensor

from .. import layout

LUMA = np.array([0.299, 0.587, 0.114])


def _round(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _noise(sigma: float, *, luma: bool = False) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def apply(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        shape = image.shape[:2] + ((1,) if luma else (3,))
        return _round(image + rng.normal(0.0, sigma, shape))

    return apply


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a float [H, W, 3] array; kernel radius 3 sigma, mirrored borders."""
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = image.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        length = out.shape[axis]
        out = sum(w * np.take(padded, range(i, i + length), axis=axis) for i, w in enumerate(taps))
    return out


def _blur_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _noise(5.0)(_round(gaussian_blur(image, 1.5)), rng)


def _jpeg(quality: int) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def apply(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()

    return apply


def _low_light(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _round(255.0 * (0.5 * image / 255.0) ** 1.2)


def _low_contrast(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    values = image.astype(np.float64)
    luma = values @ LUMA
    flat = luma[..., None] + 0.8 * (values - luma[..., None])  # saturation 80 %
    return _round(luma.mean() + 0.6 * (flat - luma.mean()))  # contrast 60 %


def _colour_cast(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _round(image * np.array([1.12, 1.0, 0.85]))


DEGRADATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "clean": lambda image, rng: image.copy(),
    "noise5": _noise(5.0),
    "noise15": _noise(15.0),
    "noise25": _noise(25.0),
    "noise15-luma": _noise(15.0, luma=True),
    "blur1.5+noise5": _blur_noise,
    "jpeg20": _jpeg(20),
    "jpeg50": _jpeg(50),
    "lowlight": _low_light,
    "lowcontrast": _low_contrast,
    "colourcast": _colour_cast,
}


def apply(image: Tensor, name: str, seed: int = 0) -> Tensor:
    """Degrade `image` [1, 3, H, W] in [0, 1] (rounded to 8 bits first) with ``DEGRADATIONS[name]``."""
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown plain degradation {name!r}; expected one of {list(DEGRADATIONS)}")
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"expected one RGB image [1, 3, H, W], got shape {tuple(image.shape)}")
    return layout.from_u8(DEGRADATIONS[name](layout.to_u8(image), np.random.default_rng(seed)))
