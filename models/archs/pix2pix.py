"""pix2pix / CycleGAN networks (Isola et al. 2017, Zhu et al. 2017): ResNet and U-Net generators, pixel D.

The modules are laid out exactly like `models/networks.py` of junyanz/pytorch-CycleGAN-and-pix2pix, so
the public checkpoints load without renaming a key:

* `pix2pix_resnet` - `ResnetGenerator`: reflection-padded 7x7 conv, two stride-2 convs, `n_blocks`
  residual blocks (resnet_9blocks / resnet_6blocks), two transposed convs, 7x7 conv, tanh. Keys
  `model.<i>...`, blocks `model.<i>.conv_block.<j>...`; a block's Dropout (after the first ReLU)
  moves its second conv from `conv_block.5` to `conv_block.6`.
* `pix2pix_unet` - `UnetGenerator`: `num_downs` nested skip blocks (unet_128 = 7, unet_256 = 8),
  keys `model.model.1.model.3.model.3...`; Dropout sits last in the `num_downs - 5` blocks above the
  innermost one, so it does not change the keys.
* `pixel_discriminator` - `PixelDiscriminator`: three 1x1 convs, one raw logit per pixel.

Norms follow the reference's `get_norm_layer`: "batch" (affine, running stats), "instance" (no affine,
no running stats: no keys at all) or "none" (an Identity). Like the reference, convs that feed a norm
layer have a bias only with instance norm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..architecture import Architecture, SizeRule, StateDict
from .layers import NORMS, norm_layer

PADDINGS = ("reflect", "replicate", "zero")
_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _check_common(norm: str, use_dropout: bool, **sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not isinstance(use_dropout, bool):
        raise ValueError(f"use_dropout must be True or False, got {use_dropout!r}")




def _check_input(x: Tensor, channels: int, multiple: int, min_size: int, what: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"the {what} expects [B, {channels}, H, W] in [-1, 1], got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple or min(h, w) < min_size:
        good_h, good_w = (max(min_size, math.ceil(s / multiple) * multiple) for s in (h, w))
        raise ValueError(
            f"the {what} needs H and W to be multiples of {multiple} and at least {min_size}, got {h}x{w}; "
            f"pad to {good_h}x{good_w}"
        )


# --------------------------------------------------------------------------------------------------
# ResNet generator


@dataclass(frozen=True)
class ResnetGeneratorConfig:
    """`ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks, padding_type)`.

    The defaults are the public CycleGAN models': resnet_9blocks, instance norm, no dropout.
    """

    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    n_blocks: int = 9
    norm: str = "instance"
    use_dropout: bool = False
    padding: str = "reflect"

    def __post_init__(self) -> None:
        _check_common(self.norm, self.use_dropout, input_nc=self.input_nc, output_nc=self.output_nc, ngf=self.ngf)
        if isinstance(self.n_blocks, bool) or not isinstance(self.n_blocks, int) or self.n_blocks < 0:
            raise ValueError(f"n_blocks must be an int >= 0, got {self.n_blocks!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (two stride-2 convs), or the output size differs."""
        return 4

    @property
    def min_size(self) -> int:
        """Smallest H and W: the 1-px reflection pad of the blocks needs 2x2 at 1/4 resolution."""
        return 8


class ResnetBlock(nn.Module):
    """x + conv_block(x), conv_block = [pad, conv3x3, norm, ReLU, (Dropout), pad, conv3x3, norm]."""

    def __init__(self, dim: int, padding: str, norm: str, use_dropout: bool, use_bias: bool) -> None:
        super().__init__()
        layers = [*_pad(padding), nn.Conv2d(dim, dim, 3, padding=_conv_padding(padding), bias=use_bias)]
        layers += [norm_layer(norm, dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [*_pad(padding), nn.Conv2d(dim, dim, 3, padding=_conv_padding(padding), bias=use_bias)]
        layers.append(norm_layer(norm, dim))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


def _pad(padding: str) -> list[nn.Module]:
    if padding == "reflect":
        return [nn.ReflectionPad2d(1)]
    if padding == "replicate":
        return [nn.ReplicationPad2d(1)]
    return []


def _conv_padding(padding: str) -> int:
    return 1 if padding == "zero" else 0


class ResnetGenerator(nn.Module):
    """CycleGAN's generator: [B, input_nc, H, W] in [-1, 1] -> [B, output_nc, H, W], tanh."""

    def __init__(self, config: ResnetGeneratorConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        use_bias = c.norm == "instance"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(c.input_nc, c.ngf, 7, padding=0, bias=use_bias),
            norm_layer(c.norm, c.ngf),
            nn.ReLU(True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(c.ngf * mult, c.ngf * mult * 2, 3, stride=2, padding=1, bias=use_bias),
                norm_layer(c.norm, c.ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(c.ngf * 4, c.padding, c.norm, c.use_dropout, use_bias) for _ in range(c.n_blocks)]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(
                    c.ngf * mult, c.ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=use_bias
                ),
                norm_layer(c.norm, c.ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c.ngf, c.output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        c = self.config
        _check_input(x, c.input_nc, c.size_multiple, c.min_size, "ResNet generator")
        return self.model(x)


# --------------------------------------------------------------------------------------------------
# U-Net generator


@dataclass(frozen=True)
class UnetGeneratorConfig:
    """`UnetGenerator(input_nc, output_nc, num_downs, ngf, norm, use_dropout)`.

    unet_256 is num_downs 8, unet_128 is 7. The defaults are pix2pix's: batch norm and dropout.
    """

    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    num_downs: int = 8
    norm: str = "batch"
    use_dropout: bool = True

    def __post_init__(self) -> None:
        _check_common(self.norm, self.use_dropout, input_nc=self.input_nc, output_nc=self.output_nc, ngf=self.ngf)
        if isinstance(self.num_downs, bool) or not isinstance(self.num_downs, int) or not 5 <= self.num_downs <= 12:
            raise ValueError(f"num_downs must be an int in 5..12 (unet_128 = 7, unet_256 = 8), got {self.num_downs!r}")

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of 2**num_downs (every level halves, and the skips must fit)."""
        return 2**self.num_downs

    @property
    def min_size(self) -> int:
        """The innermost level is 1x1 at this size."""
        return 2**self.num_downs


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: cat([x, up(sub(down(x)))]); the outermost level returns up(...) without the skip."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        norm: str,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        use_bias = norm == "instance"
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=use_bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            layers = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, norm_layer(norm, outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, norm_layer(norm, inner_nc), submodule]
            layers += [nn.ReLU(True), upconv, norm_layer(norm, outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """pix2pix's generator: [B, input_nc, H, W] in [-1, 1] -> [B, output_nc, H, W], tanh."""

    def __init__(self, config: UnetGeneratorConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        block = UnetSkipConnectionBlock(c.ngf * 8, c.ngf * 8, c.norm, innermost=True)
        for _ in range(c.num_downs - 5):
            block = UnetSkipConnectionBlock(c.ngf * 8, c.ngf * 8, c.norm, submodule=block, use_dropout=c.use_dropout)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(c.ngf * mult, c.ngf * mult * 2, c.norm, submodule=block)
        self.model = UnetSkipConnectionBlock(
            c.output_nc, c.ngf, c.norm, input_nc=c.input_nc, submodule=block, outermost=True
        )

    def forward(self, x: Tensor) -> Tensor:
        c = self.config
        _check_input(x, c.input_nc, c.size_multiple, c.min_size, f"U-Net generator (num_downs {c.num_downs})")
        return self.model(x)


# --------------------------------------------------------------------------------------------------
# Pixel discriminator


@dataclass(frozen=True)
class PixelDiscriminatorConfig:
    """`PixelDiscriminator(input_nc, ndf, norm)`: a 1x1 PatchGAN (pix2pix's `--netD pixel`)."""

    input_nc: int = 6
    ndf: int = 64
    norm: str = "batch"

    def __post_init__(self) -> None:
        _check_common(self.norm, False, input_nc=self.input_nc, ndf=self.ndf)


class PixelDiscriminator(nn.Module):
    """[B, input_nc, H, W] -> [B, 1, H, W] raw logits, one per pixel."""

    def __init__(self, config: PixelDiscriminatorConfig) -> None:
        super().__init__()
        c = config
        use_bias = c.norm == "instance"
        self.net = nn.Sequential(
            nn.Conv2d(c.input_nc, c.ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(c.ndf, c.ndf * 2, 1, bias=use_bias),
            norm_layer(c.norm, c.ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(c.ndf * 2, 1, 1, bias=use_bias),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


# --------------------------------------------------------------------------------------------------
# Foreign checkpoints: infer the config from keys and shapes, clean legacy keys, check every shape


def _weight(state_dict: StateDict, key: str, ndim: int, what: str) -> Tensor:
    value = state_dict.get(key)
    if value is None or value.ndim != ndim:
        found = "missing" if value is None else f"shape {tuple(value.shape)}"
        raise ValueError(f"not a {what} state dict: expected a {ndim}-D tensor at {key!r}, {found}")
    return value


def _infernorm_layer(state_dict: StateDict, norm_prefix: str, conv_prefix: str) -> str:
    """batch: the norm slot has an affine weight; instance: the conv before it has a bias; else none.

    Old files also hold InstanceNorm running stats in the norm slot, but never a weight (affine=False).
    """
    if f"{norm_prefix}.weight" in state_dict:
        return "batch"
    return "instance" if f"{conv_prefix}.bias" in state_dict else "none"


def _clean(module: nn.Module, state_dict: StateDict) -> StateDict:
    """Drop InstanceNorm running stats (old files have them) and add BatchNorm counters (pre-0.4 files lack them)."""
    out = dict(state_dict)
    for name, sub in module.named_modules():
        if isinstance(sub, nn.InstanceNorm2d):
            for stat in _STATS:
                out.pop(f"{name}.{stat}", None)
        elif isinstance(sub, nn.BatchNorm2d) and f"{name}.running_mean" in out:
            out.setdefault(f"{name}.num_batches_tracked", torch.tensor(0, dtype=torch.long))
    return out


def _checked(build, config, state_dict: StateDict, what: str) -> StateDict:
    """The cleaned state dict, if every key and shape is what `build(config)` has; else a ValueError."""
    with torch.device("meta"):
        module = build(config)
    state = _clean(module, state_dict)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))[:3]
        unexpected = sorted(set(found) - set(expected))[:3]
        wrong = [f"{k}: {found[k]} vs {v}" for k, v in expected.items() if k in found and found[k] != v][:3]
        raise ValueError(
            f"not a {what} state dict of the inferred config {config}: missing {missing}, unexpected {unexpected}, "
            f"shape mismatches {wrong}"
        )
    return state


def _detector(convert):
    def detect(state_dict: StateDict) -> bool:
        try:
            convert(state_dict)
        except (ValueError, KeyError, IndexError):
            return False
        return True

    detect.__doc__ = f"True when `{convert.__name__}` understands the state dict (every key and shape)."
    return detect


def _top_indices(state_dict: StateDict, prefix: str, what: str) -> set[int]:
    indices = set()
    for key in state_dict:
        parts = key.split(".")
        if not key.startswith(prefix) or len(parts) < 3 or not parts[1].isdigit():
            raise ValueError(f"not a {what} state dict: key {key!r} is not '{prefix}<index>.<...>'")
        indices.add(int(parts[1]))
    return indices


def resnet_config(state_dict: StateDict) -> ResnetGeneratorConfig:
    """Infer a `ResnetGenerator`'s config (blocks, ngf, norm, dropout, padding, channels) from its keys."""
    what = "ResnetGenerator"
    _top_indices(state_dict, "model.", what)
    first = _weight(state_dict, "model.1.weight", 4, what)
    if first.shape[-2:] != (7, 7):
        raise ValueError(f"not a {what} state dict: model.1.weight is {tuple(first.shape)}, expected a 7x7 conv")
    blocks = sorted({int(k.split(".")[1]) for k in state_dict if ".conv_block." in k})
    if blocks != list(range(10, 10 + len(blocks))):
        raise ValueError(f"not a {what} state dict: residual blocks at model.{blocks}, expected model.10, 11, ...")
    n_blocks = len(blocks)
    convs = sorted(
        int(k.split(".")[3])
        for k, v in state_dict.items()
        if k.startswith("model.10.conv_block.") and k.endswith(".weight") and v.ndim == 4
    )
    layouts = {(1, 5): ("reflect", False), (1, 6): ("reflect", True), (0, 3): ("zero", False), (0, 4): ("zero", True)}
    if n_blocks and tuple(convs[:1] + convs[-1:]) not in layouts:
        raise ValueError(f"not a {what} state dict: block convs at conv_block.{convs}, expected 1 and 5 or 6")
    padding, use_dropout = layouts[tuple(convs[:1] + convs[-1:])] if n_blocks else ("reflect", False)
    last = _weight(state_dict, f"model.{17 + n_blocks}.weight", 4, what)
    return ResnetGeneratorConfig(
        input_nc=first.shape[1],
        output_nc=last.shape[0],
        ngf=first.shape[0],
        n_blocks=n_blocks,
        norm=_infernorm_layer(state_dict, "model.2", "model.1"),
        use_dropout=use_dropout,
        padding=padding,
    )


def convert_resnet(state_dict: StateDict) -> tuple[ResnetGeneratorConfig, StateDict]:
    """The reference's keys are ours: infer the config, drop legacy InstanceNorm stats, check every shape.

    Replication and reflection padding have the same keys; the reference default, reflection, is assumed.
    """
    config = resnet_config(state_dict)
    return config, _checked(ResnetGenerator, config, state_dict, "ResnetGenerator")


def unet_config(state_dict: StateDict) -> UnetGeneratorConfig:
    """Infer a `UnetGenerator`'s config (num_downs from the nesting depth, ngf, norm, channels).

    Dropout leaves no trace in the keys; the result says `use_dropout=True`, pix2pix's default (its
    `--no_dropout` is off), which only matters for training: eval and batch-statistics inference never drop.
    """
    what = "UnetGenerator"
    if not all(k.startswith("model.model.") for k in state_dict):
        raise ValueError(f"not a {what} state dict: every key must start with 'model.model.'")
    first = _weight(state_dict, "model.model.0.weight", 4, what)
    last = _weight(state_dict, "model.model.3.weight", 4, what)
    prefix, num_downs = "model.model.1.", 1
    while any(k.startswith(prefix + "model.") for k in state_dict):
        prefix, num_downs = prefix + "model.3.", num_downs + 1
    if num_downs < 5:
        raise ValueError(f"not a {what} state dict: nesting depth {num_downs}, the reference builds at least 5 levels")
    return UnetGeneratorConfig(
        input_nc=first.shape[1],
        output_nc=last.shape[1],
        ngf=first.shape[0],
        num_downs=num_downs,
        norm=_infernorm_layer(state_dict, "model.model.1.model.2", "model.model.0"),
        use_dropout=True,
    )


def convert_unet(state_dict: StateDict) -> tuple[UnetGeneratorConfig, StateDict]:
    """The reference's keys are ours: infer the config, drop legacy InstanceNorm stats, check every shape."""
    config = unet_config(state_dict)
    return config, _checked(UnetGenerator, config, state_dict, "UnetGenerator")


def pixel_config(state_dict: StateDict) -> PixelDiscriminatorConfig:
    """Infer a `PixelDiscriminator`'s config (channels, ndf, norm) from its keys."""
    what = "PixelDiscriminator"
    if _top_indices(state_dict, "net.", what) - {0, 2, 3, 5}:
        raise ValueError(f"not a {what} state dict: expected layers net.0, net.2, net.3 and net.5 only")
    first = _weight(state_dict, "net.0.weight", 4, what)
    if first.shape[-2:] != (1, 1):
        raise ValueError(f"not a {what} state dict: net.0.weight is {tuple(first.shape)}, expected a 1x1 conv")
    return PixelDiscriminatorConfig(
        input_nc=first.shape[1], ndf=first.shape[0], norm=_infernorm_layer(state_dict, "net.3", "net.2")
    )


def convert_pixel(state_dict: StateDict) -> tuple[PixelDiscriminatorConfig, StateDict]:
    """The reference's keys are ours: infer the config, drop legacy InstanceNorm stats, check every shape."""
    config = pixel_config(state_dict)
    return config, _checked(PixelDiscriminator, config, state_dict, "PixelDiscriminator")


RESNET = Architecture(
    id="pix2pix_resnet",
    config_cls=ResnetGeneratorConfig,
    build=ResnetGenerator,
    tasks=("translate",),
    description="CycleGAN/pix2pix ResnetGenerator (resnet_9blocks, resnet_6blocks, ...): image -> image, tanh",
    detect=_detector(convert_resnet),
    convert=convert_resnet,
    sizes=lambda config: SizeRule(multiple=config.size_multiple, minimum=config.min_size),
    example_configs=(
        ResnetGeneratorConfig(ngf=4, n_blocks=2, norm="instance", use_dropout=False),
        ResnetGeneratorConfig(ngf=4, n_blocks=1, norm="batch", use_dropout=True),
        ResnetGeneratorConfig(input_nc=1, output_nc=2, ngf=2, n_blocks=0, norm="none", padding="zero"),
    ),
)

UNET = Architecture(
    id="pix2pix_unet",
    config_cls=UnetGeneratorConfig,
    build=UnetGenerator,
    tasks=("translate",),
    description="pix2pix UnetGenerator (unet_128, unet_256, ...): image -> image with skip connections, tanh",
    detect=_detector(convert_unet),
    convert=convert_unet,
    sizes=lambda config: SizeRule(multiple=config.size_multiple, minimum=config.min_size),
    example_configs=(
        UnetGeneratorConfig(ngf=4, num_downs=6, norm="batch", use_dropout=True),
        UnetGeneratorConfig(ngf=2, num_downs=5, norm="instance", use_dropout=False),
        UnetGeneratorConfig(input_nc=1, output_nc=2, ngf=2, num_downs=5, norm="none"),
    ),
)

PIXEL_DISCRIMINATOR = Architecture(
    id="pixel_discriminator",
    config_cls=PixelDiscriminatorConfig,
    build=PixelDiscriminator,
    tasks=("discriminate",),
    description="pix2pix PixelDiscriminator (1x1 PatchGAN): raw logits per pixel",
    detect=_detector(convert_pixel),
    convert=convert_pixel,
    example_configs=(
        PixelDiscriminatorConfig(input_nc=6, ndf=4, norm="batch"),
        PixelDiscriminatorConfig(input_nc=3, ndf=2, norm="instance"),
        PixelDiscriminatorConfig(input_nc=4, ndf=2, norm="none"),
    ),
)

ARCHITECTURES = (RESNET, UNET, PIXEL_DISCRIMINATOR)
