"""Fast neural style training (Johnson, Alahi & Fei-Fei 2016): one TransformerNet per style image.

The network sees random crops of content photos and is trained with a perceptual loss computed by a
fixed VGG-16 (`models.archs.vgg`):

- content: mean squared error between the relu2_2 features of the output and of the input;
- style: mean squared error between Gram matrices (C x C, divided by C * H * W) of the output and
  of the style image at relu1_2, relu2_2, relu3_3 and relu4_3, summed over the layers;
- optionally total variation (mean absolute difference of neighbouring pixels) for smoothness.

The network works on the 0..255 scale (as the public checkpoints do), VGG on [0, 1]. Its output conv
starts at the ImageNet mean colour with its weights scaled by `OUTPUT_GAIN` (`init_output`). With
PyTorch's default init the first outputs are ~0 (black) with a spread of well under one grey level,
and Adam at lr 1e-3 needs thousands of steps to reach the 0..255 range; short runs then stay dark and
fill the image with horizontal stripes (a cheap way to move the stlpips VGG-16's features) instead of
the content. The export is a `transformer_net` model for the task 'stylize': `models.stylize.fast_style`
and the GAN Stylize node load it unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from .. import layout
from ..archs.transformer_net import ARCHITECTURE, TransformerNet, TransformerNetConfig
from ..archs.vgg import IMAGENET_MEAN, VGG16Features
from .data import ImageSet, random_crops
from .engine import Export, StepContext, Task, adam, finite_or_raise

CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
OUTPUT_GAIN = 30.0
"""Factor on the default init of the output conv's weights: a start of mean colour +- ~10 grey levels."""


@dataclass(frozen=True)
class StyleSettings:
    batch_size: int = 4
    crop: int = 256
    lr: float = 1e-3
    content_weight: float = 1e5
    style_weight: float = 1e10
    tv_weight: float = 0.0
    net: TransformerNetConfig = field(default_factory=TransformerNetConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.crop < 16 or self.crop % 4:
            raise ValueError(f"crop must be a multiple of 4 and >= 16 (TransformerNet's stride), got {self.crop}")
        if min(self.content_weight, self.style_weight, self.tv_weight) < 0 or self.lr <= 0:
            raise ValueError("lr must be > 0 and the loss weights >= 0")


def gram(features: Tensor) -> Tensor:
    """Gram matrices [B, C, C] of features [B, C, H, W], divided by C * H * W (float32)."""
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def total_variation(image: Tensor) -> Tensor:
    """Mean absolute difference between vertical and horizontal neighbours."""
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., :, 1:] - image[..., :, :-1]).abs().mean()


def init_output(net: TransformerNet, gain: float = OUTPUT_GAIN) -> TransformerNet:
    """Start the output conv at the ImageNet mean colour (0..255) with its weights scaled by `gain`."""
    with torch.no_grad():
        conv = net.deconv3.conv2d
        conv.weight.mul_(gain)
        conv.bias.copy_(torch.tensor(IMAGENET_MEAN, dtype=conv.bias.dtype) * 255.0)
    return net


def check_style_image(style: Tensor) -> None:
    if style.dim() != 4 or style.shape[:2] != (1, 3) or min(style.shape[-2:]) < 16:
        raise ValueError(f"the style image must be [1, 3, H, W] with H, W >= 16, got {tuple(style.shape)}")
    if style.min() < 0 or style.max() > 1:
        raise ValueError(f"the style image must be in [0, 1], got values {style.min():.3f} .. {style.max():.3f}")


class StyleTask(Task):
    """Train a TransformerNet on `content` crops towards the style of one image (see module doc)."""

    name = "style"
    preview_columns = 2

    def __init__(self, settings: StyleSettings, content: ImageSet, style: Tensor, vgg: VGG16Features,
                 style_name: str = "") -> None:
        check_style_image(style)
        missing = [n for n in (CONTENT_LAYER, *STYLE_LAYERS) if n not in vgg._modules]
        if missing:
            raise ValueError(f"the loss network lacks layers {missing}; load VGG-16 at least up to relu4_3")
        self.settings, self.content, self.style, self.vgg = settings, content, style, vgg
        self.style_name = style_name
        self._targets: dict[str, Tensor] | None = None

    def describe(self) -> dict[str, Any]:
        s = asdict(self.settings)
        return {
            "settings": s,
            "style": {"name": self.style_name, "size": list(self.style.shape[-2:])},
            "loss_network": {"pooling": self.vgg.pooling, "content": CONTENT_LAYER, "style": list(STYLE_LAYERS)},
            "data": {"folder": self.content.root.name, "images": len(self.content),
                     "held_out": len(self.content.held_out)},
        }

    def networks(self) -> dict[str, nn.Module]:
        return {"G": init_output(TransformerNet(self.settings.net))}

    def optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        return {"G": adam(nets["G"].parameters(), self.settings.lr, betas=(0.9, 0.999))}

    def make_batch(self, generator: torch.Generator) -> Tensor:
        s = self.settings
        return random_crops(self.content.images, s.batch_size, s.crop, generator)

    def style_targets(self, device: torch.device) -> dict[str, Tensor]:
        """Gram matrices of the style image, [1, C, C] per style layer (computed once)."""
        if self._targets is None or next(iter(self._targets.values())).device != device:
            self.vgg.to(device)
            with torch.no_grad():
                feats = self.vgg.features(self.style.to(device), STYLE_LAYERS)
            self._targets = {name: gram(feats[name]) for name in STYLE_LAYERS}
        return self._targets

    def losses(self, net: nn.Module, content: Tensor, ctx: StepContext | None = None) -> dict[str, Tensor]:
        """The weighted loss terms and their sum ('total') for one batch of [0, 1] content crops."""
        s = self.settings
        targets = self.style_targets(content.device)
        autocast = ctx.autocast() if ctx is not None else torch.autocast(content.device.type, enabled=False)
        with autocast:
            out = net(content * 255.0).float() / 255.0
            with torch.no_grad():
                content_feat = self.vgg.features(content, (CONTENT_LAYER,))[CONTENT_LAYER].float()
            feats = self.vgg.features(out, STYLE_LAYERS)
        content_loss = s.content_weight * F.mse_loss(feats[CONTENT_LAYER].float(), content_feat)
        style_loss = sum(
            F.mse_loss(gram(feats[name]), targets[name].expand(out.shape[0], -1, -1)) for name in STYLE_LAYERS
        )
        style_loss = s.style_weight * style_loss
        tv = s.tv_weight * total_variation(out) if s.tv_weight > 0 else out.new_zeros(())
        return {"content": content_loss, "style": style_loss, "tv": tv, "total": content_loss + style_loss + tv}

    def train_step(self, ctx: StepContext, batch: Tensor) -> dict[str, float]:
        terms = self.losses(ctx.nets["G"], batch, ctx)
        ctx.optimize(terms["total"], "G")
        return finite_or_raise({k: v.item() for k, v in terms.items()}, ctx.step)

    def preview(self, nets: dict[str, nn.Module], batch: Tensor) -> Tensor:
        """Rows of (content crop, stylised) for up to 4 items."""
        content = batch[:4]
        out = (nets["G"](content * 255.0) / 255.0).clamp(0, 1)
        return torch.stack([content, out], dim=1).flatten(0, 1)

    def export(self, nets: dict[str, nn.Module]) -> Export:
        return Export(nets["G"], ARCHITECTURE.id, self.settings.net, "stylize")


def load_style_image(path: str | Path, long_side: int | None):
    """The style image as [1, 3, H, W] in [0, 1], resized so its long side is `long_side`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"style image {path}: no such file")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if long_side:
                scale = long_side / max(im.size)
                im = im.resize((max(16, round(im.width * scale)), max(16, round(im.height * scale))),
                               Image.Resampling.LANCZOS)
            array = np.asarray(im)
    except OSError as exc:
        raise ValueError(f"style image {path}: not a readable image ({exc})") from exc
    return layout.from_u8(array)
