"""Context Encoder (Pathak et al., "Context Encoders: Feature Learning by Inpainting", CVPR 2016).

Three architectures live here:

* `context_encoder` - the paper's generator, laid out exactly like the public PyTorch port's `_netG`
  (BoyuanJiang/context_encoder_pytorch, `model.py`): one Sequential `main`, no conv biases. A 128x128
  image whose centre is filled with the mean colour goes in, the 64x64 centre comes out (tanh):
  stride-2 4x4 convs (BatchNorm + LeakyReLU 0.2, none on the first) down to 4x4, a 4x4 "valid" conv to
  the 1x1 bottleneck (4000 channels in the paper), then transposed convs (BatchNorm + ReLU) up to 64x64.
  `image_size` generalises the port a little: the bottleneck conv (and the first transposed conv) has
  a kernel of image_size/32, so 64x64 inputs work for small experiments; at 128 the keys and shapes are
  the port's.
* `context_encoder_d` - the paper's local discriminator `_netlocalD`: 64x64 centre patch -> [B, 1]
  probability (sigmoid), used to train the paper model.
* `context_encoder_anymask` - our variant for real use on any mask and any resolution, see
  `AnyMaskContextEncoder`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..architecture import Architecture, SizeRule, StateDict
from . import laplace
from .layers import NORMS, norm_layer

# Decoder upsampling of the any-mask model: nearest-neighbour resize + 3x3 conv (no checkerboard
# artefacts, Odena et al. 2016) or the paper's 4x4 stride-2 transposed convolutions.
UPSAMPLES = ("resize_conv", "transposed")
PREFILLS = ("none", "harmonic")

# The port fills the hole with the mean colour of its training set (train.py: 117, 104, 123 out of
# 255, scaled to [-1, 1]), over the centre minus a 4 px overlap band at 128 px ("overlapPred").
PAPER_FILL_RGB = (117.0 / 255.0, 104.0 / 255.0, 123.0 / 255.0)
PAPER_OVERLAP = 4 / 128


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# --------------------------------------------------------------------------------------------------
# The paper generator (`_netG`)


@dataclass(frozen=True)
class ContextEncoderConfig:
    """`_netG` of the port: nc image channels, nef/ngf encoder/decoder width, bottleneck channels."""

    nc: int = 3
    nef: int = 64
    ngf: int = 64
    bottleneck: int = 4000
    image_size: int = 128

    def __post_init__(self) -> None:
        for name in ("nc", "nef", "ngf", "bottleneck"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not _is_power_of_two(self.image_size) or self.image_size < 64:
            raise ValueError(f"image_size must be a power of two >= 64 (the paper uses 128), got {self.image_size}")

    @property
    def output_size(self) -> int:
        """Side of the predicted centre patch (half the input)."""
        return self.image_size // 2


class ContextEncoder(nn.Module):
    """The paper generator: [B, nc, S, S] with the centre filled -> [B, nc, S/2, S/2] centre, tanh."""

    def __init__(self, config: ContextEncoderConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        k = c.image_size // 32  # 4 at 128: the port's 4x4 valid conv from 4x4 to 1x1
        self.main = nn.Sequential(
            nn.Conv2d(c.nc, c.nef, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            *_down(c.nef, c.nef),
            *_down(c.nef, c.nef * 2),
            *_down(c.nef * 2, c.nef * 4),
            *_down(c.nef * 4, c.nef * 8),
            nn.Conv2d(c.nef * 8, c.bottleneck, k, bias=False),
            nn.BatchNorm2d(c.bottleneck),
            nn.LeakyReLU(0.2, inplace=True),
            nn.ConvTranspose2d(c.bottleneck, c.ngf * 8, k, 1, 0, bias=False),
            nn.BatchNorm2d(c.ngf * 8),
            nn.ReLU(True),
            *_up(c.ngf * 8, c.ngf * 4),
            *_up(c.ngf * 4, c.ngf * 2),
            *_up(c.ngf * 2, c.ngf),
            nn.ConvTranspose2d(c.ngf, c.nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, x: Tensor) -> Tensor:
        c = self.config
        if x.ndim != 4 or tuple(x.shape[1:]) != (c.nc, c.image_size, c.image_size):
            raise ValueError(
                f"the Context Encoder expects [B, {c.nc}, {c.image_size}, {c.image_size}] (image in [-1, 1] with "
                f"the centre filled), got shape {tuple(x.shape)}"
            )
        return self.main(x)


def _down(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]


def _up(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]


# --------------------------------------------------------------------------------------------------
# The paper's local discriminator (`_netlocalD`)


@dataclass(frozen=True)
class ContextEncoderDConfig:
    """`_netlocalD` of the port: nc channels, ndf width, on patch_size x patch_size centre patches."""

    nc: int = 3
    ndf: int = 64
    patch_size: int = 64

    def __post_init__(self) -> None:
        if self.nc < 1 or self.ndf < 1:
            raise ValueError(f"nc and ndf must be >= 1, got {self.nc}, {self.ndf}")
        if not _is_power_of_two(self.patch_size) or self.patch_size < 32:
            raise ValueError(f"patch_size must be a power of two >= 32 (the paper uses 64), got {self.patch_size}")


class ContextEncoderD(nn.Module):
    """The paper's local discriminator: [B, nc, P, P] -> [B, 1] probability of being real."""

    def __init__(self, config: ContextEncoderDConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.main = nn.Sequential(
            nn.Conv2d(c.nc, c.ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            *_down(c.ndf, c.ndf * 2),
            *_down(c.ndf * 2, c.ndf * 4),
            *_down(c.ndf * 4, c.ndf * 8),
            nn.Conv2d(c.ndf * 8, 1, c.patch_size // 16, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        c = self.config
        if x.ndim != 4 or tuple(x.shape[1:]) != (c.nc, c.patch_size, c.patch_size):
            raise ValueError(
                f"the Context Encoder discriminator expects [B, {c.nc}, {c.patch_size}, {c.patch_size}], "
                f"got shape {tuple(x.shape)}"
            )
        return self.main(x).view(-1, 1)


# --------------------------------------------------------------------------------------------------
# The any-mask variant


@dataclass(frozen=True)
class AnyMaskConfig:
    """Any-mask Context Encoder: width, depth (stride = 2**downsamplings), bottleneck blocks, norm.

    `prefill`: ``"none"`` (the network draws the whole fill, tanh output) or ``"harmonic"`` (the hole
    is first filled by Laplace's equation and the network adds a correction to that).
    """

    base_channels: int = 32
    downsamplings: int = 3
    bottleneck_blocks: int = 4
    norm: str = "batch"
    upsample: str = "resize_conv"
    prefill: str = "none"

    def __post_init__(self) -> None:
        if self.prefill not in PREFILLS:
            raise ValueError(f"prefill must be one of {PREFILLS}, got {self.prefill!r}")
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {self.upsample!r}")
        if self.base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {self.base_channels}")
        if not 1 <= self.downsamplings <= 6:
            raise ValueError(f"downsamplings must be in 1..6, got {self.downsamplings}")
        if self.bottleneck_blocks < 0:
            raise ValueError(f"bottleneck_blocks must be >= 0, got {self.bottleneck_blocks}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")

    @property
    def stride(self) -> int:
        """Height and width must be multiples of this."""
        return 2**self.downsamplings

    def channels(self, level: int) -> int:
        """Width after `level + 1` downsamplings: doubling, capped at 4x base."""
        return self.base_channels * 2 ** min(level, 2)




def _upsample(kind: str, cin: int, cout: int, bias: bool) -> list[nn.Module]:
    """Double the resolution: the paper's transposed conv, or resize + conv (no checkerboard)."""
    if kind == "transposed":
        return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=bias)]


def _norm_affine(kind: str, channels: int) -> nn.Module:
    return norm_layer(kind, channels, instance_affine=True)


class DilatedResBlock(nn.Module):
    """x + norm(conv3x3(relu(norm(conv3x3_dilated(x))))): context from far away at low cost."""

    def __init__(self, channels: int, dilation: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, dilation, dilation=dilation, bias=bias),
            _norm_affine(norm, channels),
            nn.ReLU(True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=bias),
            _norm_affine(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class AnyMaskContextEncoder(nn.Module):
    """Context Encoder for any mask at any size: [B, 4, H, W] -> [B, 3, H, W], tanh.

    Input: the image in [-1, 1] with the hole set to 0, and the mask (1 = hole) as a 4th channel, so
    the network knows which zeros are missing and which are grey. Output: the whole image; the task
    function keeps the known pixels and takes only the hole from it.

    Choices, and why:
    * The encoder is the paper's: stride-2 4x4 convs with norm + LeakyReLU 0.2 (none on the first).
      The decoder mirrors it with norm + ReLU and tanh at the end, no skip connections; it doubles the
      resolution by nearest resize + 3x3 conv (`upsample="resize_conv"`, the default) because the
      paper's 4x4 stride-2 transposed convs (`"transposed"`) leave checkerboard artefacts in the fill.
    * The paper's bottleneck is a fully-connected layer (a "valid" conv to 1x1), which ties the model
      to one input size and costs most of its parameters (64 M at 4000 channels). Here it is replaced
      by residual blocks of 3x3 convs at the lowest resolution whose first conv is dilated
      1, 2, 4, 8, 1, 2, ...: the receptive field grows to several hundred pixels (about 340 px for the
      default) while every layer stays convolutional, so any H, W that is a multiple of `stride` works.
    * Width doubles per downsampling but is capped at 4x base: the bottleneck blocks dominate the
      cost, and 128 channels at 1/8 resolution keep the default at about 1.5 M parameters and ~1 GMAC
      for a 192x192 crop (128x128 hole plus context), i.e. tens of ms on 2 CPU cores and trainable
      on a CPU in minutes.
    * BatchNorm by default like the paper; "instance" or "none" for small-batch training.
    * `prefill="harmonic"` starts from a classical fill instead of from nothing: the hole is set to
      the harmonic fill of `models.archs.laplace` (the classical ``harmonic``: smooth, and on its own
      already better in hole PSNR than the learnt L1 fill) before the encoder sees it, and the output
      is that image plus a correction from a zero-initialised last conv, so an untrained model returns the
      harmonic fill.
    """

    def __init__(self, config: AnyMaskConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        bias = c.norm == "none"
        down: list[nn.Module] = [nn.Conv2d(4, c.channels(0), 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for level in range(1, c.downsamplings):
            down += [
                nn.Conv2d(c.channels(level - 1), c.channels(level), 4, 2, 1, bias=bias),
                _norm_affine(c.norm, c.channels(level)),
                nn.LeakyReLU(0.2, True),
            ]
        width = c.channels(c.downsamplings - 1)
        up: list[nn.Module] = []
        for level in range(c.downsamplings - 1, 0, -1):
            up += [
                *_upsample(c.upsample, c.channels(level), c.channels(level - 1), bias),
                _norm_affine(c.norm, c.channels(level - 1)),
                nn.ReLU(True),
            ]
        up += _upsample(c.upsample, c.channels(0), 3, True)
        if c.prefill == "none":
            up.append(nn.Tanh())
        else:
            nn.init.zeros_(up[-1].weight)
            nn.init.zeros_(up[-1].bias)
        self.encoder = nn.Sequential(*down)
        self.bottleneck = nn.Sequential(
            *(DilatedResBlock(width, 2 ** (i % 4), c.norm) for i in range(c.bottleneck_blocks))
        )
        self.decoder = nn.Sequential(*up)

    def forward(self, x: Tensor) -> Tensor:
        s = self.config.stride
        if x.ndim != 4 or x.shape[1] != 4:
            raise ValueError(
                f"the any-mask Context Encoder expects [B, 4, H, W] (image in [-1, 1] with the hole at 0, plus "
                f"the mask), got shape {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h % s or w % s:
            raise ValueError(
                f"the any-mask Context Encoder needs H and W to be multiples of {s}, got {h}x{w}; "
                f"pad to {math.ceil(h / s) * s}x{math.ceil(w / s) * s}"
            )
        if self.config.prefill == "none":
            return self.decoder(self.bottleneck(self.encoder(x)))
        x = self.prefilled(x)
        return (x[:, :3] + self.decoder(self.bottleneck(self.encoder(x)))).clamp(-1.0, 1.0)

    @staticmethod
    def prefilled(x: Tensor) -> Tensor:
        """The input with its hole (mask > 0.5) set to the harmonic fill; an all-hole item stays at 0."""
        hole = x[:, 3:] > 0.5
        hole = hole & ~hole.flatten(1).all(dim=1).view(-1, 1, 1, 1)
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            # [-1, 1] is twice the [0, 1] range: twice the tolerance stops the V-cycles where the classical fill does
            filled = laplace.harmonic(x[:, :3], hole, 2 * laplace.TOLERANCE).clamp(-1.0, 1.0)
        return torch.cat([torch.where(hole, filled.to(x.dtype), x[:, :3]), x[:, 3:]], dim=1)


# --------------------------------------------------------------------------------------------------
# Foreign checkpoints: the port's `_netG` / `_netlocalD` state dicts (keys `main.N.…`)

_G_CONVS = (0, 2, 5, 8, 11, 14, 17, 20, 23, 26, 29)
_D_CONVS = (0, 2, 5, 8, 11)


def _conv_indices(state_dict: StateDict) -> tuple[int, ...] | None:
    """Sequential indices of the 4-D weights if every key is `main.<int>.<name>`, else None."""
    indices = []
    for key, value in state_dict.items():
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "main" or not parts[1].isdigit():
            return None
        if parts[2] == "weight" and value.ndim == 4:
            indices.append(int(parts[1]))
    return tuple(sorted(indices))


def _with_counters(state_dict: StateDict) -> StateDict:
    """Files saved before torch 0.4 have no BatchNorm `num_batches_tracked`; add it as 0."""
    out = dict(state_dict)
    for key in state_dict:
        if key.endswith(".running_mean"):
            out.setdefault(key.replace("running_mean", "num_batches_tracked"), torch.tensor(0, dtype=torch.long))
    return out


def _shapes_match(module: nn.Module, state_dict: StateDict) -> bool:
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    return expected == {k: tuple(v.shape) for k, v in state_dict.items()}


def _g_config(state_dict: StateDict) -> ContextEncoderConfig:
    first, bottleneck, last = state_dict["main.0.weight"], state_dict["main.14.weight"], state_dict["main.29.weight"]
    return ContextEncoderConfig(
        nc=first.shape[1],
        nef=first.shape[0],
        ngf=last.shape[0],
        bottleneck=bottleneck.shape[0],
        image_size=bottleneck.shape[-1] * 32,
    )


def detect_g(state_dict: StateDict) -> bool:
    """True for a state dict of the port's `_netG` (all keys and shapes, as a strict load needs them)."""
    if _conv_indices(state_dict) != _G_CONVS:
        return False
    try:
        config = _g_config(state_dict)
        with torch.device("meta"):
            module = ContextEncoder(config)
    except (KeyError, IndexError, ValueError):
        return False
    return _shapes_match(module, _with_counters(state_dict))


def convert_g(state_dict: StateDict) -> tuple[ContextEncoderConfig, StateDict]:
    """The port's keys are ours; only the config is read from the shapes."""
    return _g_config(state_dict), _with_counters(state_dict)


def _d_config(state_dict: StateDict) -> ContextEncoderDConfig:
    first, last = state_dict["main.0.weight"], state_dict["main.11.weight"]
    return ContextEncoderDConfig(nc=first.shape[1], ndf=first.shape[0], patch_size=last.shape[-1] * 16)


def detect_d(state_dict: StateDict) -> bool:
    """True for a state dict of the port's `_netlocalD`."""
    if _conv_indices(state_dict) != _D_CONVS:
        return False
    try:
        config = _d_config(state_dict)
        with torch.device("meta"):
            module = ContextEncoderD(config)
    except (KeyError, IndexError, ValueError):
        return False
    return _shapes_match(module, _with_counters(state_dict))


def convert_d(state_dict: StateDict) -> tuple[ContextEncoderDConfig, StateDict]:
    return _d_config(state_dict), _with_counters(state_dict)


ARCHITECTURE = Architecture(
    id="context_encoder",
    config_cls=ContextEncoderConfig,
    build=ContextEncoder,
    tasks=("inpaint",),
    description="Context Encoder generator (Pathak et al. 2016, the PyTorch port's _netG): 128x128 with the "
    "centre missing -> 64x64 centre",
    detect=detect_g,
    convert=convert_g,
    sizes=lambda config: SizeRule(exact=config.image_size),
    example_configs=(
        ContextEncoderConfig(nc=3, nef=4, ngf=4, bottleneck=16, image_size=64),
        ContextEncoderConfig(nc=3, nef=2, ngf=3, bottleneck=5, image_size=64),
    ),
)

DISCRIMINATOR = Architecture(
    id="context_encoder_d",
    config_cls=ContextEncoderDConfig,
    build=ContextEncoderD,
    tasks=("discriminate",),
    description="Context Encoder local discriminator (the port's _netlocalD): 64x64 patch -> [B, 1] probability",
    detect=detect_d,
    convert=convert_d,
    sizes=lambda config: SizeRule(exact=config.patch_size),
    example_configs=(ContextEncoderDConfig(nc=3, ndf=4, patch_size=64),),
)

ANYMASK = Architecture(
    id="context_encoder_anymask",
    config_cls=AnyMaskConfig,
    build=AnyMaskContextEncoder,
    tasks=("inpaint",),
    description="Any-mask Context Encoder: image with the hole blanked + mask -> full image, any size that is a "
    "multiple of 2**downsamplings",
    sizes=lambda config: SizeRule(multiple=config.stride),
    example_configs=(
        AnyMaskConfig(base_channels=4, downsamplings=2, bottleneck_blocks=2, norm="batch"),
        AnyMaskConfig(base_channels=4, downsamplings=3, bottleneck_blocks=1, norm="instance"),
        AnyMaskConfig(base_channels=3, downsamplings=1, bottleneck_blocks=0, norm="none"),
        AnyMaskConfig(base_channels=4, downsamplings=2, bottleneck_blocks=1, norm="batch", prefill="harmonic"),
    ),
)

ARCHITECTURES = (ARCHITECTURE, DISCRIMINATOR, ANYMASK)
