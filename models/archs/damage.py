"""The `damage_unet` detector: a small U-Net mapping a photo to the logits of a damage mask.

Why this shape:

* **A U-Net after a pixel unshuffle**, as the `enhance` generator: the 2x2 fold keeps every pixel (a
  1 px scratch survives it) while no convolution runs at full resolution, which keeps a 512 px photo
  well under a second on two CPU cores. Telling a scratch from a wire or a hair-thin highlight needs
  context, so `levels` stride-2 stages reach a receptive field of about 2^(levels + 3) px.
* **No normalisation layers**: large photos are processed in tiles (`models.damage.detect`), and a
  tile must not see statistics of its own.
* **Logits out**, one per pixel (4 per folded pixel, shuffled back); the task function applies the
  sigmoid, so the loss can use the numerically stable BCE-with-logits.

Values in are in [-1, 1] (the task function converts); H and W must be multiples of `size_multiple`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architecture import Architecture, SizeRule

MAX_LEVELS = 5


@dataclass(frozen=True)
class DamageNetConfig:
    channels: int = 3  # input channels (grey photos are given as 3 equal channels by the task function)
    base_channels: int = 16  # channels after the unshuffle; doubled at each level
    levels: int = 3  # stride-2 levels after the unshuffle
    max_channels: int = 96  # widths stop doubling here

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if not 4 <= self.base_channels <= self.max_channels <= 1024:
            raise ValueError(f"need 4 <= base_channels <= max_channels <= 1024, got {self.base_channels}, "
                             f"{self.max_channels}")
        if not 0 <= self.levels <= MAX_LEVELS:
            raise ValueError(f"levels must be in [0, {MAX_LEVELS}], got {self.levels}")

    @property
    def size_multiple(self) -> int:
        return 2 ** (self.levels + 1)

    @property
    def input_channels(self) -> int:
        return self.channels

    def widths(self) -> list[int]:
        return [min(self.base_channels * 2**i, self.max_channels) for i in range(self.levels + 1)]


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def _double(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), _act(),
                         nn.Conv2d(cout, cout, 3, padding=1), _act())


class DamageNet(nn.Module):
    """Photo [B,C,H,W] in [-1,1] -> damage logits [B,1,H,W]."""

    def __init__(self, config: DamageNetConfig) -> None:
        super().__init__()
        self.config = c = config
        widths = c.widths()
        self.head = _double(4 * c.channels, widths[0])
        self.down = nn.ModuleList(_double(widths[i], widths[i + 1], stride=2) for i in range(c.levels))
        self.up = nn.ModuleList(nn.Sequential(nn.Conv2d(widths[i + 1] + widths[i], widths[i], 3, padding=1), _act())
                                for i in range(c.levels))
        self.tail = nn.Conv2d(widths[0], 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        m = self.config.size_multiple
        if x.ndim != 4 or x.shape[1] != self.config.channels or x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"DamageNet needs [B, {self.config.channels}, H, W] with H and W multiples of {m}, got "
                             f"{tuple(x.shape)}")
        h = self.head(F.pixel_unshuffle(x, 2))
        skips = []
        for down in self.down:
            skips.append(h)
            h = down(h)
        for up, skip in zip(reversed(self.up), reversed(skips), strict=True):
            h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = up(torch.cat([h, skip], dim=1))
        return F.pixel_shuffle(self.tail(h), 2)


ARCHITECTURE = Architecture(
    id="damage_unet",
    config_cls=DamageNetConfig,
    build=DamageNet,
    tasks=("detect",),
    description="Small U-Net finding old-photo damage: scratches, specks, creases, stains, tears (this pack's own).",
    sizes=lambda config: SizeRule(multiple=config.size_multiple),
    example_configs=(
        DamageNetConfig(base_channels=4, levels=1, max_channels=8),
        DamageNetConfig(channels=1, base_channels=8, levels=2, max_channels=8),
    ),
)
