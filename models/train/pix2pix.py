"""Training pix2pix (Isola et al. 2017, task `translate`): paired image-to-image translation.

Losses as in the paper: the generator minimises BCE-with-logits adversarial loss + `lambda_l1` (100)
x L1(G(A), B); the conditional PatchGAN judges cat(A, B) against cat(A, G(A)), its loss halved. Adam
2e-4, beta1 0.5 for both networks; the learning rates stay constant and then fall linearly to zero
(the engine's `decay_from`; the command line defaults to half the run, the reference's schedule).

Data (`PairSet`):

* two folders ``A/`` and ``B/`` whose files match by relative path without the suffix
  (``A/x/1.png`` pairs with ``B/x/1.jpg``); a name missing on either side is an error, and so is a
  pair whose images differ in size;
* one folder of side-by-side images, A on the left half and B on the right (the reference's
  ``aligned`` format; an odd width drops the last column, as the reference does);
* one folder of photos and a synthetic pair kind from `models.translate.pairs`, applied to each training crop:
  ``colorize`` and ``edges2photo`` make A from the photo (B), the style ``poster`` makes B from the
  photo (A).

Jitter: each item is a random square crop of the pair (the same window on A and B) whose side is
drawn log-uniformly between `crop` and the image's short side and resized to `crop`, and a random
horizontal flip. A `colorize` model is exported with `models.translate.pairs.fold_grey_input`, so it can be
fed colour photos directly (it sees their luma).

Plain regression: `adv_weight` 0 drops the adversarial term (the discriminator is then not run) and
`pixel_loss="l2"` replaces the L1 by the squared error, whose minimiser is the mean of the plausible
answers: for colourisation, a colour hedged towards grey where the photo leaves it open, which is what
PSNR against the true colours rewards.

Chroma only (`chroma_only`, for `colorize`): the generator's output is put on the target's own luma
(`models.colour.with_luma`) before the L1 loss and the discriminator see it, exactly what GAN Image to Image
does with `keep_luminance`. The network is then judged on colour alone and spends nothing on redrawing the
luminance it is given; a small `raw_l1` term on the raw output keeps that output a sensible picture too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import colour
from ..archs.colorize import ARCHITECTURE as VGG_COLORIZER
from ..archs.colorize import VGGColorizer, VGGColorizerConfig
from ..archs.layers import NORMS
from ..archs.patchgan import PatchGAN, PatchGANConfig
from ..archs.pix2pix import RESNET, UNET, ResnetGeneratorConfig, UnetGeneratorConfig
from ..archs.vgg import VGG16Features
from ..layout import from_signed, to_signed
from ..translate import pairs
from .data import PairSet, load_images, random_crops
from .engine import Export, StepContext, Task, adam, finite_or_raise, start_from
from .enhance import log_mse

log = logging.getLogger(__name__)

GENERATORS = ("unet_128", "unet_256", "resnet_6blocks", "resnet_9blocks")
COLORIZERS = ("vgg_colorizer",)  # pix2pix only, for synthetic colorize pairs: `models.archs.colorize`
PIXEL_LOSSES = ("l1", "l2", "psnr")


def generator_config(
    net: str, *, ngf: int = 64, norm: str = "batch", dropout: bool = True, input_nc: int = 3, output_nc: int = 3
) -> UnetGeneratorConfig | ResnetGeneratorConfig:
    """The config of the reference's `--netG` choices (unet_128/256, resnet_6/9blocks)."""
    if net.startswith("unet_") and net in GENERATORS:
        num_downs = {"unet_128": 7, "unet_256": 8}[net]
        return UnetGeneratorConfig(input_nc, output_nc, ngf, num_downs, norm, dropout)
    if net.startswith("resnet_") and net in GENERATORS:
        n_blocks = {"resnet_6blocks": 6, "resnet_9blocks": 9}[net]
        return ResnetGeneratorConfig(input_nc, output_nc, ngf, n_blocks, norm, dropout)
    raise ValueError(f"netG must be one of {GENERATORS}, got {net!r}")


def generator_arch(config: UnetGeneratorConfig | ResnetGeneratorConfig | VGGColorizerConfig) -> str:
    if isinstance(config, VGGColorizerConfig):
        return VGG_COLORIZER.id
    return UNET.id if isinstance(config, UnetGeneratorConfig) else RESNET.id


def build_generator(config: UnetGeneratorConfig | ResnetGeneratorConfig) -> nn.Module:
    return (UNET if isinstance(config, UnetGeneratorConfig) else RESNET).build(config)


def init_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """The reference's `init_weights('normal')`: conv weights N(0, 0.02), norm weights N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return module


# --------------------------------------------------------------------------------------------------
# Data


def load_synthetic(
    root: str | os.PathLike, maker: str, *, holdout: float = 0.0, max_side: int | None = None, min_side: int = 16,
    holdout_sources: tuple[str, ...] = (),
) -> PairSet:
    """Photos under `root` for synthetic pairs (kept in `b`); each crop becomes (A, B) by `pairs.make_pair`.

    `holdout_sources` sets whole first-level folders of `root` aside (never trained on), as the other trainers do.
    """
    if maker not in pairs.KINDS:
        raise ValueError(f"unknown synthetic pair kind {maker!r}; known: {', '.join(pairs.KINDS)}")
    data = load_images(root, min_side=min_side, max_side=max_side, holdout=holdout, holdout_sources=holdout_sources)
    names = [p.relative_to(data.root).as_posix() for p in data.paths]
    held = [p.relative_to(data.root).as_posix() for p in data.held_out]
    return PairSet(root=data.root, kind=f"synthetic:{maker}", b=data.images, a=None, names=names, held_out=held,
                   held_out_sources=tuple(data.held_out_sources))


# --------------------------------------------------------------------------------------------------
# The task


@dataclass(frozen=True)
class Pix2PixSettings:
    """What to learn (the engine's RunOptions say how to run)."""

    net_g: str = "unet_256"
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3
    norm: str = "batch"
    dropout: bool = True
    batch_size: int = 1
    crop: int = 256
    zoom: bool = True
    lr: float = 2e-4
    lambda_l1: float = 100.0
    chroma_only: bool = False  # colorize: judge the output on the target's luma (module doc)
    raw_l1: float = 0.1  # chroma_only: weight of the L1 of the raw output, relative to the chroma-only L1
    adv_weight: float = 1.0  # weight of the adversarial term (0: plain regression, no discriminator)
    pixel_loss: str = "l1"  # "l1" (the paper), "l2" (squared error) or "psnr" (log MSE per crop); x lambda_l1
    init: str | None = None  # start G from this translate model (fine-tuning); its config must be the generator's

    def __post_init__(self) -> None:
        if self.net_g not in GENERATORS + COLORIZERS:
            raise ValueError(f"netG must be one of {GENERATORS + COLORIZERS}, got {self.net_g!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if min(self.ngf, self.ndf, self.n_layers_d, self.batch_size) < 1:
            raise ValueError("ngf, ndf, n_layers_d and batch_size must be >= 1")
        if self.lr <= 0 or self.lambda_l1 < 0:
            raise ValueError(f"lr must be > 0 and lambda_l1 >= 0, got {self.lr} and {self.lambda_l1}")
        if self.raw_l1 < 0 or self.adv_weight < 0:
            raise ValueError(f"raw_l1 and adv_weight must be >= 0, got {self.raw_l1} and {self.adv_weight}")
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"pixel_loss must be one of {PIXEL_LOSSES}, got {self.pixel_loss!r}")
        config = self.generator()
        if self.crop % config.size_multiple or self.crop < config.min_size:
            raise ValueError(
                f"{self.net_g} needs crops that are multiples of {config.size_multiple} and at least "
                f"{config.min_size} px, got crop {self.crop}"
            )

    def generator(self) -> UnetGeneratorConfig | ResnetGeneratorConfig | VGGColorizerConfig:
        if self.net_g == "vgg_colorizer":
            return VGGColorizerConfig(width=self.ngf)
        return generator_config(self.net_g, ngf=self.ngf, norm=self.norm, dropout=self.dropout)


def bce_logits(prediction: Tensor, real: bool) -> Tensor:
    """Vanilla GAN loss on raw logits against an all-real or all-fake target."""
    target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
    return F.binary_cross_entropy_with_logits(prediction, target)


class Pix2PixTask(Task):
    name = "pix2pix"
    preview_columns = 3

    def __init__(self, settings: Pix2PixSettings, data: PairSet, encoder: VGG16Features | None = None) -> None:
        if settings.chroma_only and data.synthetic != "colorize":
            raise ValueError(f"chroma_only trains colourisers: it needs synthetic 'colorize' pairs, got {data.kind!r}")
        if settings.net_g in COLORIZERS:
            if data.synthetic != "colorize":
                raise ValueError(f"{settings.net_g} is a colouriser: it needs synthetic 'colorize' pairs, "
                                 f"got {data.kind!r}")
            if encoder is None or encoder.pooling != "blur":
                raise ValueError(f"{settings.net_g} starts from the trained anti-aliased VGG-16 (blur pooling, the "
                                 f"stlpips-pytorch file): pass it as the encoder")
        self.settings, self.data, self.encoder = settings, data, encoder
        # A and B stacked as one [6, H, W] image each, so a crop takes the same window from both
        self._stacked = [torch.cat([a, b]) for a, b in zip(data.a, data.b, strict=True)] if data.a else []

    def describe(self) -> dict[str, Any]:
        settings = asdict(self.settings)
        if self.settings.init is not None:  # the file name only: provenance carries no machine paths
            settings["init"] = Path(self.settings.init).name
        return {"settings": settings, "data": self.data.describe(),
                "grey_input_folded": self.data.synthetic == "colorize" and self.settings.net_g not in COLORIZERS}

    def networks(self) -> dict[str, nn.Module]:
        s = self.settings
        d_config = PatchGANConfig(input_nc=6, ndf=s.ndf, n_layers=s.n_layers_d, norm=s.norm)
        config = s.generator()
        if isinstance(config, VGGColorizerConfig):
            g = VGGColorizer(config)  # its own init: the head starts grey
            wanted = g.encoder.state_dict()
            g.encoder.load_state_dict({k: v for k, v in self.encoder.state_dict().items() if k in wanted})
        else:
            g = init_weights(build_generator(config))
        if s.init is not None:
            start_from(g, s.init, generator_arch(config), config)
        return {"G": g, "D": init_weights(PatchGAN(d_config))}

    def optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        lr = self.settings.lr
        optimizers = {"G": adam(nets["G"].parameters(), lr)}
        if self.settings.adv_weight > 0:  # the discriminator learns only when its loss is used
            optimizers["D"] = adam(nets["D"].parameters(), lr)
        return optimizers

    def make_batch(self, generator: torch.Generator) -> dict[str, Tensor]:
        s, data = self.settings, self.data
        if data.a is None:
            a, b = pairs.make_pair(data.synthetic, random_crops(data.b, s.batch_size, s.crop, generator, zoom=s.zoom))
        else:
            ab = random_crops(self._stacked, s.batch_size, s.crop, generator, zoom=s.zoom)
            a, b = ab[:, :3], ab[:, 3:]
        return {"A": to_signed(a), "B": to_signed(b)}

    def judged(self, raw: Tensor, b: Tensor) -> Tensor:
        """What the losses see of the generator's output [-1, 1]: with `chroma_only`, its colours on B's luma."""
        if not self.settings.chroma_only:
            return raw
        unit = from_signed(raw.float()).clamp(0.0, 1.0)
        return to_signed(colour.with_luma(unit, colour.luma(from_signed(b))))

    def pixel(self, out: Tensor, b: Tensor) -> Tensor:
        if self.settings.pixel_loss == "psnr":  # the mean PSNR over crops, negated: near-grey photos count fully
            return log_mse(out.float(), b)
        difference = out.float() - b
        return difference.square().mean() if self.settings.pixel_loss == "l2" else difference.abs().mean()

    def train_step(self, ctx: StepContext, batch: dict[str, Tensor]) -> dict[str, float]:
        s = self.settings
        a, b = batch["A"], batch["B"]
        with ctx.autocast():
            raw = ctx.nets["G"](a)
        fake = self.judged(raw, b)
        pixel = self.pixel(fake, b)
        if s.chroma_only:
            pixel = pixel + s.raw_l1 * self.pixel(raw, b)
        losses = {s.pixel_loss: pixel.item()}
        total = s.lambda_l1 * pixel
        if s.adv_weight > 0:
            with ctx.autocast():
                d_real = ctx.nets["D"](torch.cat([a, b], 1)).float()
                d_fake = ctx.nets["D"](torch.cat([a, fake.detach()], 1)).float()
            loss_d = 0.5 * (bce_logits(d_real, True) + bce_logits(d_fake, False))
            ctx.optimize(loss_d, "D")
            with ctx.frozen("D") as d, ctx.autocast():
                d_on_fake = d(torch.cat([a, fake], 1)).float()
            adv = bce_logits(d_on_fake, True)
            total = total + s.adv_weight * adv
            losses.update(loss_d=loss_d.item(), adv=adv.item())
        ctx.optimize(total, "G")
        return finite_or_raise(losses, ctx.step)

    def preview(self, nets: dict[str, nn.Module], batch: dict[str, Tensor]) -> Tensor:
        """Rows of (A, G(A), B) for up to 4 items."""
        a, b = batch["A"][:4], batch["B"][:4]
        rows = torch.stack([a, self.judged(nets["G"](a), b), b], dim=1).flatten(0, 1)
        return from_signed(rows)

    def export(self, nets: dict[str, nn.Module]) -> Export:
        config = self.settings.generator()
        module = nets["G"]
        if self.data.synthetic == "colorize" and not isinstance(config, VGGColorizerConfig):  # it reads the luma itself
            module = pairs.fold_grey_input(module)
        return Export(module, generator_arch(config), config, "translate")
