"""Mask generators and mask maths, shared by the ComfyUI nodes and by training.

Tensor contract (see DESIGN.md): images are BCHW float in [0, 1]; masks are B1HW float in [0, 1]
with 1 = hole (the pixels to fill) and 0 = keep.

Generators
    Every generator returns a float32 CPU tensor ``[batch, 1, height, width]`` whose values are
    exactly 0 or 1 (``outpaint_border`` with ``feather > 0`` is the one soft exception).
    Random generators are seeded per batch item with
    ``np.random.default_rng(np.random.SeedSequence([seed, item]))``: the same arguments and seed give
    the same masks on any machine, the items of a batch differ, and item ``i`` does not depend on
    the batch size. All random geometry is drawn in units relative to the image size (fractions of
    the height/width, lengths and widths scaled by ``min(height, width) / 256``), so the same seed
    at 512 px draws the 256 px mask scaled by two, up to rasterisation.
    Shapes are rasterised with PIL ``ImageDraw`` (lines plus discs at the joints: round caps).

Coverage control (``coverage=(lo, hi)`` on the random generators)
    The hole ratio of every item must land in ``[lo, hi]`` (both inclusive, measured on whole
    pixels). Method, per item and with the item's own rng (so it stays deterministic):
    1. draw the generator's ordinary mask;
    2. if its ratio is above ``hi``, throw it away and draw a new one;
    3. while its ratio is below ``lo``, propose one more element (a stroke, or a block for the block
       generators) on a copy: keep it when the ratio stays <= ``hi``, reject it otherwise; after
       ``_MAX_REJECTIONS`` rejections in a row start again at step 1.
    The whole search has a budget of ``_MAX_DRAWS`` drawn elements/masks; when it runs out a
    RuntimeError names the item and the closest ratio reached. A coverage range replaces the
    generator's own stopping rule (``random_blocks``' ``max_coverage``, ``irregular``'s 0.5 cap).
    The accept/reject step biases the shapes slightly towards more, smaller elements for the high
    buckets; the ratio itself is guaranteed.

Mask maths
    ``grow`` uses a Euclidean disc (offsets with dx^2 + dy^2 <= r^2); ``feather`` a truncated
    Gaussian; see their docstrings. Inputs are validated and errors say what was expected and
    what arrived; nothing is silently clamped or fixed.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from . import memory
from .layout import validate_image, validate_mask

__all__ = [
    "COVERAGE_BUCKETS",
    "IRREGULAR_PRESETS",
    "LUMA_WEIGHTS",
    "bbox",
    "binarize",
    "box_in_units",
    "box_mask",
    "center_box",
    "coverage",
    "feather",
    "free_form_strokes",
    "from_alpha",
    "from_color",
    "from_difference",
    "from_luma",
    "grow",
    "irregular",
    "outpaint_border",
    "overlay",
    "random_blocks",
    "refine",
    "resize",
]

#: Hole-ratio buckets of the NVIDIA irregular mask dataset (Liu et al. 2018), inclusive bounds.
COVERAGE_BUCKETS: dict[str, tuple[float, float]] = {
    "1-10%": (0.01, 0.10),
    "10-20%": (0.10, 0.20),
    "20-30%": (0.20, 0.30),
    "30-40%": (0.30, 0.40),
    "40-50%": (0.40, 0.50),
    "50-60%": (0.50, 0.60),
}

#: ITU-R BT.601 luma weights (the ones PIL's ``convert("L")`` and torchvision's
#: ``rgb_to_grayscale`` use), applied to the stored (gamma-encoded) RGB values.
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)

#: LaMa's evaluation mask generators (Suvorov et al. 2022, ``configs/data_gen/random_*_256.yaml``),
#: in pixels at 256 px; every length/width/size is scaled by ``min(height, width) / 256``.
#: Strokes: ``min_times..max_times`` strokes (inclusive); each stroke starts at a uniform random
#: point and has 1..5 segments; a segment has angle ``uniform(0, max_angle)`` radians (mirrored to
#: ``2*pi - angle`` on even strokes), length ``10 + uniform(0, max_len)`` and width
#: ``5 + uniform(0, max_width)``; end points are clipped to the image. LaMa draws these as
#: integers (an integer number of radians, too); we draw them continuously.
#: With probability ``box_probability`` an item is made of boxes instead of strokes: LaMa's
#: ``MixedMaskGenerator`` weights (irregular 1, box 0.3) give 0.3 / 1.3. Boxes:
#: ``box_min_times..box_max_times`` boxes with sides ``uniform(box_min_size, box_max_size)`` placed
#: ``box_margin`` away from the edges. ``max_coverage`` is LaMa's ``max_tamper_area``: items with
#: a larger hole ratio are redrawn. (LaMa's 512 px configs are not exactly these values doubled;
#: we use the 256 px set and scale it linearly.)
IRREGULAR_PRESETS: dict[str, dict[str, float]] = {
    "thin": {
        "min_times": 4, "max_times": 50, "max_width": 10, "max_len": 40, "max_angle": 4,
        "box_probability": 0.0, "box_min_times": 1, "box_max_times": 3,
        "box_min_size": 30, "box_max_size": 100, "box_margin": 10, "max_coverage": 0.5,
    },
    "medium": {
        "min_times": 4, "max_times": 5, "max_width": 50, "max_len": 100, "max_angle": 4,
        "box_probability": 0.3 / 1.3, "box_min_times": 1, "box_max_times": 5,
        "box_min_size": 10, "box_max_size": 50, "box_margin": 0, "max_coverage": 0.5,
    },
    "thick": {
        "min_times": 1, "max_times": 5, "max_width": 100, "max_len": 200, "max_angle": 4,
        "box_probability": 0.3 / 1.3, "box_min_times": 1, "box_max_times": 3,
        "box_min_size": 30, "box_max_size": 150, "box_margin": 10, "max_coverage": 0.5,
    },
}
_STROKE_KEYS = ("min_times", "max_times", "max_width", "max_len", "max_angle")
_BOX_DEFAULTS = {
    "box_probability": 0.0, "box_min_times": 1, "box_max_times": 3,
    "box_min_size": 30, "box_max_size": 100, "box_margin": 10, "max_coverage": 0.5,
}

# Budget of the coverage search (see the module docstring).
_MAX_DRAWS = 2000
_MAX_REJECTIONS = 25
# Feathered values closer than this to 0 or 1 are float rounding of a fully-0/1 neighbourhood.
_FEATHER_SNAP = 1e-6


# --------------------------------------------------------------------------------------------
# validation helpers


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int | None = None) -> int:
    if not _is_int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
                hi_open: bool = False) -> float:
    if not _is_real(value) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    too_low = value <= lo if lo_open else value < lo
    too_high = value >= hi if hi_open else value > hi
    if too_low or too_high:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value:g}")
    return value


def _check_pair(name: str, value: Any) -> tuple[Any, Any]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
    return value[0], value[1]


def _check_int_range(name: str, value: Any, minimum: int) -> tuple[int, int]:
    lo, hi = _check_pair(name, value)
    if not (_is_int(lo) and _is_int(hi)):
        raise ValueError(f"{name} must be a pair of integers, got {value!r}")
    if lo < minimum:
        raise ValueError(f"{name} must lie within [{minimum}, ...], got {tuple(value)}")
    if lo > hi:
        raise ValueError(f"{name} must have low <= high, got {tuple(value)}")
    return int(lo), int(hi)


def _check_real_range(name: str, value: Any, lo_bound: float, hi_bound: float, *,
                      lo_open: bool = False) -> tuple[float, float]:
    lo, hi = _check_pair(name, value)
    if not (_is_real(lo) and _is_real(hi)) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be a pair of finite numbers, got {value!r}")
    bad_lo = lo <= lo_bound if lo_open else lo < lo_bound
    if bad_lo or hi > hi_bound:
        interval = f"{'(' if lo_open else '['}{lo_bound:g}, {hi_bound:g}]"
        raise ValueError(f"{name} range must lie within {interval}, got {tuple(value)}")
    if lo > hi:
        raise ValueError(f"{name} range must have low <= high, got {tuple(value)}")
    return float(lo), float(hi)


GENERATOR_BYTES_PER_PIXEL = 8
"""Peak of a mask generator per pixel of its batch: the uint8 drawing and the float32 result (+ slack)."""


def _check_canvas(height: Any, width: Any, batch: Any) -> tuple[int, int, int]:
    height, width, batch = (_check_int("height", height, 1), _check_int("width", width, 1),
                            _check_int("batch", batch, 1))
    memory.require(height * width * batch * GENERATOR_BYTES_PER_PIXEL, f"{width}x{height}x{batch} masks")
    return height, width, batch


def _check_seed(seed: Any) -> int:
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _check_coverage(value: Any, height: int, width: int) -> tuple[int, int] | None:
    """Validate ``coverage=(lo, hi)`` and turn it into an inclusive range of hole pixel counts."""
    if value is None:
        return None
    lo, hi = _check_real_range("coverage", value, 0.0, 1.0)
    if lo == hi:
        raise ValueError(f"coverage range must have low < high, got {tuple(value)}")
    n = height * width
    lo_count, hi_count = math.ceil(lo * n - 1e-9), math.floor(hi * n + 1e-9)
    if lo_count > hi_count:
        raise ValueError(f"coverage range {tuple(value)} holds no whole pixel count on a "
                         f"{height}x{width} image")
    if hi_count == 0:
        raise ValueError(f"a {height}x{width} image is too small for a hole ratio of at most {hi:g}: not one pixel "
                         "may be a hole (use a larger image or a higher coverage)")
    return lo_count, hi_count


# --------------------------------------------------------------------------------------------
# deterministic boxes


def box_mask(height: int, width: int, batch: int, top: int, left: int, box_height: int,
             box_width: int) -> Tensor:
    """A rectangular hole at (top, left) of size box_height x box_width, in pixels.

    A box partly outside the image is clipped to it; a box entirely outside, or with a size
    <= 0, is an error.
    """
    height, width, batch = _check_canvas(height, width, batch)
    top, left = _check_int("top", top), _check_int("left", left)
    box_height = _check_int("box_height", box_height, 1)
    box_width = _check_int("box_width", box_width, 1)
    y0, y1 = max(top, 0), min(top + box_height, height)
    x0, x1 = max(left, 0), min(left + box_width, width)
    if y0 >= y1 or x0 >= x1:
        raise ValueError(
            f"box (top={top}, left={left}, box_height={box_height}, box_width={box_width}) lies "
            f"entirely outside the {height}x{width} image")
    mask = torch.zeros(batch, 1, height, width, dtype=torch.float32)
    mask[:, :, y0:y1, x0:x1] = 1.0
    return mask


UNITS = ("fraction", "pixels")


def box_in_units(height: int, width: int, batch: int, *, units: str, centered: bool, x: float, y: float,
                 box_width: float, box_height: float) -> Tensor:
    """`box_mask` with position and size as fractions of the canvas or in pixels (the Box Mask node).

    `centered` puts the box in the middle and ignores x, y. A fraction that rounds to 0 px (a small
    fraction of a small image) is an error that says so.
    """
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    height, width, batch = _check_canvas(height, width, batch)
    sx, sy = (width, height) if units == "fraction" else (1, 1)
    bw, bh = round(box_width * sx), round(box_height * sy)
    for name, pixels, value, side, across in (("box_width", bw, box_width, width, "wide"),
                                                ("box_height", bh, box_height, height, "tall")):
        if pixels < 1 and value > 0:
            raise ValueError(
                f"{name} {value:g} of a {side} px {across} image is {value * side:.2f} px, which rounds to 0; a box "
                "needs at least 1 px (use a larger fraction, pixels, or a larger image)"
            )
    left, top = ((width - bw) // 2, (height - bh) // 2) if centered else (round(x * sx), round(y * sy))
    return box_mask(height, width, batch, top, left, bh, bw)


def center_box(height: int, width: int, batch: int, fraction_h: float = 0.5,
               fraction_w: float = 0.5) -> Tensor:
    """The Context Encoder centre hole: round(fraction * size) pixels per side, centred.

    128x128 at 0.5 gives the 64x64 hole at rows/cols 32..95.
    """
    height, width, batch = _check_canvas(height, width, batch)
    fraction_h = _check_real("fraction_h", fraction_h, 0.0, 1.0, lo_open=True)
    fraction_w = _check_real("fraction_w", fraction_w, 0.0, 1.0, lo_open=True)
    box_h, box_w = round(fraction_h * height), round(fraction_w * width)
    if box_h < 1 or box_w < 1:
        raise ValueError(f"center_box fractions ({fraction_h:g}, {fraction_w:g}) give an empty box "
                         f"on a {height}x{width} image")
    return box_mask(height, width, batch, (height - box_h) // 2, (width - box_w) // 2, box_h, box_w)


# --------------------------------------------------------------------------------------------
# random generators: shared machinery

_Canvas = Image.Image
_AddOne = Callable[[np.random.Generator, _Canvas], None]
_MakeBase = Callable[[np.random.Generator], tuple[_Canvas, _AddOne]]


def _new_canvas(height: int, width: int) -> _Canvas:
    return Image.new("L", (width, height), 0)


def _hole_count(canvas: _Canvas) -> int:
    return canvas.histogram()[1]


def _draw_polyline(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], width: float) -> None:
    """A stroke of the given width through the points, with round joints and caps."""
    w = max(1, round(width))
    if len(points) > 1:
        draw.line(points, fill=1, width=w)
    r = w / 2
    for x, y in points:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=1)


def _draw_block(rng: np.random.Generator, canvas: _Canvas, side_h: float, side_w: float,
                margin: float = 0.0) -> None:
    """Fill a side_h x side_w block at a uniform position at least `margin` px from the edges."""
    height, width = canvas.height, canvas.width
    bh = min(max(1, round(side_h)), height)
    bw = min(max(1, round(side_w)), width)
    m_y = min(round(margin), (height - bh) // 2)
    m_x = min(round(margin), (width - bw) // 2)
    top = m_y + int(rng.random() * (height - bh - 2 * m_y + 1))
    left = m_x + int(rng.random() * (width - bw - 2 * m_x + 1))
    ImageDraw.Draw(canvas).rectangle((left, top, left + bw - 1, top + bh - 1), fill=1)


def _fit_coverage(rng: np.random.Generator, make_base: _MakeBase, lo_count: int, hi_count: int,
                  item: int, n_pixels: int) -> _Canvas:
    """Draw until the hole pixel count lies in [lo_count, hi_count] (see the module docstring)."""
    draws = 0
    closest: float | None = None

    def note(count: int) -> None:
        nonlocal closest
        ratio = count / n_pixels
        gap = max(lo_count / n_pixels - ratio, ratio - hi_count / n_pixels, 0.0)
        if closest is None or gap < max(lo_count / n_pixels - closest, closest - hi_count / n_pixels):
            closest = ratio

    while draws < _MAX_DRAWS:
        canvas, add_one = make_base(rng)
        draws += 1
        count = _hole_count(canvas)
        note(count)
        rejections = 0
        while count < lo_count and draws < _MAX_DRAWS and rejections < _MAX_REJECTIONS:
            trial = canvas.copy()
            add_one(rng, trial)
            draws += 1
            trial_count = _hole_count(trial)
            note(trial_count)
            if trial_count <= hi_count:
                canvas, count, rejections = trial, trial_count, 0
            else:
                rejections += 1
        if lo_count <= count <= hi_count:
            return canvas
    raise RuntimeError(
        f"could not bring mask item {item} to a hole ratio in [{lo_count / n_pixels:.4f}, "
        f"{hi_count / n_pixels:.4f}] within {_MAX_DRAWS} draws; closest ratio reached {closest:.4f}")


def _generate(height: int, width: int, batch: int, seed: int,
              make_item: Callable[[np.random.Generator, int], np.ndarray]) -> Tensor:
    out = np.empty((batch, 1, height, width), dtype=np.uint8)
    for item in range(batch):
        rng = np.random.default_rng(np.random.SeedSequence([seed, item]))
        out[item, 0] = make_item(rng, item)
    return torch.from_numpy(out).to(torch.float32)


# --------------------------------------------------------------------------------------------
# random blocks (Context Encoder)


def random_blocks(height: int, width: int, batch: int, seed: int, count: tuple[int, int] = (1, 5),
                  size: tuple[float, float] = (0.1, 0.4), max_coverage: float = 0.5,
                  coverage: tuple[float, float] | None = None) -> Tensor:
    """Random rectangles, as the Context Encoder's random-block masks (Pathak et al. 2016).

    Per item: ``count`` (inclusive) blocks; each side is ``uniform(*size) * min(height, width)``
    pixels (height and width drawn separately), placed uniformly inside the image; blocks may
    overlap. A block that would push the hole ratio above ``max_coverage`` is not drawn and ends
    the item (if that is the first block, it is redrawn). With ``coverage=(lo, hi)`` the item is
    fitted to that range instead (count and max_coverage no longer apply; see module docstring).
    """
    height, width, batch = _check_canvas(height, width, batch)
    seed = _check_seed(seed)
    count_lo, count_hi = _check_int_range("count", count, 1)
    size_lo, size_hi = _check_real_range("size", size, 0.0, 1.0, lo_open=True)
    max_coverage = _check_real("max_coverage", max_coverage, 0.0, 1.0, lo_open=True)
    counts = _check_coverage(coverage, height, width)
    n_pixels = height * width
    short = min(height, width)

    def add_block(rng: np.random.Generator, canvas: _Canvas) -> None:
        _draw_block(rng, canvas, rng.uniform(size_lo, size_hi) * short,
                    rng.uniform(size_lo, size_hi) * short)

    def make_base(rng: np.random.Generator, capped: bool) -> tuple[_Canvas, _AddOne]:
        canvas = _new_canvas(height, width)
        limit = math.floor(max_coverage * n_pixels + 1e-9) if capped else n_pixels
        n_blocks = int(rng.integers(count_lo, count_hi + 1))
        placed, attempts = 0, 0
        while placed < n_blocks:
            trial = canvas.copy()
            add_block(rng, trial)
            attempts += 1
            if _hole_count(trial) <= limit:
                canvas, placed = trial, placed + 1
            elif placed > 0:
                break
            elif attempts >= 100:
                raise RuntimeError(f"random_blocks: no single block with size {size} fits under "
                                   f"max_coverage={max_coverage:g} after 100 draws")
        return canvas, add_block

    def make_item(rng: np.random.Generator, item: int) -> np.ndarray:
        if counts is None:
            canvas = make_base(rng, True)[0]
        else:
            canvas = _fit_coverage(rng, lambda r: make_base(r, False), *counts, item, n_pixels)
        return np.asarray(canvas)

    return _generate(height, width, batch, seed, make_item)


# --------------------------------------------------------------------------------------------
# free-form strokes (DeepFill v2)


def free_form_strokes(height: int, width: int, batch: int, seed: int, strokes: tuple[int, int] = (1, 3),
                      vertices: tuple[int, int] = (4, 11), width_range: tuple[float, float] = (12, 40),
                      angle: float = 2 * math.pi / 5, angle_range: float = 2 * math.pi / 15,
                      coverage: tuple[float, float] | None = None) -> Tensor:
    """Free-form brush strokes after DeepFill v2 (Yu et al. 2019, Algorithm 1 / brush_stroke_mask).

    Per item: ``strokes`` (inclusive) strokes. A stroke starts at a uniform random point and
    makes ``vertices`` (inclusive) moves; the turn angles lie in
    ``[angle - uniform(0, angle_range), angle + uniform(0, angle_range)]`` (drawn once per stroke),
    mirrored to ``2*pi - a`` on every other move so the stroke zig-zags. Each step length is
    ``normal(diag/8, diag/16)`` clipped to ``[0, diag/4]`` (diag = image diagonal), points are
    clipped to the image. The brush width is ``uniform(*width_range)`` pixels at 256 px, scaled by
    ``min(height, width) / 256``; joints and ends are round. Each item is then flipped left-right
    and up-down with probability 1/2 each (the reference code meant to, but discards the result).
    ``coverage=(lo, hi)`` fits each item's hole ratio (module docstring).
    """
    height, width, batch = _check_canvas(height, width, batch)
    seed = _check_seed(seed)
    stroke_lo, stroke_hi = _check_int_range("strokes", strokes, 1)
    vert_lo, vert_hi = _check_int_range("vertices", vertices, 1)
    w_lo, w_hi = _check_real_range("width_range", width_range, 0.0, math.inf, lo_open=True)
    angle = _check_real("angle", angle, 0.0, 2 * math.pi)
    angle_range = _check_real("angle_range", angle_range, 0.0, math.pi)
    counts = _check_coverage(coverage, height, width)
    scale = min(height, width) / 256
    step = math.hypot(height, width) / 8

    def add_stroke(rng: np.random.Generator, canvas: _Canvas) -> None:
        n_moves = int(rng.integers(vert_lo, vert_hi + 1))
        a_min = angle - rng.uniform(0, angle_range)
        a_max = angle + rng.uniform(0, angle_range)
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        points = [(x, y)]
        for i in range(n_moves):
            a = rng.uniform(a_min, a_max)
            if i % 2 == 0:
                a = 2 * math.pi - a
            r = float(np.clip(rng.normal(step, step / 2), 0, 2 * step))
            x = min(max(x + r * math.cos(a), 0.0), float(width))
            y = min(max(y + r * math.sin(a), 0.0), float(height))
            points.append((x, y))
        _draw_polyline(ImageDraw.Draw(canvas), points, rng.uniform(w_lo, w_hi) * scale)

    def make_base(rng: np.random.Generator) -> tuple[_Canvas, _AddOne]:
        canvas = _new_canvas(height, width)
        for _ in range(int(rng.integers(stroke_lo, stroke_hi + 1))):
            add_stroke(rng, canvas)
        return canvas, add_stroke

    def make_item(rng: np.random.Generator, item: int) -> np.ndarray:
        if counts is None:
            canvas = make_base(rng)[0]
        else:
            canvas = _fit_coverage(rng, make_base, *counts, item, height * width)
        flip_lr, flip_ud = rng.random() < 0.5, rng.random() < 0.5
        arr = np.asarray(canvas)
        if flip_lr:
            arr = arr[:, ::-1]
        if flip_ud:
            arr = arr[::-1, :]
        return arr

    return _generate(height, width, batch, seed, make_item)


# --------------------------------------------------------------------------------------------
# irregular masks (LaMa)


def _irregular_params(preset: str, custom: dict[str, Any]) -> dict[str, float]:
    known = set(_STROKE_KEYS) | set(_BOX_DEFAULTS)
    unknown = sorted(set(custom) - known)
    if unknown:
        raise ValueError(f"irregular got unknown parameters {unknown}; expected some of {sorted(known)}")
    if preset == "custom":
        missing = [k for k in _STROKE_KEYS if k not in custom]
        if missing:
            raise ValueError(f"irregular preset 'custom' needs {list(_STROKE_KEYS)}, missing {missing}")
        params = {**_BOX_DEFAULTS, **custom}
    elif preset in IRREGULAR_PRESETS:
        params = {**IRREGULAR_PRESETS[preset], **custom}
    else:
        raise ValueError(f"irregular preset must be one of {[*IRREGULAR_PRESETS, 'custom']}, "
                         f"got {preset!r}")
    _check_int_range("min_times/max_times", (params["min_times"], params["max_times"]), 0)
    _check_int_range("box_min_times/box_max_times", (params["box_min_times"], params["box_max_times"]), 1)
    _check_real("max_width", params["max_width"], 0.0, math.inf)
    _check_real("max_len", params["max_len"], 0.0, math.inf)
    _check_real("max_angle", params["max_angle"], 0.0, 2 * math.pi)
    _check_real("box_probability", params["box_probability"], 0.0, 1.0)
    _check_real_range("box_min_size/box_max_size", (params["box_min_size"], params["box_max_size"]),
                      0.0, math.inf, lo_open=True)
    _check_real("box_margin", params["box_margin"], 0.0, math.inf)
    _check_real("max_coverage", params["max_coverage"], 0.0, 1.0, lo_open=True)
    return params


def irregular(height: int, width: int, batch: int, seed: int, preset: str = "medium",
              coverage: tuple[float, float] | None = None, **custom: float) -> Tensor:
    """Irregular masks after LaMa's random mask generators (Suvorov et al. 2022).

    ``preset`` is "thin", "medium", "thick" (parameters in ``IRREGULAR_PRESETS``, at 256 px and
    scaled by ``min(height, width) / 256``) or "custom", which needs ``min_times``, ``max_times``,
    ``max_width``, ``max_len`` and ``max_angle`` as keywords (box keys default to no boxes).
    Keywords given with a named preset override that preset's values. Items whose hole ratio
    exceeds ``max_coverage`` (0.5, LaMa's ``max_tamper_area``) are redrawn; ``coverage=(lo, hi)``
    replaces that cap with a fitted range (module docstring).
    """
    height, width, batch = _check_canvas(height, width, batch)
    seed = _check_seed(seed)
    if not isinstance(preset, str):
        raise ValueError(f"irregular preset must be a string, got {preset!r}")
    p = _irregular_params(preset, custom)
    counts = _check_coverage(coverage if coverage is not None else (0.0, p["max_coverage"]), height, width)
    scale = min(height, width) / 256

    def add_stroke(rng: np.random.Generator, canvas: _Canvas, stroke_index: int = 0) -> None:
        draw = ImageDraw.Draw(canvas)
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        for _ in range(1 + int(rng.integers(0, 5))):
            a = 0.01 + rng.uniform(0, p["max_angle"])
            if stroke_index % 2 == 0:
                a = 2 * math.pi - a
            length = (10 + rng.uniform(0, p["max_len"])) * scale
            brush = (5 + rng.uniform(0, p["max_width"])) * scale
            x1 = min(max(x + length * math.sin(a), 0.0), float(width))
            y1 = min(max(y + length * math.cos(a), 0.0), float(height))
            _draw_polyline(draw, [(x, y), (x1, y1)], brush)
            x, y = x1, y1

    def add_box(rng: np.random.Generator, canvas: _Canvas) -> None:
        margin = p["box_margin"] * scale
        hi_side = min(p["box_max_size"] * scale, min(height, width) - 2 * margin)
        lo_side = min(p["box_min_size"] * scale, hi_side)
        _draw_block(rng, canvas, rng.uniform(lo_side, hi_side), rng.uniform(lo_side, hi_side), margin)

    def make_base(rng: np.random.Generator) -> tuple[_Canvas, _AddOne]:
        canvas = _new_canvas(height, width)
        if rng.random() < p["box_probability"]:
            for _ in range(int(rng.integers(p["box_min_times"], p["box_max_times"] + 1))):
                add_box(rng, canvas)
            return canvas, add_box
        n_strokes = int(rng.integers(p["min_times"], p["max_times"] + 1))
        for i in range(n_strokes):
            add_stroke(rng, canvas, i)
        extra = iter(range(n_strokes, n_strokes + _MAX_DRAWS + 1))
        return canvas, lambda r, c: add_stroke(r, c, next(extra))

    def make_item(rng: np.random.Generator, item: int) -> np.ndarray:
        return np.asarray(_fit_coverage(rng, make_base, *counts, item, height * width))

    return _generate(height, width, batch, seed, make_item)


# --------------------------------------------------------------------------------------------
# outpainting


def outpaint_border(height: int, width: int, batch: int, left: int, top: int, right: int, bottom: int,
                    feather: int = 0) -> Tensor:
    """Hole = a border band of the given widths (pixels) around the kept centre.

    ``height`` x ``width`` is the padded canvas. With ``feather > 0`` the hole also reaches
    ``feather`` pixels into the kept region on each padded side with a linear ramp: the kept pixel
    at distance ``d`` (0 = next to the band) gets ``(feather - d) / (feather + 1)``; sides where
    both ramps meet take the maximum. Without feather the values are exactly 0/1.
    """
    height, width, batch = _check_canvas(height, width, batch)
    left, top = _check_int("left", left, 0), _check_int("top", top, 0)
    right, bottom = _check_int("right", right, 0), _check_int("bottom", bottom, 0)
    feather = _check_int("feather", feather, 0)
    if left + right >= width or top + bottom >= height:
        raise ValueError(f"borders (left={left}, top={top}, right={right}, bottom={bottom}) leave no kept "
                         f"pixels on a {height}x{width} canvas")
    ys = torch.arange(height, dtype=torch.float32).view(height, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, width)
    inside = (ys >= top) & (ys < height - bottom) & (xs >= left) & (xs < width - right)
    mask = (~inside).to(torch.float32)
    if feather > 0:
        ramps = []
        for pad, dist in ((left, xs - left), (right, width - right - 1 - xs),
                          (top, ys - top), (bottom, height - bottom - 1 - ys)):
            if pad > 0:
                ramps.append(((feather - dist) / (feather + 1)).clamp(0.0, 1.0))
        if ramps:
            ramp = ramps[0].expand(height, width)
            for r in ramps[1:]:
                ramp = torch.maximum(ramp, r)
            mask = torch.where(inside, ramp, mask)
    return mask.expand(batch, 1, height, width).contiguous()


# --------------------------------------------------------------------------------------------
# masks from images


def from_luma(image: Tensor, threshold: float, invert: bool = False) -> Tensor:
    """Hole where the BT.601 luma (``LUMA_WEIGHTS`` on the stored RGB values) is >= threshold.

    ``image`` is [B, 3, H, W] RGB or [B, 1, H, W] grey (used as is). ``invert`` makes dark = hole.
    """
    validate_image(image, channels=(1, 3))
    threshold = _check_real("threshold", threshold, 0.0, 1.0)
    if image.shape[1] == 3:
        w = torch.tensor(LUMA_WEIGHTS, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
        luma = (image * w).sum(dim=1, keepdim=True)
    else:
        luma = image
    hole = luma >= threshold
    return (~hole if invert else hole).to(image.dtype)


def from_color(image: Tensor, color_rgb: Sequence[float], tolerance: float = 0.0) -> Tensor:
    """Hole where a pixel is within ``tolerance`` of ``color_rgb`` in every channel.

    ``color_rgb`` is three floats in [0, 1] (the core's units; divide 8-bit values by 255).
    Distance is the max-channel (Chebyshev) distance ``max_c |pixel_c - color_c|``, so
    ``tolerance`` is in [0, 1] per channel and 0 means an exact match (plus 1e-6 for float
    rounding of 8-bit values). ``image`` must be [B, 3, H, W].
    """
    validate_image(image, channels=(3,))
    values = list(color_rgb) if isinstance(color_rgb, Sequence | np.ndarray) else None
    if (values is None or len(values) != 3
            or not all(_is_real(c) and 0.0 <= float(c) <= 1.0 for c in values)):
        raise ValueError(f"color_rgb must be 3 floats in [0, 1] (divide 0..255 values by 255), "
                         f"got {color_rgb!r}")
    tolerance = _check_real("tolerance", tolerance, 0.0, 1.0)
    color = torch.tensor([float(c) for c in values], dtype=image.dtype, device=image.device)
    dist = (image - color.view(1, 3, 1, 1)).abs().amax(dim=1, keepdim=True)
    return (dist <= tolerance + 1e-6).to(image.dtype)


def from_alpha(image_rgba: Tensor, threshold: float | None = None) -> Tensor:
    """Hole = 1 - alpha (transparent = hole), as ComfyUI's LoadImage makes its MASK.

    ``image_rgba`` must be [B, 4, H, W]. Without threshold the soft ``1 - alpha`` is returned;
    with one, ``binarize(1 - alpha, threshold)``.
    """
    validate_image(image_rgba, channels=(4,), name="image_rgba")
    mask = 1.0 - image_rgba[:, 3:4]
    return mask if threshold is None else binarize(mask, threshold)


def from_difference(image_a: Tensor, image_b: Tensor, threshold: float) -> Tensor:
    """Hole where the two images differ: ``max_c |a_c - b_c| > threshold``.

    Both images must have the same shape [B, C, H, W]; ``threshold`` lies in [0, 1).
    """
    validate_image(image_a, name="image_a")
    validate_image(image_b, name="image_b")
    if image_a.shape != image_b.shape:
        raise ValueError(f"image_a and image_b must have the same shape, got {tuple(image_a.shape)} "
                         f"and {tuple(image_b.shape)}")
    threshold = _check_real("threshold", threshold, 0.0, 1.0, hi_open=True)
    diff = (image_a - image_b).abs().amax(dim=1, keepdim=True)
    return (diff > threshold).to(torch.promote_types(image_a.dtype, image_b.dtype))


# --------------------------------------------------------------------------------------------
# mask maths


def binarize(mask: Tensor, threshold: float = 0.5) -> Tensor:
    """1 where ``mask >= threshold``, else 0 (threshold in (0, 1]).

    Use it first on masks that went through JPEG or resizing: their "holes" are 0.98, not 1.
    """
    validate_mask(mask)
    threshold = _check_real("threshold", threshold, 0.0, 1.0, lo_open=True)
    return (mask >= threshold).to(mask.dtype)


def _disc_half_widths(r: int) -> list[int]:
    """Half-width of the disc dx^2 + dy^2 <= r^2 on row dy, for dy = 0..r."""
    return [math.isqrt(r * r - dy * dy) for dy in range(r + 1)]


def _dilate_disc(m: Tensor, r: int) -> Tensor:
    """Max over the disc of radius r for a bool or float [N, H, W] tensor, outside = 0.

    Row dy of the disc spans |dx| <= half[|dy|]; the horizontal max over a span grows one pixel
    per pass, and each row offset is folded in once it is reached: about 3r cheap passes.
    """
    n, h, w = m.shape
    half = _disc_half_widths(r)
    out = torch.zeros_like(m)
    horiz, reach = m.clone(), 0
    for dy in sorted(range(-r, r + 1), key=lambda d: half[abs(d)]):
        while reach < min(half[abs(dy)], w - 1):
            prev = horiz.clone()
            torch.maximum(horiz[..., 1:], prev[..., :-1], out=horiz[..., 1:])
            torch.maximum(horiz[..., :-1], prev[..., 1:], out=horiz[..., :-1])
            reach += 1
        if abs(dy) >= h:
            continue
        dst = out[:, : h - dy] if dy >= 0 else out[:, -dy:]
        src = horiz[:, dy:] if dy >= 0 else horiz[:, : h + dy]
        torch.maximum(dst, src, out=dst)
    return out


def grow(mask: Tensor, pixels: int) -> Tensor:
    """Dilate (pixels > 0) or erode (pixels < 0) the hole by a Euclidean disc of radius |pixels|.

    The disc is the set of offsets with dx^2 + dy^2 <= pixels^2, so a 1 px grow adds the 4
    neighbours and a single pixel grown by r becomes a digital disc of radius r. Outside the image
    counts as keep for growing and as hole for shrinking, so a hole touching the border stays
    attached to it. Soft masks get the grey-level max (min) over the disc. Cost: about 3 * |pixels|
    elementwise passes (on bool for 0/1 masks): 70-180 ms for 16 x 1024^2 at 32 px on 2 cores.
    """
    validate_mask(mask)
    pixels = _check_int("pixels", pixels)
    if pixels == 0:
        return mask.clone()
    r = abs(pixels)
    m = mask[:, 0]
    if bool(((m == 0) | (m == 1)).all()):
        hole = m > 0.5
        out = _dilate_disc(hole, r) if pixels > 0 else ~_dilate_disc(~hole, r)
        return out.to(mask.dtype).unsqueeze(1)
    out = _dilate_disc(m, r) if pixels > 0 else 1.0 - _dilate_disc(1.0 - m, r)
    return out.unsqueeze(1)


def feather(mask: Tensor, radius: int) -> Tensor:
    """Soften the edges with a Gaussian blur, sigma = radius / 3, truncated at ``radius`` pixels.

    Pixels farther than ``radius`` (in x and y) from any pixel of another value keep their value
    exactly (0 stays 0, 1 stays 1); the image border is extended by replication, so a hole
    touching the border stays 1 there. ``radius`` = 0 returns a copy.
    """
    validate_mask(mask)
    radius = _check_int("radius", radius, 0)
    if radius == 0:
        return mask.clone()
    sigma = radius / 3
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(mask.dtype).to(mask.device)
    out = F.pad(mask, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1))
    out = F.conv2d(out, kernel.view(1, 1, -1, 1))
    out = out.clamp(0.0, 1.0)
    out = torch.where(out < _FEATHER_SNAP, torch.zeros_like(out), out)
    return torch.where(out > 1.0 - _FEATHER_SNAP, torch.ones_like(out), out)


def refine(mask: Tensor, threshold: float | None = None, grow_pixels: int = 0, feather_radius: int = 0,
           invert: bool = False) -> Tensor:
    """The usual clean-up chain, in this order: binarize -> invert -> grow -> feather.

    Binarizing first removes the "almost 1" values JPEG and resizing leave; inverting before
    grow/feather means ``grow_pixels`` and ``feather_radius`` always act on the hole you get back.
    Each step is skipped at its neutral value (threshold None, 0 pixels, radius 0, invert False).
    """
    validate_mask(mask)
    if not isinstance(invert, bool):
        raise ValueError(f"invert must be a bool, got {invert!r}")
    out = mask if threshold is None else binarize(mask, threshold)
    if invert:
        out = 1.0 - out
    out = grow(out, grow_pixels)
    return feather(out, feather_radius)


def bbox(mask: Tensor, padding: int = 0) -> list[tuple[int, int, int, int]]:
    """Per item, the (x, y, w, h) box around all pixels > 0.5, grown by ``padding`` and clipped.

    An item without such pixels is an error ("mask item 2 is empty").
    """
    validate_mask(mask)
    padding = _check_int("padding", padding, 0)
    _, _, h, w = mask.shape
    boxes = []
    for i, item in enumerate(mask[:, 0] > 0.5):
        rows = torch.nonzero(item.any(dim=1)).flatten()
        cols = torch.nonzero(item.any(dim=0)).flatten()
        if rows.numel() == 0:
            raise ValueError(f"mask item {i} is empty: no pixel > 0.5, so it has no bounding box")
        y0, y1 = max(int(rows[0]) - padding, 0), min(int(rows[-1]) + padding, h - 1)
        x0, x1 = max(int(cols[0]) - padding, 0), min(int(cols[-1]) + padding, w - 1)
        boxes.append((x0, y0, x1 - x0 + 1, y1 - y0 + 1))
    return boxes


def coverage(mask: Tensor) -> Tensor:
    """Hole ratio per item: the mean mask value, shape [B] (soft values count fractionally)."""
    validate_mask(mask)
    return mask.mean(dim=(1, 2, 3))


#: Colour of the hole in previews (red) and how strongly it tints the image.
OVERLAY_RGB: tuple[float, float, float] = (1.0, 0.0, 0.0)
OVERLAY_ALPHA = 0.5


def overlay(mask: Tensor, image: Tensor | None = None) -> Tensor:
    """A preview [B,3,H,W]: the mask in grey, or tinted red over ``image`` where it is a hole.

    ``image`` may have 1, 3 or 4 channels (alpha is ignored) and batch 1 or the mask's batch; a
    mask batch larger than the image batch reuses the images cyclically.
    """
    validate_mask(mask)
    if image is None:
        return mask.expand(-1, 3, -1, -1).clone()
    image = validate_image(image, channels=(1, 3, 4))
    if image.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"preview image is {tuple(image.shape[-2:])} (H, W) but the mask is {tuple(mask.shape[-2:])}")
    rgb = image[:, :3] if image.shape[1] >= 3 else image.expand(-1, 3, -1, -1)
    index = torch.arange(mask.shape[0]) % rgb.shape[0]
    rgb = rgb[index].to(mask.dtype)
    tint = torch.tensor(OVERLAY_RGB, dtype=mask.dtype).view(1, 3, 1, 1)
    weight = mask * OVERLAY_ALPHA
    return rgb * (1 - weight) + tint * weight


def resize(mask: Tensor, height: int, width: int) -> Tensor:
    """The mask resampled to ``height`` x ``width`` (bilinear, antialiased when shrinking).

    Edges come out soft; binarize (``refine``) afterwards when a hard mask is needed.
    """
    validate_mask(mask)
    height, width, _ = _check_canvas(height, width, 1)
    if tuple(mask.shape[-2:]) == (height, width):
        return mask.clone()
    out = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp(0.0, 1.0)
