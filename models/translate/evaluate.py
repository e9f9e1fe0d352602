"""Score image-to-image translators on synthetic pairs made from held-out photos (e.g. colourisation).

Each photo is centre-cropped to a square and resized to ``size`` (`models.metrics.prepare_image`);
that is the target B. A is made from it by a `models.translate.pairs` maker (``colorize``: the luma in three
channels; ``edges2photo``: the edge drawing). A *method* is any function ``method(A) -> B_hat`` on
one item ([1,3,H,W] in [0,1]); every method gets the same inputs. Reported per method, as means over
the images: PSNR and SSIM of B_hat against B (`models.metrics`), and the colour-aware scores
`models.metrics.chroma_psnr` (PSNR of the Cb, Cr planes), `luma_ssim` (SSIM of the luma alone: 1 when
the luminance is the target's) and the colourfulness error |M(B_hat) - M(B)| (Hasler-Süsstrunk M,
0..255 scale; a grey guess scores M(B)), and seconds per image (the call only; each method first
runs once, untimed, on the first image).

The trivial baseline is ``input``: B_hat = A. For colourisation it is the greyscale photo, the bar a
colouriser must clear (PSNR counts every channel, so a grey guess already scores well). Photos that
are grey already (every pixel's channels within `GREY_TOLERANCE` of its luma) are left out of
colourisation scores: there is nothing to colour, and the baseline's PSNR there is unbounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import metrics
from ..metrics import prepare_image
from . import pairs

__all__ = ["GREY_TOLERANCE", "SCORES", "Method", "Row", "evaluate_translation", "format_table", "input_baseline",
           "is_grey", "model_method"]

GREY_TOLERANCE = 2 / 255
SCORES = ("psnr", "ssim", "chroma_psnr", "luma_ssim", "colourfulness_error")
Method = Callable[[Tensor], Tensor]
"""method(A [1,3,H,W] in [0,1]) -> B_hat [1,3,H,W] in [0,1]."""


@dataclass
class Row:
    """One method: means over the images, and every per-image value."""

    method: str
    images: int
    skipped_grey: int
    psnr: float
    ssim: float
    chroma_psnr: float
    luma_ssim: float
    colourfulness_error: float
    seconds_per_image: float
    per_image: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The row as plain JSON-able data (non-finite numbers as the strings "inf" / "nan")."""
        out = asdict(self)
        for key in ("psnr", "ssim", "chroma_psnr", "luma_ssim", "colourfulness_error", "seconds_per_image"):
            if not math.isfinite(out[key]):
                out[key] = str(out[key])
        out["per_image"] = {k: [v if math.isfinite(v) else str(v) for v in vs] for k, vs in out["per_image"].items()}
        return out


def input_baseline(a: Tensor) -> Tensor:
    """The trivial method: return the input unchanged (for colourisation, the greyscale photo)."""
    return a


def model_method(
    model: Any, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
    norm_mode: str = "eval", keep_luminance: bool = False,
) -> Method:
    """A method that runs `models.translate.translate` with a loaded translate model."""
    from . import translate

    def run(a: Tensor) -> Tensor:
        return translate(model, a, device=device, dtype=dtype, norm_mode=norm_mode, keep_luminance=keep_luminance)

    return run


def is_grey(image: Tensor) -> bool:
    """True when every pixel's channels lie within `GREY_TOLERANCE` of its luma ([1, 3, H, W] in [0, 1])."""
    return bool(((image - pairs.luma(image)).abs() <= GREY_TOLERANCE).all())


def evaluate_translation(
    methods: Mapping[str, Method],
    images: Sequence[Tensor],
    kind: str = "colorize",
    size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> list[Row]:
    """Score every method on the synthetic `kind` pairs of `images` ([3,H,W], uint8 or float); one row each.

    For ``colorize`` the photos that are grey already are skipped (counted in `Row.skipped_grey`).
    """
    if not methods:
        raise ValueError("no methods to evaluate")
    if not images:
        raise ValueError("no images to evaluate on")
    if size < 16:
        raise ValueError(f"size must be >= 16 px (SSIM uses an 11x11 window), got {size}")
    targets = [prepare_image(image, size) for image in images]
    skipped = 0
    if kind == "colorize":
        colour = [t for t in targets if not is_grey(t)]
        skipped = len(targets) - len(colour)
        if not colour:
            raise ValueError(f"all {len(targets)} images are grey already: nothing to score colourisation on")
        targets = colour
    inputs, targets = map(list, zip(*(pairs.make_pair(kind, photo) for photo in targets), strict=True))
    total, done, rows = len(methods) * len(targets), 0, []
    for name, method in methods.items():
        method(inputs[0])  # warm-up, untimed
        values: dict[str, list[float]] = {k: [] for k in SCORES + ("seconds",)}
        for a, b in zip(inputs, targets, strict=True):
            start = time.perf_counter()
            out = method(a)
            values["seconds"].append(time.perf_counter() - start)
            if not isinstance(out, Tensor) or out.shape != b.shape:
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"method {name!r} returned {got} for a target of shape {tuple(b.shape)}")
            out = out.float().to(b.device)
            values["psnr"].append(float(metrics.psnr(out, b)[0]))
            values["ssim"].append(float(metrics.ssim(out, b)[0]))
            values["chroma_psnr"].append(float(metrics.chroma_psnr(out, b)[0]))
            values["luma_ssim"].append(float(metrics.luma_ssim(out, b)[0]))
            colourfulness_error = (metrics.colourfulness(out) - metrics.colourfulness(b)).abs()
            values["colourfulness_error"].append(float(colourfulness_error[0]))
            done += 1
            if progress is not None:
                progress(done, total)
        means = {k: float(np.mean(values[k])) for k in SCORES}
        rows.append(Row(method=name, images=len(targets), skipped_grey=skipped, **means,
                        seconds_per_image=float(np.mean(values["seconds"])), per_image=values))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table (one line per method)."""
    lines = ["| method | images | PSNR dB ↑ | SSIM ↑ | chroma PSNR dB ↑ | luma SSIM ↑ | colourfulness error ↓ "
             "| PSNR wins vs input | s / image |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    baseline = next((r for r in rows if r.method == "input"), None)
    for r in rows:
        wins = "-"
        if baseline is not None and r is not baseline:
            wins = f"{sum(a > b for a, b in zip(r.per_image['psnr'], baseline.per_image['psnr'], strict=True))}"
            wins += f" / {r.images}"
        lines.append(f"| {r.method} | {r.images} | {r.psnr:.2f} | {r.ssim:.4f} | {r.chroma_psnr:.2f} | "
                     f"{r.luma_ssim:.4f} | {r.colourfulness_error:.2f} | {wins} | {r.seconds_per_image:.4f} |")
    return "\n".join(lines)
