"""The loss curves of a run as a picture: each metric of the metrics file as a line over the steps."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from .. import layout

COLOURS = ((230, 80, 60), (60, 140, 230), (90, 180, 90), (200, 160, 40), (160, 90, 200), (40, 170, 170))
SKIPPED = ("step", "time_s", "steps_per_s")


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The rows of a `.metrics.jsonl` file (an empty list when it does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def smooth(values: Sequence[float], window: int) -> list[float]:
    """The running mean over the last `window` finite values (NaN stays NaN)."""
    out, recent = [], []
    for v in values:
        if math.isfinite(v):
            recent = (recent + [v])[-window:]
            out.append(sum(recent) / len(recent))
        else:
            out.append(math.nan)
    return out


def plot(rows: Sequence[dict[str, float]], width: int = 640, height: int = 360) -> Tensor:
    """Every loss of `rows` (not the learning rates) against the step, on one shared scale (so that, e.g.,
    the output's L1 shows below the input's) and smoothed over a twentieth of the rows; the legend gives
    each name with its first and last smoothed value. An image [1, 3, height, width] in [0, 1]."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    keys = [k for k in (rows[0] if rows else {}) if k not in SKIPPED and not k.startswith("lr_")]
    left, top, right, bottom = 10, 10, width - 10, height - 16 - 14 * len(keys)
    draw.rectangle((left, top, right, max(top + 1, bottom)), outline=(180, 180, 180))
    steps = [float(r["step"]) for r in rows]
    if len(rows) < 2 or bottom <= top:
        draw.text((left + 6, top + 6), "not enough steps logged yet", fill=(0, 0, 0))
        return _tensor(image)
    x0, x1 = min(steps), max(steps)
    series = {k: smooth([float(r.get(k, math.nan)) for r in rows], max(1, len(rows) // 20)) for k in keys}
    every = [v for values in series.values() for v in values if math.isfinite(v)]
    lo, hi = (min(every), max(every)) if every else (0.0, 1.0)
    for i, (key, values) in enumerate(series.items()):
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            continue
        points = [(left + (right - left) * (s - x0) / max(1e-9, x1 - x0),
                   bottom - (bottom - top) * ((v - lo) / (hi - lo) if hi > lo else 0.5))
                  for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
        colour = COLOURS[i % len(COLOURS)]
        draw.line(points, fill=colour, width=2)
        draw.text((left, bottom + 4 + 14 * i), f"{key}: {finite[0]:.4g} -> {finite[-1]:.4g} (steps {x0:.0f}-{x1:.0f})",
                  fill=colour)
    return _tensor(image)


def _tensor(image: Image.Image) -> Tensor:
    return layout.from_u8(np.asarray(image))
