"""Fast neural style training (Johnson, Alahi & Fei-Fei 2016): one TransformerNet per style image.

The network sees random crops of content photos and is trained with a perceptual loss computed by a
fixed VGG-16 (`models.archs.vgg`):

- content: mean squared error between the relu2_2 features of the output and of the input;
- style at relu1_2, relu2_2, relu3_3 and relu4_3, each layer weighted by `layer_weights`: the mean
  squared error between Gram matrices (C x C, divided by C * H * W) of the output and of the style
  image (`style_loss="gram"`, the paper's), or between their per-channel means and standard deviations
  (`"meanstd"`, the statistics AdaIN matches);
- optionally total variation (mean absolute difference of neighbouring pixels) for smoothness, and a
  low-pass anchor: the mean squared error between Gaussian-blurred (sigma `LOWPASS_SIGMA` px) output
  and input, which keeps the photo's shapes and tones while leaving fine texture to the style.

With `style_downsample` k > 1 the style term compares the output and the style image both shrunk by
k (antialiased): the loss network then cannot see pixel-scale patterns, so the statistics must be
met with texture at least k times coarser, i.e. strokes.

With `relative`, the content and each style layer's term are divided by the mean square of their
target (and the low-pass term by the crops' variance), so the weights are ratios of comparable
terms whatever the loss network's feature scale; without it the weights are absolute, as in
pytorch/examples (content 1e5, style 1e10, Gram, every layer 1, for a torchvision VGG-16).
The defaults are the recipe of the shipped fast-style model (`models/weights/README.md`).

Why the options. The anti-aliased VGG-16 of stlpips-pytorch answers high frequencies far more
strongly than smooth content: noise of sigma 0.1 raises its relu3_3 error against the clean photo to
6x the features' own energy, while a flat grey picture is only 1x away. Its relu4_3 statistics also
pull 30-100x harder on the pixels than the shallower layers'. A generator trained with the paper's
loss on it finds the cheap way out: a flat picture covered in regular 2-4 px stripes (horizontal,
following the training photos' dominant edges; checkers once crops are randomly transposed). The
low-pass anchor gives the content a gradient that the stripes cannot satisfy, `layer_weights` tame
relu4_3, `transpose` removes the orientation bias, and `style_downsample` 2 (the decisive one) hides
pixel-scale patterns from the style term, so a larger style image (`--style-size`) turns into
strokes a few pixels wide instead of a pixel grid.

Some paintings still came out streaked in one orientation (*The Church at Auvers*): the loss does not ask for
one, the network picks one and draws it over every picture. `symmetric` makes the style term score both
orientations (the output and the painting as they are, and both transposed, each at half weight), and
`equivariance` asks a transposed crop's result, transposed back, to be the crop's own result, so a network
that prefers one orientation everywhere pays for it while strokes that follow the picture's forms do not.

The network works on the 0..255 scale (as the public checkpoints do), VGG on [0, 1]. Its output conv
starts at the ImageNet mean colour with its weights scaled by `OUTPUT_GAIN` (`init_output`). With
PyTorch's default init the first outputs are ~0 (black) with a spread of well under one grey level,
and Adam at lr 1e-3 needs thousands of steps to reach the 0..255 range. The export is a
`transformer_net` model for the task 'stylize': `models.stylize.fast_style` and the GAN Stylize node
load it unchanged.
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
from torchvision.transforms.v2.functional import gaussian_blur

from .. import layout
from ..archs.adain import mean_std
from ..archs.transformer_net import ARCHITECTURE, TransformerNet, TransformerNetConfig
from ..archs.vgg import IMAGENET_MEAN, VGG16Features
from .data import ImageSet, random_crops
from .engine import Export, StepContext, Task, adam, finite_or_raise, start_from

CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
STYLE_LOSSES = ("gram", "meanstd")
LOWPASS_SIGMA = 2.5
OUTPUT_GAIN = 30.0
"""Factor on the default init of the output conv's weights: a start of mean colour +- ~10 grey levels."""


@dataclass(frozen=True)
class StyleSettings:
    batch_size: int = 4
    crop: int = 256
    lr: float = 1e-3
    content_weight: float = 1.0
    style_weight: float = 3.0
    tv_weight: float = 4.0
    style_loss: str = "meanstd"
    layer_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 0.1)  # per style layer, in STYLE_LAYERS order
    relative: bool = True
    lowpass_weight: float = 1.0
    transpose: bool = True  # transpose a random half of the crops (no orientation bias)
    style_downsample: int = 2  # the style term sees the output and the style image shrunk by this factor
    symmetric: bool = False  # the style term also compares the transposed output with the transposed style image
    equivariance: float = 0.0  # weight of the difference between net(crop transposed) transposed back and net(crop)
    net: TransformerNetConfig = field(default_factory=TransformerNetConfig)
    init: str | None = None  # start from this transformer_net file (fine-tuning); its config must be `net`

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.crop < 16 or self.crop % 4:
            raise ValueError(f"crop must be a multiple of 4 and >= 16 (TransformerNet's stride), got {self.crop}")
        if min(self.content_weight, self.style_weight, self.tv_weight, self.lowpass_weight, self.equivariance) < 0 \
                or self.lr <= 0:
            raise ValueError("lr must be > 0 and the loss weights >= 0")
        if not isinstance(self.style_downsample, int) or not 1 <= self.style_downsample <= 4 or \
                self.crop // self.style_downsample < 16:
            raise ValueError(f"style_downsample must be an int in 1..4 leaving crops of >= 16 px, got "
                             f"{self.style_downsample} with crop {self.crop}")
        if self.style_loss not in STYLE_LOSSES:
            raise ValueError(f"style_loss must be one of {STYLE_LOSSES}, got {self.style_loss!r}")
        if len(self.layer_weights) != len(STYLE_LAYERS) or min(self.layer_weights) < 0:
            raise ValueError(f"layer_weights must be {len(STYLE_LAYERS)} numbers >= 0 (for {', '.join(STYLE_LAYERS)}), "
                             f"got {self.layer_weights}")


def gram(features: Tensor) -> Tensor:
    """Gram matrices [B, C, C] of features [B, C, H, W], divided by C * H * W (float32)."""
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def channel_stats(features: Tensor) -> Tensor:
    """Per-channel means and standard deviations [B, 2C] of features [B, C, H, W] (float32): AdaIN's `mean_std`."""
    mean, std = mean_std(features.float(), eps=0.0)
    return torch.cat([mean.flatten(1), std.flatten(1)], dim=1)


def lowpass(image: Tensor) -> Tensor:
    """The image blurred by a Gaussian of sigma LOWPASS_SIGMA px (what the low-pass anchor compares)."""
    size = 2 * round(3 * LOWPASS_SIGMA) + 1
    return gaussian_blur(image, [size, size], [LOWPASS_SIGMA, LOWPASS_SIGMA])


def shrink(image: Tensor, factor: int) -> Tensor:
    """The image shrunk by an integer factor (bilinear with antialiasing); factor 1 returns it unchanged."""
    if factor == 1:
        return image
    return F.interpolate(image, scale_factor=1.0 / factor, mode="bilinear", align_corners=False, antialias=True)


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
        if self.settings.init is not None:  # the file name only: provenance carries no machine paths
            s["init"] = Path(self.settings.init).name
        return {
            "settings": s,
            "style": {"name": self.style_name, "size": list(self.style.shape[-2:])},
            "loss_network": {"pooling": self.vgg.pooling, "content": CONTENT_LAYER, "style": list(STYLE_LAYERS)},
            "data": {"folder": self.content.root.name, "images": len(self.content),
                     "held_out": len(self.content.held_out)},
        }

    def networks(self) -> dict[str, nn.Module]:
        s = self.settings
        if s.init is None:
            return {"G": init_output(TransformerNet(s.net))}
        return {"G": start_from(TransformerNet(s.net), s.init, ARCHITECTURE.id, s.net)}

    def optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        return {"G": adam(nets["G"].parameters(), self.settings.lr, betas=(0.9, 0.999))}

    def make_batch(self, generator: torch.Generator) -> Tensor:
        s = self.settings
        crops = random_crops(self.content.images, s.batch_size, s.crop, generator)
        if s.transpose:
            flip = torch.rand(s.batch_size, generator=generator) < 0.5
            crops = torch.where(flip.view(-1, 1, 1, 1), crops.transpose(-1, -2), crops)
        return crops

    def statistic(self, features: Tensor) -> Tensor:
        """What the style loss compares: Gram matrices [B, C, C] or channel means and stds [B, 2C]."""
        return gram(features) if self.settings.style_loss == "gram" else channel_stats(features)

    def views(self) -> tuple[bool, ...]:
        """The orientations the style term compares: as is, and transposed when `symmetric`."""
        return (False, True) if self.settings.symmetric else (False,)

    def style_targets(self, device: torch.device) -> dict[tuple[str, bool], Tensor]:
        """The style image's statistic per style layer and view (transposed or not), batch 1 (computed once)."""
        if self._targets is None or next(iter(self._targets.values())).device != device:
            self.vgg.to(device)
            small = shrink(self.style.to(device), self.settings.style_downsample)
            self._targets = {}
            with torch.no_grad():
                for transposed in self.views():
                    feats = self.vgg.features(small.transpose(-1, -2) if transposed else small, STYLE_LAYERS)
                    self._targets.update({(name, transposed): self.statistic(feats[name]) for name in STYLE_LAYERS})
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
            small = shrink(out, s.style_downsample)
            feats = {(name, False): f for name, f in self.vgg.features(small, STYLE_LAYERS).items()}
            if s.symmetric:
                feats.update({(name, True): f for name, f in self.vgg.features(small.transpose(-1, -2),
                                                                               STYLE_LAYERS).items()})
            if s.style_downsample == 1:
                out_content = feats[CONTENT_LAYER, False]
            else:
                out_content = self.vgg.features(out, (CONTENT_LAYER,))[CONTENT_LAYER]
        content_loss = F.mse_loss(out_content.float(), content_feat)
        if s.relative:
            content_loss = content_loss / content_feat.pow(2).mean().clamp(min=1e-30)
        style_loss = out.new_zeros(())
        for (name, transposed), target in targets.items():
            layer_weight = s.layer_weights[STYLE_LAYERS.index(name)] / len(self.views())
            if layer_weight == 0:
                continue
            term = F.mse_loss(self.statistic(feats[name, transposed]), target.expand(out.shape[0], *target.shape[1:]))
            if s.relative:
                term = term / target.pow(2).mean().clamp(min=1e-30)
            style_loss = style_loss + layer_weight * term
        terms = {"content": s.content_weight * content_loss, "style": s.style_weight * style_loss}
        terms["tv"] = s.tv_weight * total_variation(out) if s.tv_weight > 0 else out.new_zeros(())
        if s.lowpass_weight > 0:
            anchor = F.mse_loss(lowpass(out), lowpass(content))
            terms["lowpass"] = s.lowpass_weight * (anchor / content.var().clamp(min=1e-6) if s.relative else anchor)
        if s.equivariance > 0:
            with autocast:
                turned = net(content.transpose(-1, -2) * 255.0).float().transpose(-1, -2) / 255.0
            gap = F.mse_loss(turned, out)
            terms["equivariance"] = s.equivariance * (gap / content.var().clamp(min=1e-6) if s.relative else gap)
        terms["total"] = sum(terms.values())
        return terms

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
