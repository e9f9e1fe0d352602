"""Synthetic old-photo damage: seeded, reproducible, pure PyTorch.

`render(image, seed, config) -> (damaged, mask)` draws what a scanned old print suffers over clean
photos. Two kinds of fault, and the mask tells them apart:

* **local damage, in the mask** (the photo's content there is destroyed and must be filled):
  thin curved scratches and hairs, bright (emulsion scraped off to the paper) or dark (dirt, scratched
  negative), of varying width, opacity and continuity; dust specks; paper creases (a bright cracked
  core across the print); stains (tinted blotches); torn corners (the photo replaced by paper or
  the scanner lid). The mask is 1 where an element covers at least `MASK_COVERAGE` of a pixel
  (stains: where their opacity reaches `STAIN_MASK_OPACITY`).
* **global ageing, not in the mask** (the content is still there; a restorer undoes it): black and
  white, sepia cast, fading (lowered contrast towards a paper tone, lifted blacks), film grain, scan
  blur, JPEG. Grain, tone and blur also land on the damage, as they would on a real print.

Order per item: grey, sepia, fade, grain (the print ages), then the local damage, then scan blur and
JPEG (the scan). Item `i` of a batch uses `np.random.SeedSequence([seed, i])`, spawned into one stream
per kind of fault (the order of `_STREAMS` is fixed forever), so the same image, config and seed give
the same pair on any machine, item `i` does not depend on the batch size, and switching one fault off
does not change what the others draw. Sizes are in pixels of the image as given: scratches are 0.5 to
4 px wide whatever the photo's size, their lengths a share of its diagonal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from .. import memory
from ..enhance.degrade import _check_probability, _check_range, _check_seed, jpeg
from ..layout import validate_image

MASK_COVERAGE = 0.3  # a pixel is damaged when an element covers at least this share of it
STAIN_MASK_OPACITY = 0.2  # a stain is damage where its opacity reaches this
SEPIA = (1.07, 0.95, 0.72)  # per-channel gains of a sepia toned print (applied to the luminance)
_STREAMS = ("clean", "grey", "sepia", "fade", "grain", "scratches", "hairs", "specks", "crease", "stain", "tear",
            "blur", "jpeg")
_CHUNK = 8  # polyline segments rasterised together

LIMITS = {
    "scratches": (0, 64),
    "hairs": (0, 16),
    "specks": (0, 400),
    "scratch_width": (0.3, 12.0),
    "grain_sigma": (0.0, 40.0),
    "fade": (0.2, 1.0),
    "blur_sigma": (0.1, 3.0),
    "jpeg_quality": (10, 100),
}


@dataclass(frozen=True)
class DamageConfig:
    """What `render` draws. Counts and ranges are (low, high), drawn uniformly per item (counts: integers,
    both ends included); probabilities say how often a fault appears on an item."""

    clean_probability: float = 0.08  # no local damage at all (the detector must learn to say "nothing")
    scratches: tuple[int, int] = (0, 7)
    scratch_width: tuple[float, float] = (0.6, 3.5)  # px
    hairs: tuple[int, int] = (0, 2)  # short, very curved dark fibres
    specks: tuple[int, int] = (0, 45)
    crease_probability: float = 0.25
    stain_probability: float = 0.2
    tear_probability: float = 0.12
    grey_probability: float = 0.5
    sepia_probability: float = 0.3
    fade_probability: float = 0.6
    fade: tuple[float, float] = (0.55, 0.95)  # contrast kept
    grain_probability: float = 0.7
    grain_sigma: tuple[float, float] = (2.0, 14.0)  # on the 0..255 scale
    blur_probability: float = 0.5
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    jpeg_probability: float = 0.25
    jpeg_quality: tuple[int, int] = (55, 95)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_probability"):
                _check_probability(f.name, value)
            else:
                lo, hi = LIMITS[f.name]
                integers = f.name in ("scratches", "hairs", "specks", "jpeg_quality")
                _check_range(f.name, value, lo, hi, integers=integers)


DAMAGE = DamageConfig()
#: The damage only, no ageing: for making pairs whose sole difference is the mask.
LOCAL_ONLY = DamageConfig(grey_probability=0.0, sepia_probability=0.0, fade_probability=0.0, grain_probability=0.0,
                          blur_probability=0.0, jpeg_probability=0.0)
#: A badly kept black-and-white print: always aged, scratched, dusty, creased and torn (demos and checks).
HEAVY = DamageConfig(clean_probability=0.0, scratches=(5, 8), hairs=(1, 2), specks=(30, 60), crease_probability=1.0,
                     stain_probability=0.0, tear_probability=1.0, grey_probability=1.0, sepia_probability=1.0,
                     fade_probability=1.0, grain_probability=1.0, blur_probability=0.0, jpeg_probability=0.0)


# --------------------------------------------------------------------------------------------
# drawing helpers (one item [1, C, H, W])


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return lo if lo == hi else float(rng.uniform(lo, hi))


def _count(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _bezier(points: np.ndarray, n: int) -> np.ndarray:
    """n points along the Bezier curve with control points `points` [K, 2] (x, y)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    k = len(points) - 1
    out = np.zeros((n, 2))
    for i, p in enumerate(points):
        out += math.comb(k, i) * t**i * (1 - t) ** (k - i) * p
    return out


def _smooth_noise(rng: np.random.Generator, n: int, knots: int) -> np.ndarray:
    """n values of a smooth random curve in [0, 1] (linear interpolation of `knots` uniform draws)."""
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, knots), rng.random(knots))


def _polyline_coverage(points: np.ndarray, radii: np.ndarray, height: int, width: int) -> tuple[Tensor, tuple]:
    """Anti-aliased coverage of a polyline with per-point half widths, in its bounding box.

    Returns (coverage [h, w] in [0, 1], (top, left)) or an empty tensor when it misses the image.
    """
    pad = float(radii.max()) + 1.5
    left, top = max(0, math.floor(points[:, 0].min() - pad)), max(0, math.floor(points[:, 1].min() - pad))
    right = min(width, math.ceil(points[:, 0].max() + pad) + 1)
    bottom = min(height, math.ceil(points[:, 1].max() + pad) + 1)
    if right <= left or bottom <= top:
        return torch.zeros(0, 0), (0, 0)
    ys = torch.arange(top, bottom, dtype=torch.float32) + 0.5
    xs = torch.arange(left, right, dtype=torch.float32) + 0.5
    cover = torch.zeros(bottom - top, right - left)
    p = torch.from_numpy(points).float()
    r = torch.from_numpy(radii).float()
    for start in range(0, len(p) - 1, _CHUNK):
        a, b = p[start : start + _CHUNK], p[start + 1 : start + _CHUNK + 1]
        ra, rb = r[start : start + _CHUNK], r[start + 1 : start + _CHUNK + 1]
        a, ra = a[: len(b)], ra[: len(b)]
        # this chunk's own box inside the polyline's box
        cpad = float(torch.maximum(ra, rb).max()) + 1.5
        x0 = max(left, math.floor(float(torch.minimum(a[:, 0], b[:, 0]).min()) - cpad))
        x1 = min(right, math.ceil(float(torch.maximum(a[:, 0], b[:, 0]).max()) + cpad) + 1)
        y0 = max(top, math.floor(float(torch.minimum(a[:, 1], b[:, 1]).min()) - cpad))
        y1 = min(bottom, math.ceil(float(torch.maximum(a[:, 1], b[:, 1]).max()) + cpad) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        px = xs[x0 - left : x1 - left][None, None, :]
        py = ys[y0 - top : y1 - top][None, :, None]
        d = b - a
        length2 = (d * d).sum(1).clamp(min=1e-6)[:, None, None]
        t = (((px - a[:, 0, None, None]) * d[:, 0, None, None] + (py - a[:, 1, None, None]) * d[:, 1, None, None])
             / length2).clamp(0, 1)
        dist = torch.sqrt((px - a[:, 0, None, None] - t * d[:, 0, None, None]) ** 2
                          + (py - a[:, 1, None, None] - t * d[:, 1, None, None]) ** 2)
        radius = ra[:, None, None] + t * (rb - ra)[:, None, None]
        c = (radius + 0.5 - dist).clamp(0, 1).amax(0)
        region = cover[y0 - top : y1 - top, x0 - left : x1 - left]
        torch.maximum(region, c, out=region)
    return cover, (top, left)


def _paint(image: Tensor, mask: Tensor, cover: Tensor, origin: tuple[int, int], colour: Tensor, opacity: float,
           in_mask: Tensor | None = None) -> None:
    """Blend `colour` [C] into `image` [1,C,H,W] with alpha opacity * cover at `origin`; mark the mask in place."""
    if cover.numel() == 0:
        return
    top, left = origin
    h, w = cover.shape
    alpha = (cover * opacity)[None, None]
    region = image[:, :, top : top + h, left : left + w]
    region.mul_(1 - alpha).add_(colour.view(1, -1, 1, 1) * alpha)
    marked = (cover >= MASK_COVERAGE) if in_mask is None else in_mask
    m = mask[:, :, top : top + h, left : left + w]
    m[:, :, marked] = 1.0


def _tone(rng: np.random.Generator, channels: int, bright: bool) -> Tensor:
    """A scratch's colour: near white (paper) or near black, slightly warm; [C]."""
    v = _u(rng, 0.82, 1.0) if bright else _u(rng, 0.0, 0.18)
    warm = torch.tensor([1.0, 0.97, 0.9]) if bright else torch.ones(3)
    colour = (v * warm).clamp(0, 1)
    return colour[:1] if channels == 1 else colour


def _scratches(image: Tensor, mask: Tensor, rng: np.random.Generator, config: DamageConfig, hairs: bool) -> None:
    _, c, h, w = image.shape
    diagonal = math.hypot(h, w)
    for _ in range(_count(rng, config.hairs if hairs else config.scratches)):
        if hairs:  # short, tangled, dark, thin
            length = _u(rng, 0.05, 0.2) * diagonal
            control = 4
            bend = 0.6
            width = _u(rng, 0.4, 1.2)
            bright = False
        else:  # long, gently curved; vertical ones are the classic film scratch
            length = _u(rng, 0.15, 1.1) * diagonal
            control = int(rng.integers(2, 4))
            bend = _u(rng, 0.0, 0.25)
            width = _u(rng, *config.scratch_width) / 2
            bright = rng.random() < 0.65
        angle = math.pi / 2 + _u(rng, -0.25, 0.25) if rng.random() < 0.35 else _u(rng, 0, math.pi)
        cx, cy = _u(rng, 0, w), _u(rng, 0, h)
        direction = np.array([math.cos(angle), math.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        ts = np.linspace(-0.5, 0.5, control)
        offsets = rng.uniform(-bend, bend, control) * length
        points = np.array([cx, cy]) + ts[:, None] * length * direction + offsets[:, None] * normal
        n = max(4, int(length / 5))
        curve = _bezier(points, n)
        radii = width * (0.55 + 0.45 * _smooth_noise(rng, n, 6))
        opacity = _u(rng, 0.55, 1.0)
        colour = _tone(rng, c, bright)
        # a broken scratch: pieces of it only
        pieces = [(0, n)]
        if not hairs and rng.random() < 0.4:
            cuts = np.sort(rng.integers(1, n - 1, size=2 * int(rng.integers(1, 4))))
            pieces = [(int(a), int(b) + 1) for a, b in zip(cuts[::2], cuts[1::2], strict=True) if b > a]
        for a, b in pieces:
            cover, origin = _polyline_coverage(curve[a:b], radii[a:b], h, w)
            _paint(image, mask, cover, origin, colour, opacity)


def _specks(image: Tensor, mask: Tensor, rng: np.random.Generator, config: DamageConfig) -> None:
    _, c, h, w = image.shape
    for _ in range(_count(rng, config.specks)):
        radius = 0.6 + 3.4 * rng.random() ** 2.5  # mostly small, a few blobs
        stretch = _u(rng, 1.0, 2.5)
        angle = _u(rng, 0, math.pi)
        cx, cy = _u(rng, 0, w), _u(rng, 0, h)
        # a short, fat polyline is an elongated speck
        d = np.array([math.cos(angle), math.sin(angle)]) * radius * (stretch - 1)
        points = np.array([[cx, cy] - d, [cx, cy] + d])
        cover, origin = _polyline_coverage(points, np.array([radius, radius * _u(rng, 0.6, 1.0)]), h, w)
        _paint(image, mask, cover, origin, _tone(rng, c, rng.random() < 0.55), _u(rng, 0.7, 1.0))


def _crease(image: Tensor, mask: Tensor, rng: np.random.Generator) -> None:
    """A fold across the print: a soft shadow band, and a bright cracked core (the damage) along its middle."""
    _, c, h, w = image.shape
    angle = _u(rng, 0, math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    centre = np.array([_u(rng, 0.2, 0.8) * w, _u(rng, 0.2, 0.8) * h])
    reach = math.hypot(h, w)
    ts = np.linspace(-1, 1, 4)
    wobble = rng.uniform(-0.02, 0.02, 4) * reach
    points = _bezier(centre + ts[:, None] * reach * direction + wobble[:, None] * normal, max(8, int(2 * reach / 6)))
    n = len(points)
    shadow_r = np.full(n, _u(rng, 3.0, 8.0))
    shadow, origin = _polyline_coverage(points + normal * shadow_r[0] * 0.6, shadow_r, h, w)
    if shadow.numel():  # the shadow alters the tone only (the content shows through): not in the mask
        top, left = origin
        sh, sw = shadow.shape
        region = image[:, :, top : top + sh, left : left + sw]
        region.mul_(1 - 0.25 * _u(rng, 0.3, 1.0) * shadow[None, None])
    core_r = _u(rng, 0.7, 2.2) * (0.4 + 0.6 * _smooth_noise(rng, n, 12))
    cover, origin = _polyline_coverage(points, core_r, h, w)
    _paint(image, mask, cover, origin, _tone(rng, c, True), _u(rng, 0.6, 0.95))


def _blob(rng: np.random.Generator, h: int, w: int) -> Tensor:
    """A soft irregular blob [h, w] in [0, 1]: low-frequency noise under a radial falloff."""
    grid = torch.from_numpy(rng.random((1, 1, 6, 6))).float()
    noise = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True)[0, 0]
    yy = torch.linspace(-1, 1, h)[:, None]
    xx = torch.linspace(-1, 1, w)[None, :]
    radial = 1 - (xx**2 + yy**2).sqrt()
    return ((radial + 0.6 * (noise - 0.5)) * 3).clamp(0, 1)


def _stain(image: Tensor, mask: Tensor, rng: np.random.Generator) -> None:
    _, c, h, w = image.shape
    side = min(h, w)
    bh, bw = max(4, int(_u(rng, 0.1, 0.45) * side)), max(4, int(_u(rng, 0.1, 0.45) * side))
    top, left = int(rng.integers(0, max(1, h - bh // 2))), int(rng.integers(0, max(1, w - bw // 2)))
    blob = _blob(rng, bh, bw)[: h - top, : w - left]
    alpha = blob * _u(rng, 0.35, 0.8)
    tint = torch.tensor([_u(rng, 0.55, 0.75), _u(rng, 0.4, 0.55), _u(rng, 0.15, 0.3)])
    tint = tint.mean(0, keepdim=True) if c == 1 else tint
    region = image[:, :, top : top + alpha.shape[0], left : left + alpha.shape[1]]
    a = alpha[None, None]
    region.mul_(1 - a).add_(region * tint.view(1, -1, 1, 1) * a)  # a stain darkens and tints (multiply)
    m = mask[:, :, top : top + alpha.shape[0], left : left + alpha.shape[1]]
    m[:, :, alpha >= STAIN_MASK_OPACITY] = 1.0


def _tear(image: Tensor, mask: Tensor, rng: np.random.Generator) -> None:
    """A torn-off corner: beyond a jagged line, paper (near white) or the scanner's dark lid."""
    _, c, h, w = image.shape
    side = min(h, w)
    a, b = _u(rng, 0.08, 0.35) * side, _u(rng, 0.08, 0.35) * side
    # jagged edge from (a, 0) to (0, b) in corner coordinates, by midpoint displacement
    edge = np.array([[a, 0.0], [0.0, b]])
    for _ in range(5):
        mids = (edge[:-1] + edge[1:]) / 2 + rng.normal(0, 0.04 * (a + b) / 2, (len(edge) - 1, 2))
        edge = np.insert(edge, np.arange(1, len(edge)), mids, axis=0)
    ys = torch.arange(h, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(w, dtype=torch.float32)[None, :] + 0.5
    corner = int(rng.integers(0, 4))
    u = xs if corner in (0, 3) else w - xs  # distance from the corner's vertical edge
    v = ys if corner in (0, 1) else h - ys
    # inside the tear: the point lies on the corner's side of the polyline; sample the edge as a function
    order = np.argsort(edge[:, 0])
    limit = np.interp(u.numpy().ravel(), edge[order, 0], edge[order, 1], right=-1.0)
    inside = v < torch.from_numpy(limit).float().view(u.shape)
    inside = inside & (u < a)
    paper = rng.random() < 0.6
    colour = _tone(rng, c, paper)
    image.copy_(torch.where(inside, colour.view(1, c, 1, 1), image))
    mask[:, :, inside] = 1.0


# --------------------------------------------------------------------------------------------
# the whole recipe


def _render_item(image: Tensor, config: DamageConfig, seed: int, item: int) -> tuple[Tensor, Tensor]:
    streams = np.random.SeedSequence([seed, item]).spawn(len(_STREAMS))
    rng = {name: np.random.default_rng(s) for name, s in zip(_STREAMS, streams, strict=True)}
    c = image.shape[1]
    image = image.clone()
    mask = torch.zeros(1, 1, *image.shape[-2:])
    # ageing of the print (global)
    if c == 3 and rng["grey"].random() < config.grey_probability:
        image = TF.rgb_to_grayscale(image, num_output_channels=3)
    if c == 3 and rng["sepia"].random() < config.sepia_probability:
        strength = _u(rng["sepia"], 0.4, 1.0)
        luma = TF.rgb_to_grayscale(image, num_output_channels=3)
        toned = (luma * torch.tensor(SEPIA).view(1, 3, 1, 1)).clamp(0, 1)
        image = image + strength * (toned - image)
    if rng["fade"].random() < config.fade_probability:
        keep = _u(rng["fade"], *config.fade)
        paper = _u(rng["fade"], 0.55, 0.85)
        image = paper + keep * (image - paper)
    if rng["grain"].random() < config.grain_probability:
        sigma = _u(rng["grain"], *config.grain_sigma) / 255.0
        generator = torch.Generator().manual_seed(int(rng["grain"].integers(0, 2**63 - 1)))
        image = image + torch.randn((1, 1, *image.shape[-2:]), generator=generator) * sigma
    image = image.clamp(0, 1)
    # local damage (the mask)
    if rng["clean"].random() >= config.clean_probability:
        _scratches(image, mask, rng["scratches"], config, hairs=False)
        _scratches(image, mask, rng["hairs"], config, hairs=True)
        _specks(image, mask, rng["specks"], config)
        if rng["crease"].random() < config.crease_probability:
            _crease(image, mask, rng["crease"])
        if rng["stain"].random() < config.stain_probability:
            _stain(image, mask, rng["stain"])
        if rng["tear"].random() < config.tear_probability:
            _tear(image, mask, rng["tear"])
    # the scan (global)
    if rng["blur"].random() < config.blur_probability:
        sigma = _u(rng["blur"], *config.blur_sigma)
        size = 2 * math.ceil(3 * sigma) + 1
        if min(image.shape[-2:]) > size // 2:
            image = TF.gaussian_blur(image, [size, size], [sigma, sigma])
    if rng["jpeg"].random() < config.jpeg_probability:
        image = jpeg(image.clamp(0, 1), int(rng["jpeg"].integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)))
    return image.clamp(0, 1), mask


def render(image: Tensor, seed: int = 0, config: DamageConfig = DAMAGE) -> tuple[Tensor, Tensor]:
    """Damage each item of `image` [B, C, H, W] in [0, 1] (C = 1 or 3) like an old scanned print.

    Returns (damaged [B, C, H, W] float32 in [0, 1], mask [B, 1, H, W] float32 of 0/1, 1 = destroyed),
    both on the input's device. See the module doc for what is drawn and how it is seeded.
    """
    validate_image(image, channels=(1, 3))
    if not isinstance(config, DamageConfig):
        raise ValueError(f"config must be a DamageConfig, got {type(config).__name__}")
    seed = _check_seed(seed)
    batch, channels, height, width = image.shape
    memory.require(4 * (3 * image.numel() + 16 * channels * height * width),
                   f"rendering damage on {batch} image(s) of {width}x{height}", "lower the batch or the size")
    device = image.device
    source = image.detach().to("cpu", torch.float32)
    pairs = [_render_item(source[i : i + 1], config, seed, i) for i in range(batch)]
    damaged = torch.cat([p[0] for p in pairs]).to(device)
    mask = torch.cat([p[1] for p in pairs]).to(device)
    return damaged.contiguous(), mask.contiguous()
