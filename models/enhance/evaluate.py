"""Score restoration and enhancement on held-out photos, against the degraded input and classical methods.

Every image is centre-cropped to a square and resized to ``size`` (`models.metrics.prepare_image`;
Lanczos by default, or bilinear, or a native-scale crop), then degraded (item i seeded with i, so
every method sees the same inputs) by one of two degraders: ``plain`` (the default), the independent
8-bit code of `models.enhance.plain`, or ``pack``, the ``FIXED`` degradations of the training code
`models.enhance.degrade`. A *restorer* is a function ``restore(degraded [1,3,H,W]) -> image`` in
[0, 1]; each row reports, per (degradation, method), the mean PSNR and SSIM against the clean image,
the mean ST-LPIPS distance (`models.perceptual`, when its VGG-16 file is installed; lower is better)
and seconds per image. The untouched degraded input is always a row: a method below it made things
worse.

Classical baselines (OpenCV, a test extra, imported lazily) with one free parameter each: non-local
means (``h``), bilateral filter (``sigmaColor``), unsharp mask (``amount``), CLAHE on the L channel of
Lab (``clipLimit``), per-channel auto-contrast (a percentile stretch, no parameter), auto-contrast then
a gamma (``gamma``) and grey-world white balance (no parameter). Each takes
the value of its grid that scores best (mean PSNR) on the very images and degradation being
scored: an oracle choice that flatters the baselines, which a learned model does not get.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from torch import Tensor

from .. import layout, metrics
from ..metrics import prepare_image
from . import degrade, plain

DEGRADERS = ("plain", "pack")

Restorer = Callable[[Tensor], Tensor]
"""restore(degraded image [1,3,H,W] in [0,1]) -> restored image [1,3,H,W] in [0,1]."""
Distance = Callable[[Tensor, Tensor], Tensor]
"""distance(a, b) of images [B,3,H,W] in [0,1] -> [B] (lower is closer)."""

PSNR_CAP = 100.0  # a perfect output (the clean input passed through) scores this, not inf, so means stay finite

_INSTALL_HINT = "pip install opencv-python-headless"


@dataclass
class Row:
    degradation: str
    method: str
    images: int
    psnr: float
    ssim: float
    seconds_per_image: float
    parameter: str = ""  # the grid value a classical method was scored with
    stlpips: float | None = None  # mean ST-LPIPS distance (None: not measured)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise RuntimeError(f"the classical baselines need OpenCV ({exc}); install it: {_INSTALL_HINT}") from exc
    return cv2


def _rgb_u8(function: Callable[[np.ndarray], np.ndarray]) -> Restorer:
    """A restorer from a uint8 RGB [H,W,3] -> uint8 RGB function."""
    return lambda image: layout.from_u8(function(layout.to_u8(image)))


def classical_grids() -> dict[str, dict[str, Restorer]]:
    """Method -> {parameter label -> restorer}: the classical baselines and the grid each is tuned over."""
    cv2 = _import_cv2()

    def nl_means(h: float) -> Restorer:
        return _rgb_u8(lambda a: cv2.fastNlMeansDenoisingColored(a, None, h, h, 7, 21))

    def bilateral(sigma: float) -> Restorer:
        return _rgb_u8(lambda a: cv2.bilateralFilter(a, 9, sigma, 5))

    def unsharp(amount: float) -> Restorer:
        def sharpen(image: Tensor) -> Tensor:
            blurred = layout.from_u8(cv2.GaussianBlur(layout.to_u8(image), (0, 0), 1.5))
            return (image + amount * (image - blurred)).clamp(0, 1)

        return sharpen

    def clahe(clip: float) -> Restorer:
        def equalise(a: np.ndarray) -> np.ndarray:
            lab = cv2.cvtColor(a, cv2.COLOR_RGB2LAB)
            lab[..., 0] = cv2.createCLAHE(clipLimit=clip, tileGridSize=(8, 8)).apply(lab[..., 0])
            return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)

        return _rgb_u8(equalise)

    return {
        "OpenCV NL-means": {f"h={h}": nl_means(h) for h in (3, 5, 8, 12, 16, 22)},
        "bilateral": {f"sigmaColor={s}": bilateral(s) for s in (10, 20, 35, 50, 75)},
        "unsharp mask": {f"amount={a}": unsharp(a) for a in (0.25, 0.5, 1.0, 1.5)},
        "CLAHE": {f"clip={c}": clahe(c) for c in (1.0, 2.0, 3.0)},
        "auto-contrast": {"": auto_contrast},
        "auto-contrast + gamma": {f"gamma={g}": auto_gamma(g) for g in (0.5, 0.6, 0.7, 0.8, 0.9)},
        "grey world": {"": grey_world},
    }


def auto_gamma(gamma: float) -> Restorer:
    """`auto_contrast`, then every value raised to `gamma` (< 1 brightens the mid-tones)."""
    return lambda image: auto_contrast(image).clamp(min=0) ** gamma


def grey_world(image: Tensor) -> Tensor:
    """White balance by the grey-world assumption: scale each channel so its mean is the mean of all three."""
    means = image.mean(dim=(2, 3), keepdim=True).clamp(min=1e-3)
    return (image * means.mean(dim=1, keepdim=True) / means).clamp(0, 1)


def auto_contrast(image: Tensor, low: float = 0.005, high: float = 0.995) -> Tensor:
    """Stretch each channel so its `low`..`high` quantiles span 0..1 (also removes a colour cast)."""
    flat = image.flatten(2)
    lo = flat.quantile(low, dim=2)[..., None, None]
    hi = flat.quantile(high, dim=2)[..., None, None]
    return ((image - lo) / (hi - lo).clamp(min=1e-3)).clamp(0, 1)


@dataclass
class _Scored:
    psnr: float
    ssim: float
    seconds: float
    outputs: list[Tensor]


def _score(restorer: Restorer, cleans: Sequence[Tensor], degraded: Sequence[Tensor]) -> _Scored:
    psnrs, ssims, seconds, outputs = [], [], 0.0, []
    restorer(degraded[0])  # warm-up, untimed
    for clean, bad in zip(cleans, degraded, strict=True):
        start = time.perf_counter()
        out = restorer(bad)
        seconds += time.perf_counter() - start
        out = out.float().clamp(0, 1)
        psnrs.append(min(float(metrics.psnr(out, clean)), PSNR_CAP))
        ssims.append(float(metrics.ssim(out, clean)))
        outputs.append(out)
    n = len(cleans)
    return _Scored(sum(psnrs) / n, sum(ssims) / n, seconds / n, outputs)


def _row(name: str, method: str, cleans: Sequence[Tensor], scored: _Scored, perceptual: Distance | None,
         parameter: str = "") -> Row:
    distance = None
    if perceptual is not None:
        distance = sum(float(perceptual(out, clean)) for out, clean in zip(scored.outputs, cleans, strict=True))
        distance /= len(cleans)
    return Row(name, method, len(cleans), scored.psnr, scored.ssim, scored.seconds, parameter, distance)


def degradations_of(degrader: str) -> tuple[str, ...]:
    """The degradation names of ``plain`` or ``pack``."""
    if degrader not in DEGRADERS:
        raise ValueError(f"degrader must be one of {DEGRADERS}, got {degrader!r}")
    return tuple(plain.DEGRADATIONS) if degrader == "plain" else tuple(degrade.FIXED)


def _degrade(degrader: str, clean: Tensor, name: str, seed: int) -> Tensor:
    return plain.apply(clean, name, seed) if degrader == "plain" else degrade.apply_fixed(clean, name, seed=seed)


def evaluate_restoration(
    models: Mapping[str, Restorer],
    images: Sequence[Tensor],
    *,
    degradations: Sequence[str] | None = None,
    degrader: str = "plain",
    size: int = 256,
    resize: str = "lanczos",
    classical: Mapping[str, Mapping[str, Restorer]] | None = None,
    perceptual: Distance | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Rows per degradation: the degraded input, each model, each classical method at its best grid value
    (by PSNR). `degradations`: names of the `degrader`'s set (None: all of them); `perceptual`: a
    distance(a, b) -> [B] such as `models.perceptual.stlpips`, to fill the ``stlpips`` of the input's
    row, each model's and the best (by PSNR) classical method's."""
    known = degradations_of(degrader)
    degradations = known if degradations is None else tuple(degradations)
    unknown = [d for d in degradations if d not in known]
    if unknown:
        raise ValueError(f"unknown {degrader} degradations {unknown}; expected some of {list(known)}")
    if not images:
        raise ValueError("no images to score")
    cleans = [prepare_image(im, size, resize) for im in images]
    rows = []
    for name in degradations:
        degraded = [_degrade(degrader, clean, name, i) for i, clean in enumerate(cleans)]
        rows.append(_row(name, "degraded input", cleans, _score(lambda x: x, cleans, degraded), perceptual))
        for method, restorer in models.items():
            rows.append(_row(name, method, cleans, _score(restorer, cleans, degraded), perceptual))
        best = {method: max(((label, _score(r, cleans, degraded)) for label, r in grid.items()),
                            key=lambda item: item[1].psnr) for method, grid in (classical or {}).items()}
        winner = max(best, key=lambda method: best[method][1].psnr, default=None)
        for method, (label, scored) in best.items():  # ST-LPIPS costs a VGG-16 pass: the best classical only
            rows.append(_row(name, method, cleans, scored, perceptual if method == winner else None, label))
        if progress is not None:
            progress(name)
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """Markdown: one line per degradation and method, the best PSNR of each degradation in bold."""
    best = {}
    for r in rows:
        best[r.degradation] = max(best.get(r.degradation, float("-inf")), r.psnr)
    lines = ["| degradation | method | PSNR dB ↑ | SSIM ↑ | ST-LPIPS ↓ | s / image | parameter |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        psnr = f"**{r.psnr:.2f}**" if r.psnr == best[r.degradation] else f"{r.psnr:.2f}"
        distance = "" if r.stlpips is None else f"{r.stlpips:.4f}"
        lines.append(f"| {r.degradation} | {r.method} | {psnr} | {r.ssim:.4f} | {distance} | "
                     f"{r.seconds_per_image:.4f} | {r.parameter} |")
    return "\n".join(lines)
