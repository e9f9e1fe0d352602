"""Instruction-conditioned edit generator (architecture `edit`).

One network serves several masked edits; which one, and with which colour or amount, is its
*condition*. Everything the network gets travels in one input tensor, so the module stays a plain
`forward(x)` like every other architecture here:

    x = [image (3, in [-1, 1]), mask (1, 1 = region), condition planes (K)]   -> [B, 4 + K, H, W]

The K = len(instructions) + 4 condition planes are constant over the image: the instruction as a
one-hot vector, the target colour (RGB in [-1, 1]) and a signed amount. `network_input` builds x
from names and numbers; training and inference both use it, so they cannot drift apart.

Layout (pix2pix ResNet generator, made conditional):
* stem 7x7 conv, then `downsamplings` stride-2 4x4 convs (width doubles, capped at 4x base);
* `blocks` residual blocks at the lowest resolution; their first conv is dilated 1, 2, 4, 1, 2, ...
  for context (removal fills from far away), and after each of their two norms the features are
  modulated by FiLM (Perez et al. 2018): gamma, beta per channel from a small MLP over the
  instruction embedding (a bias-free linear map of the one-hot, i.e. an embedding table), the
  colour and the amount. gamma = 1 + predicted, and the last MLP layer starts at zero, so an
  untrained block is an ordinary residual block;
* a decoder of nearest-resize + 3x3 convs (no checkerboard) with additive skips from the encoder;
* a 3x3 head whose output is *added to the input image* (residual output): recolour, relight,
  harmonise and blur are small changes of what is there. For `remove` the region arrives blanked
  (0), so there the head predicts the fill itself. The result is not clamped here; the task
  function maps it back to [0, 1] with clamping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..architecture import Architecture, SizeRule
from .layers import NORMS, norm_layer

INSTRUCTIONS = ("remove", "recolour", "relight", "harmonise_paste", "blur_background")
"""Every instruction this code knows; a model's config lists the ones it was trained for."""

OUTSIDE_INSTRUCTIONS = ("blur_background",)
"""Instructions that change the pixels *outside* the mask (and keep the inside)."""

BLANKED_INSTRUCTIONS = ("remove",)
"""Instructions whose region is hidden from the network (set to 0): it must come from the context."""


@dataclass(frozen=True)
class EditConfig:
    """Widths and depth of the edit generator, and the instructions it was trained for (in order)."""

    base_channels: int = 32
    downsamplings: int = 2
    blocks: int = 4
    embed_dim: int = 32
    norm: str = "instance"
    instructions: tuple[str, ...] = INSTRUCTIONS
    harmonise_transfer: bool = False  # harmonise_paste sees the region after `colour.match_to_ring`

    def __post_init__(self) -> None:
        if self.base_channels < 1 or self.embed_dim < 1:
            raise ValueError(f"base_channels and embed_dim must be >= 1, got {self.base_channels}, {self.embed_dim}")
        if not 1 <= self.downsamplings <= 5:
            raise ValueError(f"downsamplings must be in 1..5, got {self.downsamplings}")
        if self.blocks < 0:
            raise ValueError(f"blocks must be >= 0, got {self.blocks}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        unknown = [name for name in self.instructions if name not in INSTRUCTIONS]
        if not self.instructions or unknown or len(set(self.instructions)) != len(self.instructions):
            raise ValueError(
                f"instructions must be a non-empty list without repeats from {INSTRUCTIONS}, got {self.instructions}"
            )

    @property
    def stride(self) -> int:
        """Height and width must be multiples of this."""
        return 2**self.downsamplings

    @property
    def condition_channels(self) -> int:
        """One-hot instruction + colour (3) + amount (1)."""
        return len(self.instructions) + 4

    @property
    def in_channels(self) -> int:
        return 4 + self.condition_channels

    def channels(self, level: int) -> int:
        """Width at `level` downsamplings: doubling, capped at 4x base."""
        return self.base_channels * 2 ** min(level, 2)

    def index(self, instruction: str) -> int:
        """Position of `instruction` in this model's list; a clear error for one it was not trained for."""
        if instruction not in self.instructions:
            raise ValueError(
                f"this edit model was trained for {list(self.instructions)}, not {instruction!r}; pick one of "
                "those or load a model that knows it"
            )
        return self.instructions.index(instruction)


def condition_vector(
    config: EditConfig, instructions: Sequence[str], colour: Tensor | None = None, amount: Tensor | None = None
) -> Tensor:
    """[B, K]: one-hot instruction, colour in [-1, 1] (from RGB in [0, 1], default black) and amount."""
    batch = len(instructions)
    onehot = torch.zeros(batch, len(config.instructions))
    for i, name in enumerate(instructions):
        onehot[i, config.index(name)] = 1.0
    colour = torch.zeros(batch, 3) if colour is None else colour.detach().float().cpu().reshape(batch, 3) * 2 - 1
    amount = torch.zeros(batch, 1) if amount is None else amount.detach().float().cpu().reshape(batch, 1)
    return torch.cat([onehot, colour, amount], dim=1)


def network_input(config: EditConfig, image: Tensor, mask: Tensor, condition: Tensor,
                  instructions: Sequence[str]) -> Tensor:
    """x for the generator: image in [-1, 1] (region blanked for `remove`), mask and the condition planes."""
    if image.ndim != 4 or image.shape[1] != 3 or mask.shape != (image.shape[0], 1, *image.shape[-2:]):
        raise ValueError(
            f"network_input expects image [B,3,H,W] and mask [B,1,H,W], got {tuple(image.shape)} and "
            f"{tuple(mask.shape)}"
        )
    if condition.shape != (image.shape[0], config.condition_channels) or len(instructions) != image.shape[0]:
        raise ValueError(
            f"expected a condition [{image.shape[0]}, {config.condition_channels}] and {image.shape[0]} instructions, "
            f"got {tuple(condition.shape)} and {len(instructions)}"
        )
    blank = torch.tensor([name in BLANKED_INSTRUCTIONS for name in instructions], dtype=image.dtype,
                         device=image.device).view(-1, 1, 1, 1)
    shown = image * (1.0 - blank * mask)
    planes = condition.to(image.device, image.dtype)[:, :, None, None].expand(-1, -1, *image.shape[-2:])
    return torch.cat([shown, mask.to(image.dtype), planes], dim=1)


class FiLMResBlock(nn.Module):
    """x + film2(norm(conv(relu(film1(norm(conv_dilated(x))))))), gamma/beta given per item."""

    def __init__(self, channels: int, dilation: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, dilation, dilation=dilation, bias=bias)
        self.norm1 = norm_layer(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=bias)
        self.norm2 = norm_layer(norm, channels)

    def forward(self, x: Tensor, film: Tensor) -> Tensor:
        g1, b1, g2, b2 = film[:, :, :, None, None].unbind(dim=1)
        h = torch.relu(self.norm1(self.conv1(x)) * (1 + g1) + b1)
        return x + self.norm2(self.conv2(h)) * (1 + g2) + b2


class EditGenerator(nn.Module):
    """[B, 4 + K, H, W] (see the module doc) -> edited image [B, 3, H, W] in about [-1, 1]."""

    def __init__(self, config: EditConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        bias = c.norm == "none"
        self.stem = nn.Sequential(
            nn.Conv2d(c.in_channels, c.channels(0), 7, 1, 3, bias=bias),
            norm_layer(c.norm, c.channels(0), instance_affine=True),
            nn.ReLU(True),
        )
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c.channels(level - 1), c.channels(level), 4, 2, 1, bias=bias),
                norm_layer(c.norm, c.channels(level), instance_affine=True),
                nn.ReLU(True),
            )
            for level in range(1, c.downsamplings + 1)
        )
        width = c.channels(c.downsamplings)
        self.blocks = nn.ModuleList(FiLMResBlock(width, 2 ** (i % 3), c.norm) for i in range(c.blocks))
        self.up = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c.channels(level), c.channels(level - 1), 3, 1, 1, bias=bias),
                norm_layer(c.norm, c.channels(level - 1), instance_affine=True),
                nn.ReLU(True),
            )
            for level in range(c.downsamplings, 0, -1)
        )
        self.head = nn.Conv2d(c.channels(0), 3, 3, 1, 1)
        self.embed = nn.Linear(len(c.instructions), c.embed_dim, bias=False)
        self.film = nn.Sequential(
            nn.Linear(c.embed_dim + 4, 2 * c.embed_dim), nn.ReLU(True), nn.Linear(2 * c.embed_dim, 4 * width * c.blocks)
        )
        with torch.no_grad():
            self.film[-1].weight.zero_()
            self.film[-1].bias.zero_()
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels:
            raise ValueError(
                f"the edit generator expects [B, {c.in_channels}, H, W] (image, mask and {c.condition_channels} "
                f"condition planes for instructions {list(c.instructions)}), got shape {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h % c.stride or w % c.stride:
            raise ValueError(
                f"the edit generator needs H and W to be multiples of {c.stride}, got {h}x{w}; "
                f"pad to {math.ceil(h / c.stride) * c.stride}x{math.ceil(w / c.stride) * c.stride}"
            )
        n = len(c.instructions)
        condition = x[:, 4:].mean(dim=(-2, -1))
        vector = torch.cat([self.embed(condition[:, :n]), condition[:, n:]], dim=1)
        film = self.film(vector).view(x.shape[0], c.blocks, 4, -1) if c.blocks else None
        feat = self.stem(x)
        skips = [feat]
        for layer in self.down:
            feat = layer(feat)
            skips.append(feat)
        for i, block in enumerate(self.blocks):
            feat = block(feat, film[:, i])
        for layer, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            feat = layer(feat) + skip
        return x[:, :3] + self.head(feat)


ARCHITECTURE = Architecture(
    id="edit",
    config_cls=EditConfig,
    build=EditGenerator,
    tasks=("edit",),
    description="Instruction-conditioned edit generator (remove, recolour, relight, harmonise_paste, "
    "blur_background): image + mask + condition planes -> edited image, FiLM in the residual blocks",
    sizes=lambda config: SizeRule(multiple=config.stride),
    example_configs=(
        EditConfig(base_channels=4, downsamplings=2, blocks=2, embed_dim=4),
        EditConfig(base_channels=3, downsamplings=1, blocks=0, embed_dim=2, norm="none", instructions=("relight",)),
        EditConfig(base_channels=4, downsamplings=3, blocks=1, embed_dim=3, norm="batch",
                   instructions=("recolour", "remove")),
    ),
)
