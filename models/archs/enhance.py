"""The `enhance` generator: a residual U-Net with a global-context branch, for restoration and enhancement.

Why this shape:

* **Residual on the input.** A restored photo is the degraded one plus a correction, mostly small
  (noise, ringing, a tone curve). Predicting the correction keeps every detail the network does not
  touch and makes an untrained or weak model fail towards "unchanged" rather than towards blur.
* **U-Net after a pixel unshuffle.** Denoising and deblurring need a receptive field of tens of
  pixels, which a few stride-2 levels give cheaply. The first operation folds 2x2 pixels into
  channels (as FFDNet does), so no convolution runs at full resolution: on two CPU cores this is
  what makes megapixel images affordable. Decoder levels add (not concatenate) their skips. No
  normalisation layers: a tile must not see statistics of its own, or tiles would disagree.
* **Global context from a thumbnail.** Exposure, contrast and colour casts are properties of the
  whole picture, not of a tile. A small encoder looks at the image resized to `context_size` and
  yields (a) a monotone tone curve per channel (`curve_knots` linear pieces; exposure and gamma are
  curves, which no per-pixel linear map can express), (b) a 3x3 colour matrix and offset applied
  after it, and (c) FiLM scales and shifts for the bottleneck; all start at the identity. Large
  images are processed in tiles (`models.enhance`), and every tile gets the context of the whole
  image, so tiling does not change the global correction.
* **An optional tone stage in front** (`tone_knots` > 0). The context branch's features also set the
  restorer's FiLM, so teaching it exposure would move the denoising too. The tone stage is a separate
  small encoder (its own features, the channels' mean, spread and 1 / 50 / 99 % quantiles, a hidden
  layer) that gives a monotone curve per channel and a colour matrix, applied to the input before
  anything else (the noise level is measured after it). It starts as the identity, so it can be added
  to a trained restorer and trained alone (`models.train.enhance`, stage "tone"). With `tone_gate` it
  also gives a gate in [0, 1] that scales its whole correction: a photo it judges right as it is
  passes through exactly (gate 0), where a regressed curve is only ever near the identity. With
  `tone_encoder="vgg"` the stage reads a 64 px thumbnail through a fixed, ImageNet-trained VGG-16 (the
  channel means and spreads of relu4_3) instead of its own CNN: whether a dark picture is a dark scene
  or an under-exposed one is a question about what it shows, which a few hundred training photos
  cannot teach (the colouriser of `colorize.py` reads photos the same way). "both" reads with both;
  `add_vgg_reading` widens a trained CNN stage to it, starting from exactly what it did. With
  `tone_gate_encoder` the gate gets a hidden layer of its own that reads what that names, so the gate can
  judge with the VGG-16 while the curve keeps its CNN reading; `add_gate_reading` widens a trained gate to
  it, again starting from exactly what it did. With `tone_levels` the stage also measures three classical
  level corrections on its thumbnail (each channel's 0.5..99.5 % range stretched to the full range, the three
  channels' common range stretched, grey-world gains) and learns how much of each to apply before the curve.
  A curve read from a hidden layer has to learn a division to find the black and white points; the measured
  corrections hand them over, and the stage learns when and how much of each to use.

Values are in [-1, 1] (the task function converts); the output is not clamped here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architecture import Architecture, SizeRule
from .vgg import VGG16Features

MAX_LEVELS = 6
MAX_CONTEXT_SIZE = 1024
GUIDE_RANGES = (1.5, 3.0)  # bilateral range scales, in multiples of the measured noise level
GUIDE_RADIUS = 3  # bilateral window 7x7
GUIDE_SPATIAL_SIGMA = 2.0
NOISE_CROP = 1024  # the noise level is measured on at most this centre square
NOISE_ESTIMATORS = ("mad", "blocks")
NOISE_BLOCK = 8  # "blocks": side of the squares whose high-pass energy is ranked
NOISE_QUANTILE = 0.1  # "blocks": the rank taken (the quietest tenth of the image)
NOISE_BLOCK_GAIN = 0.793  # "blocks": that rank's RMS over the true sigma on pure Gaussian noise (measured)
NOISE_MAP_SCALE = 5.0  # the noise map's value per unit of noise level (sigma 25/255 -> about 1)
MIX_PRIOR = 4.0  # initial logit of the input in the output mix (weight ~0.96 with two guides)
BLOCK = 8  # the JPEG block side the block guide measures its range on
BLOCKING_FLOOR = 2.0  # levels of 255: below it the block guide is the input (clean photos: about 1, JPEG q 50: 9)
BLOCK_GUIDE_LEAD = 2.0  # a block guide added to a trained network starts with the input's logit plus this
MAX_TONE_KNOTS = 64
TONE_QUANTILES = (0.01, 0.5, 0.99)  # the tone stage's per-channel statistics, besides mean and spread
TONE_HIDDEN = 64
TONE_ENCODERS = ("cnn", "vgg", "both")  # what the tone stage reads its thumbnail with (see ToneEncoder)
TONE_VGG_LAYER = "relu4_3"  # tone_encoder "vgg": the VGG-16 layer whose channel means and spreads it reads
TONE_VGG_CHANNELS = 512
TONE_VGG_SIZE = 64  # tone_encoder "vgg": the thumbnail side the VGG-16 sees
TONE_LEVEL_QUANTILES = (0.005, 0.995)  # tone_levels: the range a stretch maps to 0..1
TONE_LEVELS = ("channels", "joint", "grey")  # tone_levels: the classical corrections, in the output's order
TONE_GATE_SPAN = (-1.0, 2.0)  # the gate's pre-activation is clamped to [0, 1] on the way out, but passes
# gradients on as if unclamped inside this span (a straight-through estimate), so a closed gate can reopen


@dataclass(frozen=True)
class EnhanceConfig:
    channels: int = 3
    base_channels: int = 32  # channels after the unshuffle; doubled at each level
    levels: int = 2  # stride-2 levels after the unshuffle
    blocks: int = 2  # residual blocks at the lowest resolution
    context: bool = True  # the global-context branch (colour matrix + FiLM)
    context_size: int = 128  # thumbnail side the context branch sees
    curve_knots: int = 0  # pieces of the per-channel tone curve (0 = no curve)
    guide: bool = False  # bilateral-filtered copies and a noise-level map as extra inputs (needs context)
    noise_estimator: str = "mad"  # how the guides measure the noise level (see noise_level)
    block_guide: bool = False  # one more bilateral guide, its range the measured JPEG blocking (needs guide)
    tone_knots: int = 0  # > 0: a tone stage in front (curve of this many pieces + colour matrix; needs context)
    tone_gate: bool = False  # the tone stage's correction scaled by a learnt gate in [0, 1] (needs tone_knots)
    tone_encoder: str = "cnn"  # the tone stage reads with its own small CNN, a fixed ImageNet VGG-16, or both
    tone_gate_encoder: str = ""  # "": the gate reads the curve's hidden layer; else its own, reading with this
    tone_levels: bool = False  # the tone stage blends measured level stretches and grey-world gains in first

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.base_channels < 4 or self.levels < 0 or self.blocks < 0:
            raise ValueError(
                f"need base_channels >= 4, levels >= 0, blocks >= 0; got {self.base_channels}, {self.levels}, "
                f"{self.blocks}"
            )
        if self.levels > MAX_LEVELS:
            raise ValueError(f"levels must be <= {MAX_LEVELS} (sizes would be multiples of {2 ** (MAX_LEVELS + 1)}), "
                             f"got {self.levels}")
        if not 16 <= self.context_size <= MAX_CONTEXT_SIZE:
            raise ValueError(f"context_size must be in [16, {MAX_CONTEXT_SIZE}], got {self.context_size}")
        if self.curve_knots < 0 or (self.curve_knots and not self.context):
            raise ValueError(f"curve_knots must be >= 0 and needs context=True, got {self.curve_knots}")
        if self.guide and not self.context:
            raise ValueError("guide=True needs context=True (the noise level is measured on the whole image)")
        if not 0 <= self.tone_knots <= MAX_TONE_KNOTS or (self.tone_knots and not self.context):
            raise ValueError(f"tone_knots must be in [0, {MAX_TONE_KNOTS}] and needs context=True, got "
                             f"{self.tone_knots}")
        if self.tone_gate and not self.tone_knots:
            raise ValueError("tone_gate=True needs a tone stage (tone_knots > 0)")
        if self.tone_encoder not in TONE_ENCODERS or (self.tone_encoder != "cnn" and not self.tone_knots):
            raise ValueError(f"tone_encoder must be one of {TONE_ENCODERS}, and the VGG-16 needs a tone stage "
                             f"(tone_knots > 0); got {self.tone_encoder!r} with tone_knots {self.tone_knots}")
        if self.tone_gate_encoder and (self.tone_gate_encoder not in TONE_ENCODERS or not self.tone_gate):
            raise ValueError(f"tone_gate_encoder must be '' or one of {TONE_ENCODERS}, and needs tone_gate=True; got "
                             f"{self.tone_gate_encoder!r} with tone_gate {self.tone_gate}")
        if self.tone_levels and (not self.tone_knots or self.channels != 3):
            raise ValueError(f"tone_levels=True needs a tone stage (tone_knots > 0) on 3-channel images, got "
                             f"tone_knots {self.tone_knots} and {self.channels} channels")
        if self.block_guide and not self.guide:
            raise ValueError("block_guide=True needs guide=True (it is one more of the guides)")
        if self.noise_estimator not in NOISE_ESTIMATORS:
            raise ValueError(f"noise_estimator must be one of {NOISE_ESTIMATORS}, got {self.noise_estimator!r}")

    @property
    def tone_reads(self) -> frozenset[str]:
        """What the tone stage reads its thumbnail with, curve and gate together: a subset of {"cnn", "vgg"}."""
        if not self.tone_knots:
            return frozenset()
        names = {self.tone_encoder, self.tone_gate_encoder or self.tone_encoder}
        return frozenset(r for r in ("cnn", "vgg") if any(n in (r, "both") for n in names))

    @property
    def size_multiple(self) -> int:
        """Height and width the network needs to be multiples of (the task function pads)."""
        return 2 ** (self.levels + 1)

    @property
    def input_channels(self) -> int:
        return self.channels

    @property
    def mixed(self) -> int:
        """Images the output mixes before its residual: the input, and the guides."""
        return 1 + len(GUIDE_RANGES) + self.block_guide if self.guide else 1

    @property
    def bottom_channels(self) -> int:
        return self.base_channels * 2**self.levels


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = _act()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


def recolour(x: Tensor, curve: Tensor | None, matrix: Tensor, offset: Tensor) -> Tensor:
    """x [B,C,H,W] through a tone curve (increments [B,C,K], or None), then a colour matrix [B,C,C] and offset."""
    if curve is not None:
        x = apply_curve(x, curve)
    return torch.einsum("bij,bjhw->bihw", matrix, x) + offset[:, :, None, None]


@dataclass
class Tone:
    """The tone stage's correction of one image: a curve per channel, then a colour matrix and offset, the
    change scaled by a gate in [0, 1] when the stage has one."""

    curve: Tensor  # [B, C, knots]: increments summing to 1
    matrix: Tensor  # [B, C, C]
    offset: Tensor  # [B, C]
    gate: Tensor | None = None  # [B]: 0 = the image passes through unchanged, 1 = the whole correction
    levels: Tensor | None = None  # [B, C, 2]: a scale and shift per channel (on [-1, 1]) before the curve

    def to(self, dtype: torch.dtype) -> Tone:
        gate = None if self.gate is None else self.gate.to(dtype)
        levels = None if self.levels is None else self.levels.to(dtype)
        return Tone(self.curve.to(dtype), self.matrix.to(dtype), self.offset.to(dtype), gate, levels)

    def apply(self, x: Tensor) -> Tensor:
        y = x
        if self.levels is not None:
            y = y * self.levels[:, :, None, None, 0] + self.levels[:, :, None, None, 1]
        y = recolour(y, self.curve, self.matrix, self.offset)
        if self.gate is None:
            return y
        return torch.lerp(x, y, self.gate[:, None, None, None])


@dataclass
class Context:
    """The whole image's corrections, computed once and given to every tile."""

    matrix: Tensor  # [B, C, C]
    offset: Tensor  # [B, C]
    scale: Tensor  # [B, bottom channels]
    shift: Tensor  # [B, bottom channels]
    curve: Tensor | None  # [B, C, knots]: the increments of a monotone curve on [0, 1], summing to 1
    noise: Tensor | None = None  # [B]: the noise level (standard deviation on the [-1, 1] scale), float32
    blocking: Tensor | None = None  # [B]: the JPEG blocking level (same scale), with a block guide
    tone: Tone | None = None  # the tone stage's correction, applied to the input first (noise measured after it)

    def to(self, dtype: torch.dtype) -> Context:
        curve = None if self.curve is None else self.curve.to(dtype)
        tone = None if self.tone is None else self.tone.to(dtype)
        return Context(self.matrix.to(dtype), self.offset.to(dtype), self.scale.to(dtype), self.shift.to(dtype), curve,
                       self.noise, self.blocking, tone)

    def recolour(self, x: Tensor) -> Tensor:
        """The global correction (tone curve, then colour matrix and offset) applied to x."""
        return recolour(x, self.curve, self.matrix, self.offset)


def noise_level(x: Tensor, estimator: str = "mad") -> Tensor:
    """Per-image noise standard deviation of x [B,C,H,W] (any scale), float32 [B].

    Both estimators read the high-pass [[1,-2,1],[-2,4,-2],[1,-2,1]] / 6 (unit gain on white noise), per
    channel, averaged over channels, on at most the centre NOISE_CROP square:

    * ``"mad"``: its median absolute response over 0.6745. Fine texture passes the high-pass too, so a
      clean detailed photo reads as noisy (2.7 levels of 255 on average on sharp photos, up to 11 on
      grass).
    * ``"blocks"``: the RMS response of each NOISE_BLOCK square, the NOISE_QUANTILE rank of those, over
      NOISE_BLOCK_GAIN: the quietest squares (sky, walls) say how much of the response is noise. Less
      fooled by texture (1.8 levels on the same clean photos), unbiased on pure noise.
    """
    h, w = x.shape[-2:]
    top, left = max(0, (h - NOISE_CROP) // 2), max(0, (w - NOISE_CROP) // 2)
    x = x[..., top : top + NOISE_CROP, left : left + NOISE_CROP].float()
    if min(x.shape[-2:]) < 3:
        return x.new_zeros(x.shape[0])
    kernel = x.new_tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]]) / 6.0
    b, c = x.shape[:2]
    response = F.conv2d(x.reshape(b * c, 1, *x.shape[-2:]), kernel[None, None])
    if estimator == "mad":
        level = response.abs().flatten(1).median(dim=1).values / 0.6745
    elif estimator == "blocks":
        block = min(NOISE_BLOCK, *response.shape[-2:])
        energy = F.avg_pool2d(response.square(), block).flatten(1)
        level = energy.quantile(NOISE_QUANTILE, dim=1).sqrt() / NOISE_BLOCK_GAIN
    else:
        raise ValueError(f"estimator must be one of {NOISE_ESTIMATORS}, got {estimator!r}")
    return level.view(b, c).mean(dim=1)


def blocking_level(x: Tensor) -> Tensor:
    """Per-image JPEG blocking of x [B,C,H,W] (any scale), float32 [B]: the RMS of the extra step across the
    edges of the BLOCK x BLOCK grid that starts at the top-left pixel (where a JPEG's blocks lie), over the
    steps inside the blocks, on the channel mean and at most the centre NOISE_CROP square (cut on the grid).

    Near 0 without JPEG (texture and noise step alike everywhere); at 256 px, JPEG quality 20 measures about
    13 levels of 255 and quality 50 about 9, where a bilateral filter of that range removes the blocking.
    """
    h, w = x.shape[-2:]
    top, left = max(0, (h - NOISE_CROP) // 2) // BLOCK * BLOCK, max(0, (w - NOISE_CROP) // 2) // BLOCK * BLOCK
    x = x[..., top : top + NOISE_CROP, left : left + NOISE_CROP].float().mean(dim=1)
    if min(x.shape[-2:]) <= BLOCK:
        return x.new_zeros(x.shape[0])
    across = (x[..., :, 1:] - x[..., :, :-1]).square()  # the step from column j to j + 1
    down = (x[..., 1:, :] - x[..., :-1, :]).square()
    on_x = torch.arange(across.shape[-1], device=x.device) % BLOCK == BLOCK - 1
    on_y = torch.arange(down.shape[-2], device=x.device) % BLOCK == BLOCK - 1
    edge = torch.cat([across[..., on_x].flatten(1), down[..., on_y, :].flatten(1)], dim=1).mean(dim=1)
    inner = torch.cat([across[..., ~on_x].flatten(1), down[..., ~on_y, :].flatten(1)], dim=1).mean(dim=1)
    return (edge - inner).clamp(min=0).sqrt()


def bilateral(x: Tensor, ranges: Tensor) -> Tensor:
    """Bilateral filters of x [B,C,H,W] for each range scale in `ranges` [B, R]: returns [B, R, C, H, W].

    A GUIDE_RADIUS window with Gaussian spatial weights (GUIDE_SPATIAL_SIGMA); the range weight uses the
    squared colour distance averaged over channels. Reflect padding; float32 whatever x's dtype.
    """
    x = x.float()
    b, c, h, w = x.shape
    r = GUIDE_RADIUS
    padded = F.pad(x, (r, r, r, r), mode="reflect" if min(h, w) > r else "replicate")
    negative_inverse = (-1.0 / (2.0 * ranges.float().clamp(min=1e-4) ** 2))[:, :, None, None]  # [B,R,1,1]
    count = ranges.shape[1]
    num = x.new_zeros(b, count, c, h, w)
    den = x.new_zeros(b, count, h, w)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            shifted = padded[:, :, r + dy : r + dy + h, r + dx : r + dx + w]
            distance = torch.sub(shifted, x).square_().mean(dim=1)[:, None]  # [B,1,H,W]
            weight = torch.exp(distance * negative_inverse - (dx * dx + dy * dy) / (2 * GUIDE_SPATIAL_SIGMA**2))
            den += weight
            for i in range(count):
                num[:, i].addcmul_(shifted, weight[:, i : i + 1])
    return num / den[:, :, None]


def apply_curve(x: Tensor, increments: Tensor) -> Tensor:
    """The piecewise-linear monotone curve with `increments` [B,C,K] applied to x [B,C,H,W] in [-1, 1]."""
    b, c, h, w = x.shape
    knots = increments.shape[-1]
    start = torch.cumsum(increments, dim=-1) - increments  # curve value at the left end of each piece
    position = ((x + 1) * 0.5).clamp(0, 1).reshape(b, c, h * w) * knots
    index = position.floor().clamp(max=knots - 1)
    frac = position - index
    index = index.long()
    y = start.gather(-1, index) + increments.gather(-1, index) * frac
    return (y * 2 - 1).reshape(b, c, h, w)


def _thumbnail_features(channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = channels
    for w in (16, 32, 64, 128):
        layers += [nn.Conv2d(prev, w, 3, stride=2, padding=1), _act()]
        prev = w
    return nn.Sequential(*layers)


def _thumbnail(x: Tensor, size: int) -> Tensor:
    # antialiased resizing has no bf16 kernel on CPU: resize in float32, continue in the input's dtype
    return F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True).to(x.dtype)


def classical_levels(thumb: Tensor) -> Tensor:
    """[B, len(TONE_LEVELS), C, 2]: the scale and shift (on [-1, 1]) per channel of each classical level
    correction that `TONE_LEVELS` names, measured on `thumb` [B, C, H, W] in [-1, 1] (float32)."""
    v = (thumb.float().flatten(2) + 1) * 0.5
    lo, hi = torch.quantile(v, v.new_tensor(TONE_LEVEL_QUANTILES), dim=2)  # [B, C] each
    scales, shifts = [], []
    for low, high in ((lo, hi), (lo.amin(1, keepdim=True).expand_as(lo), hi.amax(1, keepdim=True).expand_as(hi))):
        scale = 1 / (high - low).clamp(min=0.02)  # a flat channel is stretched at most 50 times
        scales.append(scale)
        shifts.append(-low * scale)
    means = v.mean(dim=2).clamp(min=1e-3)
    scales.append(means.mean(dim=1, keepdim=True) / means)
    shifts.append(torch.zeros_like(means))
    scale, shift = torch.stack(scales, 1), torch.stack(shifts, 1)  # on [0, 1]: y = scale * v + shift
    return torch.stack([scale, scale - 1 + 2 * shift], dim=-1)  # the same map on [-1, 1]


def _stats_width(channels: int, reads: str) -> int:
    """Width of what a tone hidden layer reading with `reads` ("cnn", "vgg" or "both") gets; see `_stats`."""
    cnn, vgg = reads in ("cnn", "both"), reads in ("vgg", "both")
    return 128 * cnn + channels * (2 + len(TONE_QUANTILES)) + 2 * TONE_VGG_CHANNELS * vgg


def _stats(parts: dict[str, Tensor], reads: str) -> Tensor:
    """[CNN features, channel statistics, VGG-16 statistics], the readers `reads` names, in that order."""
    names = {"cnn": ("cnn", "stats"), "vgg": ("stats", "vgg"), "both": ("cnn", "stats", "vgg")}[reads]
    return torch.cat([parts[n] for n in names], dim=1)


class ToneEncoder(nn.Module):
    """Thumbnail -> `Tone` (a monotone curve per channel, then a colour matrix and offset); starts as the identity."""

    def __init__(self, config: EnhanceConfig) -> None:
        super().__init__()
        c = config.channels
        self.size, self.knots = config.context_size, config.tone_knots
        self.reads = config.tone_encoder
        reads = config.tone_reads
        self.features = _thumbnail_features(c) if "cnn" in reads else None
        # fixed: trained on ImageNet, it knows what scenes look like
        self.vgg = VGG16Features("blur", last=TONE_VGG_LAYER).requires_grad_(False) if "vgg" in reads else None
        # a hidden layer reads [CNN features, channel statistics, VGG-16 statistics]
        self.hidden = nn.Sequential(nn.Linear(_stats_width(c, self.reads), TONE_HIDDEN), _act())
        self.out = nn.Linear(TONE_HIDDEN, c * self.knots + c * c + c)
        nn.init.zeros_(self.out.weight)  # equal increments (a straight curve), the identity matrix, no offset
        nn.init.zeros_(self.out.bias)
        self.gate_reads = config.tone_gate_encoder
        self.gate_hidden = (nn.Sequential(nn.Linear(_stats_width(c, self.gate_reads), TONE_HIDDEN), _act())
                            if self.gate_reads else None)
        # how much of each classical level correction goes in before the curve: none to begin with
        self.levels = nn.Linear(TONE_HIDDEN, len(TONE_LEVELS)) if config.tone_levels else None
        if self.levels is not None:
            nn.init.zeros_(self.levels.weight)
            nn.init.zeros_(self.levels.bias)
        self.gate = nn.Linear(TONE_HIDDEN, 1) if config.tone_gate else None
        if self.gate is not None:  # starts open: a trained stage it is added to keeps its behaviour
            nn.init.zeros_(self.gate.weight)
            nn.init.ones_(self.gate.bias)

    def forward(self, x: Tensor) -> Tone:
        thumb = _thumbnail(x, self.size)
        b, c = x.shape[:2]
        flat = thumb.float().flatten(2)
        quantiles = torch.quantile(flat, flat.new_tensor(TONE_QUANTILES), dim=2).permute(1, 0, 2).flatten(1)
        parts = {"stats": torch.cat([flat.mean(dim=2), flat.std(dim=2), quantiles], dim=1)}
        if self.features is not None:
            parts["cnn"] = self.features(thumb).mean(dim=(2, 3)).float()
        if self.vgg is not None:
            parts["vgg"] = self._read_vgg(thumb)
        hidden = self.hidden(_stats(parts, self.reads).to(thumb.dtype))
        out = self.out(hidden).float()
        k = c * self.knots
        curve = torch.softmax(out[:, :k].view(b, c, self.knots), dim=-1)
        matrix = torch.eye(c, device=x.device) + out[:, k : k + c * c].view(b, c, c)
        levels = None
        if self.levels is not None:  # the identity plus the chosen amounts of each correction's change
            weights = self.levels(hidden).float()  # [B, len(TONE_LEVELS)]
            identity = torch.tensor([1.0, 0.0], device=x.device)
            change = classical_levels(thumb) - identity
            levels = identity + torch.einsum("bk,bkcj->bcj", weights, change)
        gate = None
        if self.gate is not None:
            if self.gate_hidden is not None:
                hidden = self.gate_hidden(_stats(parts, self.gate_reads).to(thumb.dtype))
            z = self.gate(hidden).float()[:, 0].clamp(*TONE_GATE_SPAN)
            gate = z + (z.clamp(0.0, 1.0) - z).detach()  # forward: clamped to [0, 1]; backward: straight through
        return Tone(curve, matrix, out[:, k + c * c :], gate, levels)

    def _read_vgg(self, thumb: Tensor) -> Tensor:
        """[B, 2 * TONE_VGG_CHANNELS] float32: the VGG-16's channel means and spreads on a small thumbnail."""
        rgb = (_thumbnail(thumb, TONE_VGG_SIZE) + 1.0) * 0.5
        maps = self.vgg(rgb.expand(-1, 3, -1, -1)).float()
        return torch.cat([maps.mean(dim=(2, 3)), maps.std(dim=(2, 3))], dim=1)


class ContextEncoder(nn.Module):
    """Thumbnail -> `Context` (tone curve, colour matrix and offset, FiLM scale and shift)."""

    def __init__(self, config: EnhanceConfig) -> None:
        super().__init__()
        self.features = _thumbnail_features(config.channels)
        prev = 128
        self.size = config.context_size
        self.guide = config.guide
        self.block_guide = config.block_guide
        self.noise_estimator = config.noise_estimator
        c = config.channels
        # pooled features + the thumbnail's own per-channel mean and std
        self.colour = nn.Linear(prev + 2 * c, c * c + c)
        self.film = nn.Linear(prev + 2 * c, 2 * config.bottom_channels)
        self.curve = nn.Linear(prev + 2 * c, c * config.curve_knots) if config.curve_knots else None
        # start as the identity: no colour change, FiLM scale 1 shift 0, equal curve increments (a straight line)
        for head in (self.colour, self.film, self.curve):
            if head is not None:
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def forward(self, x: Tensor) -> Context:
        thumb = _thumbnail(x, self.size)
        pooled = self.features(thumb).mean(dim=(2, 3))
        stats = torch.cat([pooled, thumb.mean(dim=(2, 3)), thumb.std(dim=(2, 3))], dim=1)
        c = x.shape[1]
        colour = self.colour(stats)
        matrix = torch.eye(c, device=x.device, dtype=colour.dtype) + colour[:, : c * c].view(-1, c, c)
        offset = colour[:, c * c :]
        scale, shift = self.film(stats).chunk(2, dim=1)
        curve = None
        if self.curve is not None:
            curve = torch.softmax(self.curve(stats).float().view(x.shape[0], c, -1), dim=-1).to(x.dtype)
        noise = noise_level(x, self.noise_estimator) if self.guide else None
        blocking = blocking_level(x) if self.block_guide else None
        return Context(matrix, offset, 1 + scale, shift, curve, noise, blocking)


class EnhanceNet(nn.Module):
    """Degraded image [B,C,H,W] in [-1,1] (H, W multiples of `config.size_multiple`) -> restored image."""

    def __init__(self, config: EnhanceConfig) -> None:
        super().__init__()
        self.config = c = config
        folded = c.channels * 4
        inputs = (c.channels * c.mixed + (1 if c.guide else 0)) * 4  # images (+ the noise map), unshuffled
        widths = [c.base_channels * 2**i for i in range(c.levels + 1)]
        self.head = nn.Sequential(nn.Conv2d(inputs, widths[0], 3, padding=1), _act(), ResBlock(widths[0]))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1), _act(), ResBlock(widths[i + 1]))
            for i in range(c.levels)
        )
        self.bottom = nn.Sequential(*(ResBlock(widths[-1]) for _ in range(c.blocks)))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i + 1], widths[i], 3, padding=1), _act()) for i in range(c.levels)
        )
        # the residual, and (with guides) the logits of the output mix, 2x2-folded
        self.tail = nn.Conv2d(widths[0], folded + (4 * c.mixed if c.guide else 0), 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # start as the identity on the input
        nn.init.zeros_(self.tail.bias)
        if c.guide:
            with torch.no_grad():
                self.tail.bias[folded : folded + 4] = MIX_PRIOR  # the input's logit, for the 4 folded pixels
        self.context = ContextEncoder(c) if c.context else None
        self.tone = ToneEncoder(c) if c.tone_knots else None

    def _guides(self, x: Tensor, context: Context) -> list[Tensor]:
        """The bilateral guides of x, recoloured like the input: GUIDE_RANGES times the measured noise level,
        then the measured blocking if the config has a block guide."""
        noise = context.noise.to(x.device)
        ranges = noise[:, None] * noise.new_tensor(GUIDE_RANGES)
        if not self.config.block_guide:
            return [context.recolour(f.to(x.dtype)) for f in bilateral(x, ranges).unbind(dim=1)]
        blocking = context.blocking.to(x.device)
        blocked = blocking >= BLOCKING_FLOOR * 2.0 / 255.0  # x spans 2 per 255 levels
        if not blocked.any():  # the third range is not computed at all: the block guide is the input itself
            filtered = [*bilateral(x, ranges).unbind(dim=1), x]
        else:
            *filtered, block = bilateral(x, torch.cat([ranges, blocking[:, None]], dim=1)).unbind(dim=1)
            filtered.append(torch.where(blocked[:, None, None, None], block, x))
        return [context.recolour(f.to(x.dtype)) for f in filtered]

    def global_context(self, x: Tensor) -> Context | None:
        """The whole-image context; compute it once per image and pass it to every tile."""
        if self.context is None:
            return None
        if self.tone is None:
            return self.context(x)
        tone = self.tone(x)
        context = self.context(tone.to(x.dtype).apply(x))  # exactly what forward feeds the restorer
        context.tone = tone
        return context

    def forward(self, x: Tensor, context: Context | None = None, *, tone_params: bool = False) -> Tensor | Tone:
        """The restored x; with `tone_params`, the tone stage's `Tone` for x instead, which `Tone.apply` applies
        (training that stage reads a picture and corrects a crop with it; a forward, so DDP sees it)."""
        if tone_params:
            if self.tone is None:
                raise ValueError("tone_params needs a network with a tone stage (tone_knots > 0)")
            return self.tone(x)
        m = self.config.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"EnhanceNet needs H and W to be multiples of {m}, got {tuple(x.shape[-2:])}")
        if context is None:
            context = self.global_context(x)
        if context is not None and context.tone is not None:
            x = context.tone.to(x.dtype).apply(x)
        base = x
        guides: list[Tensor] = []
        inputs = [x]
        if context is not None:
            context = context.to(x.dtype)
            base = context.recolour(x)
            inputs = [base]
            if self.config.guide:
                guides = self._guides(x, context)
                level = (context.noise * NOISE_MAP_SCALE).to(x.device, x.dtype)[:, None, None, None]
                # a block guide comes after the noise map, so a file without one widens by appending
                inputs = [base, *guides[: len(GUIDE_RANGES)], level.expand(-1, 1, *x.shape[-2:]),
                          *guides[len(GUIDE_RANGES) :]]
        h = self.head(F.pixel_unshuffle(torch.cat(inputs, dim=1), 2))
        skips = []
        for down in self.down:
            skips.append(h)
            h = down(h)
        if context is not None:
            h = h * context.scale[:, :, None, None] + context.shift[:, :, None, None]
        h = self.bottom(h)
        for up, skip in zip(reversed(self.up), reversed(skips), strict=True):
            h = up(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)) + skip
        out = F.pixel_shuffle(self.tail(h), 2)
        if not self.config.guide:
            return base + out
        c = self.config.channels
        residual, logits = out[:, :c], out[:, c:]
        images = torch.stack([base, *guides], dim=1)  # [B, mixed, C, H, W]
        weights = torch.softmax(logits.float(), dim=1).to(x.dtype)[:, :, None]
        return (weights * images).sum(dim=1) + residual


def add_block_guide(state: dict[str, Tensor], config: EnhanceConfig) -> dict[str, Tensor]:
    """The weights `state` of a guided network without a block guide, widened to `config`, which has one.

    The new guide's input weights are zero and its logit in the output mix is the input's plus BLOCK_GUIDE_LEAD:
    it takes most of the input's share of the mix. Without JPEG blocking the guide is nearly the input itself,
    so the network starts next to the one it came from; with blocking it starts deblocking at once (the logits
    of the mix move slowly in a fine-tune: a tenth of the mix at the start stayed a tenth for 500 steps).
    """
    if not config.block_guide:
        raise ValueError("add_block_guide needs a config with block_guide=True")
    state = dict(state)
    head, tail = state["head.0.weight"], state["tail.weight"]
    new_inputs = 4 * config.channels
    state["head.0.weight"] = torch.cat([head, head.new_zeros(head.shape[0], new_inputs, *head.shape[2:])], dim=1)
    inputs_logit = slice(4 * config.channels, 4 * config.channels + 4)  # after the residual, 2x2-folded
    bias = state["tail.bias"]
    state["tail.weight"] = torch.cat([tail, tail[inputs_logit]])
    state["tail.bias"] = torch.cat([bias, bias[inputs_logit] + BLOCK_GUIDE_LEAD])
    return state


def _with_vgg_columns(weight: Tensor) -> Tensor:
    """A tone hidden layer's weight [hidden, width] with zero columns appended for the VGG-16's statistics."""
    return torch.cat([weight, weight.new_zeros(weight.shape[0], 2 * TONE_VGG_CHANNELS)], dim=1)


def add_vgg_reading(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The weights `state` of a network whose tone stage reads with its CNN, widened to read with both
    (`tone_encoder="both"`): the hidden layer's weights on the VGG-16's statistics start at zero, so the stage
    does exactly what it did until it learns to use them. The VGG-16's own weights are not in it: copy them in."""
    state = dict(state)
    state["tone.hidden.0.weight"] = _with_vgg_columns(state["tone.hidden.0.weight"])
    return state


def add_gate_reading(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The weights `state` of a network whose tone gate reads the curve's hidden layer (a CNN stage), widened
    to give the gate a hidden layer of its own that reads with both (`tone_gate_encoder="both"`): that layer
    starts as a copy of the curve's, with zero weights on the VGG-16's statistics, so the gate does exactly
    what it did until it learns to use them. The VGG-16's own weights are not in it: copy them in."""
    state = dict(state)
    state["tone.gate_hidden.0.weight"] = _with_vgg_columns(state["tone.hidden.0.weight"])
    state["tone.gate_hidden.0.bias"] = state["tone.hidden.0.bias"].clone()
    return state


ARCHITECTURE = Architecture(
    id="enhance_unet",
    config_cls=EnhanceConfig,
    build=EnhanceNet,
    tasks=("enhance",),
    description="Residual U-Net restorer/enhancer with a global colour/FiLM context branch (this pack's own).",
    sizes=lambda config: SizeRule(multiple=config.size_multiple),
    example_configs=(
        EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32, curve_knots=8),
        EnhanceConfig(base_channels=8, levels=2, blocks=0, context=False, curve_knots=0),
        EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32, curve_knots=0),
        EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32, curve_knots=4, guide=True),
        EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32, guide=True, tone_knots=8),
        EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32, guide=True, block_guide=True),
    ),
)
