"""Fast neural style transfer network (Johnson et al. 2016; pytorch/examples `TransformerNet`).

One network per style: three reflection-padded convolutions down (9x9, then two stride-2 3x3), five
residual blocks, two nearest-x2-upsample-then-conv layers up and a final 9x9 conv. Every conv but the
last is followed by an affine InstanceNorm (no running statistics). Input and output are RGB on the
0..255 scale; the output is raw (not clamped). `models.stylize.fast_style` does the scaling.

The module layout matches pytorch/examples exactly, so its checkpoints load without renaming:
`conv1.conv2d.weight`, `in1.weight`, `res1.conv1.conv2d.weight`, `res1.in2.bias`,
`deconv1.conv2d.weight`, ... Checkpoints saved before PyTorch 0.4 (the released candy / mosaic / udnie
/ rain_princess files) also hold `in<N>.running_mean/var` for every InstanceNorm; like the reference
`stylize()`, the converter drops them and the norms keep using per-image statistics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architecture import Architecture, SizeRule, StateDict

LEGACY_KEY = re.compile(r"in\d+\.running_(mean|var)$")
"""Keys of pre-0.4 checkpoints that the reference deletes before loading."""


@dataclass(frozen=True)
class TransformerNetConfig:
    """The public network is fixed (widths (32, 64, 128), 5 residual blocks); the fields let the
    converter check shapes and let tests build small variants."""

    widths: tuple[int, int, int] = (32, 64, 128)
    residual_blocks: int = 5

    def __post_init__(self) -> None:
        if len(self.widths) != 3 or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"widths must be three ints >= 1, got {self.widths!r}")
        if not isinstance(self.residual_blocks, int) or self.residual_blocks < 1:
            raise ValueError(f"residual_blocks must be an int >= 1, got {self.residual_blocks!r}")


class ConvLayer(nn.Module):
    """Reflection padding of kernel // 2, then a conv (optionally after nearest upsampling)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: int | None = None) -> None:
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(self.pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class TransformerNet(nn.Module):
    """RGB 0..255 in, raw RGB 0..255 out, same size when H and W are multiples of 4."""

    def __init__(self, config: TransformerNetConfig) -> None:
        super().__init__()
        w1, w2, w3 = config.widths
        self.conv1 = ConvLayer(3, w1, 9)
        self.in1 = nn.InstanceNorm2d(w1, affine=True)
        self.conv2 = ConvLayer(w1, w2, 3, stride=2)
        self.in2 = nn.InstanceNorm2d(w2, affine=True)
        self.conv3 = ConvLayer(w2, w3, 3, stride=2)
        self.in3 = nn.InstanceNorm2d(w3, affine=True)
        for i in range(1, config.residual_blocks + 1):
            self.add_module(f"res{i}", ResidualBlock(w3))
        self.residual_blocks = config.residual_blocks
        self.deconv1 = ConvLayer(w3, w2, 3, upsample=2)
        self.in4 = nn.InstanceNorm2d(w2, affine=True)
        self.deconv2 = ConvLayer(w2, w1, 3, upsample=2)
        self.in5 = nn.InstanceNorm2d(w1, affine=True)
        self.deconv3 = ConvLayer(w1, 3, 9)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        for i in range(1, self.residual_blocks + 1):
            y = getattr(self, f"res{i}")(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


# --------------------------------------------------------------------------------------------------
# Foreign checkpoints: pytorch/examples state dicts (current and pre-0.4)


def drop_legacy_keys(state_dict: StateDict) -> StateDict:
    """The state dict without the pre-0.4 InstanceNorm running statistics (see module doc)."""
    return {k: v for k, v in state_dict.items() if not LEGACY_KEY.search(k)}


def _config_from_shapes(state_dict: StateDict) -> TransformerNetConfig:
    blocks = 0
    while f"res{blocks + 1}.conv1.conv2d.weight" in state_dict:
        blocks += 1
    widths = tuple(int(state_dict[f"{name}.conv2d.weight"].shape[0]) for name in ("conv1", "conv2", "conv3"))
    return TransformerNetConfig(widths=widths, residual_blocks=blocks)  # type: ignore[arg-type]


def detect(state_dict: StateDict) -> bool:
    """True when the keys and shapes (legacy running stats aside) are exactly a TransformerNet's."""
    state = drop_legacy_keys(state_dict)
    if "conv1.conv2d.weight" not in state or "deconv3.conv2d.weight" not in state:
        return False
    try:
        config = _config_from_shapes(state)
        with torch.device("meta"):
            module = TransformerNet(config)
    except (KeyError, IndexError, ValueError):
        return False
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    return expected == {k: tuple(v.shape) for k, v in state.items()}


def convert(state_dict: StateDict) -> tuple[TransformerNetConfig, StateDict]:
    """The reference keys are ours; legacy running statistics are dropped."""
    state = drop_legacy_keys(state_dict)
    return _config_from_shapes(state), state


SIZES = SizeRule(multiple=4, minimum=8)
"""Two stride-2 convs and two 2x upsamplings: other sides change the output size; smaller ones fail."""

ARCHITECTURE = Architecture(
    id="transformer_net",
    config_cls=TransformerNetConfig,
    build=TransformerNet,
    tasks=("stylize",),
    description="Fast neural style TransformerNet (Johnson et al. 2016, pytorch/examples): one style per "
    "network, RGB 0..255 in and out",
    detect=detect,
    convert=convert,
    sizes=lambda config: SIZES,
    example_configs=(
        TransformerNetConfig(widths=(4, 8, 8), residual_blocks=2),
        TransformerNetConfig(widths=(3, 5, 6), residual_blocks=1),
    ),
)
