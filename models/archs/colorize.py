"""`vgg_colorizer`: a colouriser that reads a photo's grey through a fixed, ImageNet-trained VGG-16.

Why this shape. A colouriser has to know what things are (sky, grass, skin, fruit) to know their
colours, and a few hundred training photos cannot teach that: networks trained from scratch on them
learn colours that do not carry over to photos of other sources. The anti-aliased VGG-16 of
`models.archs.vgg` was trained on ImageNet and already tells those things apart, from grey pictures
too. So, as in hypercolumn colourisers (Larsson, Maire & Shakhnarovich 2016), the network keeps
that encoder fixed and trains only a small head on its features:

* the input's BT.601 luma Y (`models.archs.luma.luma`) goes through the encoder as a grey RGB image;
* each of `layers` is reduced to `width` channels by a 1x1 convolution, bilinearly resized to half
  the input size and summed (a hypercolumn);
* three 3x3 convolutions turn that into two chroma channels (Cb, Cr, bounded by tanh to
  +-`CHROMA_RANGE`), which are bilinearly upsampled (4:2:0, as JPEG stores colour);
* the output is Y plus the chroma as RGB, put back on the input's luma with `with_luma`
  (where the chroma would leave [0, 1] it is scaled towards grey), so the luma of every output pixel
  is the input's, exactly: the photo's detail and tones are never redrawn.

The network takes and returns RGB in [-1, 1] like the pix2pix generators, so `models.translate` runs
it; a colour photo is read through its luma. The encoder's weights are part of the file (keys
`encoder.conv1_1.weight` ...), as an `adain` file carries its encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architecture import Architecture, SizeRule
from .luma import luma, with_luma
from .vgg import LAYERS, VGG16Features

CHROMA_RANGE = 0.5  # Cb and Cr of sRGB colours lie within +-0.5
_CHANNELS = {"relu1_2": 64, "relu2_2": 128, "relu3_3": 256, "relu4_3": 512, "relu5_3": 512}


@dataclass(frozen=True)
class VGGColorizerConfig:
    layers: tuple[str, ...] = ("relu2_2", "relu3_3", "relu4_3")
    width: int = 64
    input_nc: int = 3
    output_nc: int = 3

    def __post_init__(self) -> None:
        unknown = [name for name in self.layers if name not in _CHANNELS]
        if not self.layers or unknown or list(self.layers) != sorted(self.layers, key=LAYERS.index):
            raise ValueError(f"layers must be VGG-16 block outputs in order, from {tuple(_CHANNELS)}; "
                             f"got {self.layers}")
        if not 4 <= self.width <= 1024:
            raise ValueError(f"width must be in [4, 1024], got {self.width}")
        if (self.input_nc, self.output_nc) != (3, 3):
            raise ValueError(f"vgg_colorizer maps RGB to RGB (3 to 3 channels), got {self.input_nc} to "
                             f"{self.output_nc}")

    @property
    def size_multiple(self) -> int:
        return 2

    @property
    def min_size(self) -> int:
        """The deepest layer still needs maps of a few pixels."""
        return 2 ** (int(self.layers[-1][4]) + 1)


def chroma_to_rgb(cb: Tensor, cr: Tensor) -> Tensor:
    """The RGB offsets [B, 3, H, W] of BT.601 chroma (Cb, Cr [B, 1, H, W]); their luma is 0."""
    return torch.cat([1.402 * cr, -0.344136 * cb - 0.714136 * cr, 1.772 * cb], dim=1)


class VGGColorizer(nn.Module):
    """Fixed VGG-16 encoder on the luma, trained hypercolumn head to chroma (see module doc)."""

    def __init__(self, config: VGGColorizerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = VGG16Features("blur", last=config.layers[-1]).requires_grad_(False)
        self.reduce = nn.ModuleList(nn.Conv2d(_CHANNELS[name], config.width, 1) for name in config.layers)
        w = config.width
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(w, 2, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)  # starts grey: the output is the input's luma
        nn.init.zeros_(self.head[-1].bias)

    def train(self, mode: bool = True) -> VGGColorizer:
        super().train(mode)
        self.encoder.eval()  # fixed: no mode of its own (it has no dropout or norms, but stays in eval)
        return self

    def forward(self, x: Tensor) -> Tensor:
        y = luma((x.float() + 1.0) * 0.5).clamp(0.0, 1.0)
        h, w = x.shape[-2:]
        half = ((h + 1) // 2, (w + 1) // 2)
        grey = y.to(x.dtype).expand(-1, 3, -1, -1)
        feats = self.encoder.features(grey, self.config.layers)
        column = sum(F.interpolate(reduce(feats[name]), size=half, mode="bilinear", align_corners=False)
                     for name, reduce in zip(self.config.layers, self.reduce, strict=True))
        chroma = F.interpolate(self.head(column).float(), size=(h, w), mode="bilinear", align_corners=False)
        chroma = CHROMA_RANGE * torch.tanh(chroma)
        rgb = y + chroma_to_rgb(chroma[:, :1], chroma[:, 1:])
        return with_luma(rgb, y) * 2.0 - 1.0


ARCHITECTURE = Architecture(
    id="vgg_colorizer",
    config_cls=VGGColorizerConfig,
    build=VGGColorizer,
    tasks=("translate",),
    description="colouriser: a fixed ImageNet VGG-16 reads the luma, a small head gives the chroma; the output "
    "keeps the input's luma exactly (RGB [-1, 1] in and out)",
    sizes=lambda config: SizeRule(multiple=config.size_multiple, minimum=config.min_size),
    example_configs=(VGGColorizerConfig(layers=("relu1_2", "relu2_2"), width=4),),
)
