"""Score restoration and enhancement on held-out photos for the fixed degradations of `models.enhance.degrade`.

Every image is centre-cropped to a square and resized to ``size`` (`models.metrics.prepare_image`),
then degraded with each ``FIXED`` degradation (item i seeded with i, so every method sees the same
inputs). A *restorer* is a function ``restore(degraded [1,3,H,W]) -> image`` in [0, 1]; each row
reports, per (degradation, method), the mean PSNR and SSIM against the clean image and seconds per
image. The untouched degraded input is always a row: a method below it made things worse.

Classical baselines (OpenCV, a test extra, imported lazily) with one free parameter each: non-local
means (``h``), bilateral filter (``sigmaColor``), unsharp mask (``amount``), CLAHE on the L channel of
Lab (``clipLimit``), and per-channel auto-contrast (a percentile stretch, no parameter). Each takes
the value of its grid that scores best (mean PSNR) on the very images and degradation being
scored: an oracle choice that flatters the baselines, which a learned model does not get.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import metrics
from ..metrics import prepare_image
from . import degrade

Restorer = Callable[[Tensor], Tensor]
"""restore(degraded image [1,3,H,W] in [0,1]) -> restored image [1,3,H,W] in [0,1]."""

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise RuntimeError(f"the classical baselines need OpenCV ({exc}); install it: {_INSTALL_HINT}") from exc
    return cv2


def _to_u8(image: Tensor) -> np.ndarray:
    return (image[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def _from_u8(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float() / 255.0


def _rgb_u8(function: Callable[[np.ndarray], np.ndarray]) -> Restorer:
    """A restorer from a uint8 RGB [H,W,3] -> uint8 RGB function."""
    return lambda image: _from_u8(function(_to_u8(image)))


def classical_grids() -> dict[str, dict[str, Restorer]]:
    """Method -> {parameter label -> restorer}: the classical baselines and the grid each is tuned over."""
    cv2 = _import_cv2()

    def nl_means(h: float) -> Restorer:
        return _rgb_u8(lambda a: cv2.fastNlMeansDenoisingColored(a, None, h, h, 7, 21))

    def bilateral(sigma: float) -> Restorer:
        return _rgb_u8(lambda a: cv2.bilateralFilter(a, 9, sigma, 5))

    def unsharp(amount: float) -> Restorer:
        def sharpen(image: Tensor) -> Tensor:
            blurred = _from_u8(cv2.GaussianBlur(_to_u8(image), (0, 0), 1.5))
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
    }


def auto_contrast(image: Tensor, low: float = 0.005, high: float = 0.995) -> Tensor:
    """Stretch each channel so its `low`..`high` quantiles span 0..1 (also removes a colour cast)."""
    flat = image.flatten(2)
    lo = flat.quantile(low, dim=2)[..., None, None]
    hi = flat.quantile(high, dim=2)[..., None, None]
    return ((image - lo) / (hi - lo).clamp(min=1e-3)).clamp(0, 1)


def _score(restorer: Restorer, cleans: Sequence[Tensor], degraded: Sequence[Tensor]) -> tuple[float, float, float]:
    psnrs, ssims, seconds = [], [], 0.0
    restorer(degraded[0])  # warm-up, untimed
    for clean, bad in zip(cleans, degraded, strict=True):
        start = time.perf_counter()
        out = restorer(bad)
        seconds += time.perf_counter() - start
        out = out.float().clamp(0, 1)
        psnrs.append(float(metrics.psnr(out, clean)))
        ssims.append(float(metrics.ssim(out, clean)))
    n = len(cleans)
    return sum(psnrs) / n, sum(ssims) / n, seconds / n


def evaluate_restoration(
    models: Mapping[str, Restorer],
    images: Sequence[Tensor],
    *,
    degradations: Sequence[str] = tuple(degrade.FIXED),
    size: int = 256,
    classical: Mapping[str, Mapping[str, Restorer]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Rows per degradation: the degraded input, each model, each classical method at its best grid value."""
    unknown = [d for d in degradations if d not in degrade.FIXED]
    if unknown:
        raise ValueError(f"unknown degradations {unknown}; expected some of {list(degrade.FIXED)}")
    if not images:
        raise ValueError("no images to score")
    cleans = [prepare_image(im, size) for im in images]
    rows = []
    for name in degradations:
        degraded = [degrade.apply_fixed(clean, name, seed=i) for i, clean in enumerate(cleans)]
        rows.append(Row(name, "degraded input", len(cleans), *_score(lambda x: x, cleans, degraded)))
        for method, restorer in models.items():
            rows.append(Row(name, method, len(cleans), *_score(restorer, cleans, degraded)))
        for method, grid in (classical or {}).items():
            scored = [(label, *_score(r, cleans, degraded)) for label, r in grid.items()]
            label, psnr, ssim, seconds = max(scored, key=lambda s: s[1])
            rows.append(Row(name, method, len(cleans), psnr, ssim, seconds, label))
        if progress is not None:
            progress(name)
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """Markdown: one line per degradation and method, the best PSNR of each degradation in bold."""
    best = {}
    for r in rows:
        best[r.degradation] = max(best.get(r.degradation, float("-inf")), r.psnr)
    lines = ["| degradation | method | PSNR dB ↑ | SSIM ↑ | s / image | parameter |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        psnr = f"**{r.psnr:.2f}**" if r.psnr == best[r.degradation] else f"{r.psnr:.2f}"
        lines.append(f"| {r.degradation} | {r.method} | {psnr} | {r.ssim:.4f} | {r.seconds_per_image:.4f} | "
                     f"{r.parameter} |")
    return "\n".join(lines)
