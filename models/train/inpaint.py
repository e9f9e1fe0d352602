"""Training the Context Encoders (task `inpaint`).

Two variants, both trained with the losses of Pathak et al. 2016 adapted to what they predict:

* `paper`: the paper's generator on 128x128 crops with the central 64x64 missing. The centre is
  filled with the port's mean colour except for a 4 px overlap band the generator also predicts.
  Loss = 0.999 * L2 (the overlap band weighted 10x) + 0.001 * adversarial, where the paper's local
  discriminator judges the 64x64 centre. Adam 2e-4, beta1 0.5; the original Lua code gave the
  discriminator a tenth of the generator's learning rate (`d_lr_ratio`).
* `anymask`: our any-mask generator on random crops with masks drawn per item from the random-block,
  free-form stroke and LaMa-irregular generators of `models.masks` (the same code the mask nodes
  use), or `box`: one object-sized rectangle, each side 30-75 % of the crop, as a removal box drawn
  over a whole object is (the other kinds stay below about half the crop's side). Loss = masked L1
  (hole pixels weighted `hole_weight`x, valid pixels 1x) + `adv_weight` * LSGAN adversarial, where a
  PatchGAN sees the composited image plus the mask, + `perceptual_weight` * the VGG-16 feature
  distance of the composited image to the photo (`models.train.features`; L1 alone gives the mean of
  the plausible fills, a blur, where features ask for texture). `init` fine-tunes a saved any-mask
  model.

Everything here is plain PyTorch; `python -m nodes.train inpaint` is the command line over it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import masks
from ..archs.context_encoder import (
    PAPER_FILL_RGB,
    PAPER_OVERLAP,
    AnyMaskConfig,
    AnyMaskContextEncoder,
    ContextEncoder,
    ContextEncoderConfig,
    ContextEncoderD,
    ContextEncoderDConfig,
)
from ..archs.patchgan import PatchGAN, PatchGANConfig
from ..archs.vgg import VGG16Features
from ..layout import from_signed, to_signed
from .data import ImageSet, random_crops
from .engine import Export, StepContext, Task, adam, finite_or_raise, start_from
from .features import check_loss_network, perceptual_term

VARIANTS = ("anymask", "paper")
MASK_KINDS = ("blocks", "strokes", "irregular", "box")
DEFAULT_MASK_KINDS = ("blocks", "strokes", "irregular")
BOX_SIDE = (0.3, 0.75)
"""The side range of a `box` mask, as a fraction of the crop."""


@dataclass(frozen=True)
class InpaintSettings:
    """What to learn (the engine's RunOptions say how to run)."""

    variant: str = "anymask"
    batch_size: int = 16
    crop: int = 128
    lr: float = 2e-4
    d_lr_ratio: float = 0.1
    adv_weight: float = 0.001
    hole_weight: float = 6.0
    overlap_weight: float = 10.0
    mask_kinds: tuple[str, ...] = DEFAULT_MASK_KINDS
    anymask: AnyMaskConfig = field(default_factory=AnyMaskConfig)
    paper: ContextEncoderConfig = field(default_factory=ContextEncoderConfig)
    discriminator_width: int = 64
    perceptual_weight: float = 0.0  # anymask: > 0 adds the VGG-16 feature term (needs a loss network)
    init: str | None = None  # anymask: start G from this saved any-mask model; its config must be `anymask`

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.variant == "paper" and self.crop != self.paper.image_size:
            raise ValueError(f"the paper variant trains on {self.paper.image_size}px crops, got crop {self.crop}")
        if self.variant == "anymask" and self.crop % self.anymask.stride:
            raise ValueError(f"crop must be a multiple of the model stride {self.anymask.stride}, got {self.crop}")
        unknown = set(self.mask_kinds) - set(MASK_KINDS)
        if not self.mask_kinds or unknown:
            raise ValueError(f"mask_kinds must be a non-empty subset of {MASK_KINDS}, got {self.mask_kinds}")
        if self.lr <= 0 or self.d_lr_ratio <= 0 or self.adv_weight < 0 or self.perceptual_weight < 0:
            raise ValueError("lr and d_lr_ratio must be > 0, adv_weight and perceptual_weight >= 0")
        if self.variant == "paper" and (self.perceptual_weight > 0 or self.init is not None):
            raise ValueError("perceptual_weight and init are for the anymask variant (the paper model keeps its own)")


def paper_hole(size: int) -> tuple[int, int]:
    """(start, end) of the filled square inside a `size` crop: the centre half minus the overlap band."""
    overlap = round(PAPER_OVERLAP * size)
    return size // 4 + overlap, size * 3 // 4 - overlap


def paper_input(real: Tensor) -> Tensor:
    """[-1,1] crops with the centre (minus the overlap band) set to the port's mean colour."""
    lo, hi = paper_hole(real.shape[-1])
    x = real.clone()
    fill = to_signed(torch.tensor(PAPER_FILL_RGB, dtype=real.dtype, device=real.device)).view(1, 3, 1, 1)
    x[:, :, lo:hi, lo:hi] = fill
    return x


def anymask_input(real: Tensor, mask: Tensor) -> Tensor:
    """[-1,1] image with the hole set to 0, plus the mask as a 4th channel."""
    return torch.cat([real * (1 - mask), mask], dim=1)


def draw_masks(batch: int, size: int, kinds: tuple[str, ...], generator: torch.Generator) -> Tensor:
    """One training mask per item, each from a generator kind picked at random."""
    out = []
    for _ in range(batch):
        kind = kinds[int(torch.randint(len(kinds), (1,), generator=generator))]
        seed = int(torch.randint(2**62, (1,), generator=generator))
        if kind == "blocks":
            out.append(masks.random_blocks(size, size, 1, seed, count=(1, 4), size=(0.15, 0.5)))
        elif kind == "box":
            out.append(masks.random_blocks(size, size, 1, seed, count=(1, 1), size=BOX_SIDE, max_coverage=1.0))
        elif kind == "strokes":
            out.append(masks.free_form_strokes(size, size, 1, seed))
        else:
            preset = ("thin", "medium", "thick")[seed % 3]
            out.append(masks.irregular(size, size, 1, seed, preset=preset))
    return torch.cat(out)


class InpaintTask(Task):
    name = "inpaint"
    preview_columns = 3

    def __init__(self, settings: InpaintSettings, data: ImageSet, vgg: VGG16Features | None = None) -> None:
        """`vgg`: the frozen loss network of the perceptual term (needed when settings.perceptual_weight > 0)."""
        if settings.perceptual_weight > 0:
            check_loss_network(vgg)
        self.settings, self.data, self.vgg = settings, data, vgg

    def describe(self) -> dict[str, Any]:
        settings = asdict(self.settings)
        if self.settings.init is not None:  # file names only: provenance must not carry this machine's paths
            settings["init"] = Path(self.settings.init).name
        return {
            "settings": settings,
            "data": {"folder": self.data.root.name, "images": len(self.data), "skipped": len(self.data.skipped),
                     "held_out": len(self.data.held_out), "held_out_sources": list(self.data.held_out_sources)},
        }

    def networks(self) -> dict[str, nn.Module]:
        s = self.settings
        if s.variant == "paper":
            d_config = ContextEncoderDConfig(nc=3, ndf=s.discriminator_width, patch_size=s.paper.output_size)
            return {"G": ContextEncoder(s.paper), "D": ContextEncoderD(d_config)}
        d_config = PatchGANConfig(input_nc=4, ndf=s.discriminator_width, n_layers=3, norm="instance")
        generator = AnyMaskContextEncoder(s.anymask)
        if s.init is not None:
            start_from(generator, s.init, "context_encoder_anymask", s.anymask)
        return {"G": generator, "D": PatchGAN(d_config)}

    def optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        s = self.settings
        return {"G": adam(nets["G"].parameters(), s.lr), "D": adam(nets["D"].parameters(), s.lr * s.d_lr_ratio)}

    def make_batch(self, generator: torch.Generator) -> dict[str, Tensor]:
        s = self.settings
        real = to_signed(random_crops(self.data.images, s.batch_size, s.crop, generator))
        if s.variant == "paper":
            return {"real": real}
        return {"real": real, "mask": draw_masks(s.batch_size, s.crop, s.mask_kinds, generator)}

    def train_step(self, ctx: StepContext, batch: dict[str, Tensor]) -> dict[str, float]:
        if self.settings.variant == "paper":
            return finite_or_raise(self._paper_step(ctx, batch["real"]), ctx.step)
        return finite_or_raise(self._anymask_step(ctx, batch["real"], batch["mask"]), ctx.step)

    # -- the paper's model ---------------------------------------------------------------------------

    def _paper_weights(self, size: int, device: torch.device) -> Tensor:
        """Per-pixel L2 weights over the predicted centre: the overlap band counts `overlap_weight` x."""
        s = self.settings
        band = round(PAPER_OVERLAP * s.crop)
        w = torch.full((1, 1, size, size), s.overlap_weight, device=device)
        w[..., band : size - band, band : size - band] = 1.0
        return w

    def _paper_step(self, ctx: StepContext, real: Tensor) -> dict[str, float]:
        s = self.settings
        q = s.crop // 4
        centre = real[:, :, q : q + s.crop // 2, q : q + s.crop // 2]
        with ctx.autocast():
            fake = ctx.nets["G"](paper_input(real)).float()
            d_real = ctx.nets["D"](centre).float()
            d_fake = ctx.nets["D"](fake.detach()).float()
        ones, zeros = torch.ones_like(d_real), torch.zeros_like(d_real)  # float32, also under bf16 autocast
        loss_d = F.binary_cross_entropy(d_real, ones) + F.binary_cross_entropy(d_fake, zeros)
        ctx.optimize(loss_d, "D")
        with ctx.frozen("D") as d, ctx.autocast():
            d_on_fake = d(fake).float()
        adv = F.binary_cross_entropy(d_on_fake, ones)
        l2 = ((fake - centre) ** 2 * self._paper_weights(fake.shape[-1], fake.device)).mean()
        loss_g = (1 - s.adv_weight) * l2 + s.adv_weight * adv
        ctx.optimize(loss_g, "G")
        return {"loss_d": loss_d.item(), "l2": l2.item(), "adv": adv.item()}

    # -- the any-mask model --------------------------------------------------------------------------

    def _anymask_step(self, ctx: StepContext, real: Tensor, mask: Tensor) -> dict[str, float]:
        s = self.settings
        with ctx.autocast():
            out = ctx.nets["G"](anymask_input(real, mask)).float()
        comp = out * mask + real * (1 - mask)
        loss_d = adv = torch.zeros((), device=real.device)
        if s.adv_weight > 0:  # without an adversarial term the discriminator would only cost time
            with ctx.autocast():
                d_real = ctx.nets["D"](torch.cat([real, mask], 1)).float()
                d_fake = ctx.nets["D"](torch.cat([comp.detach(), mask], 1)).float()
            loss_d = 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake**2).mean()
            ctx.optimize(loss_d, "D")
            with ctx.frozen("D") as d, ctx.autocast():
                d_on_fake = d(torch.cat([comp, mask], 1)).float()
            adv = ((d_on_fake - 1) ** 2).mean()
        error = (out - real).abs()
        hole = (error * mask).sum() / (3 * mask.sum()).clamp(min=1)
        valid = (error * (1 - mask)).sum() / (3 * (1 - mask).sum()).clamp(min=1)
        loss_g = s.hole_weight * hole + valid + s.adv_weight * adv
        losses = {"loss_d": loss_d.item(), "l1_hole": hole.item(), "l1_valid": valid.item(), "adv": adv.item()}
        if s.perceptual_weight > 0:
            perceptual = perceptual_term(self.vgg, ctx, comp, real)
            loss_g = loss_g + s.perceptual_weight * perceptual
            losses["perceptual"] = perceptual.item()
        ctx.optimize(loss_g, "G")
        return losses

    # -- previews and export -------------------------------------------------------------------------

    def preview(self, nets: dict[str, nn.Module], batch: dict[str, Tensor]) -> Tensor:
        """Rows of (input with the hole, result composited, original) for up to 4 items."""
        real = batch["real"][:4]
        if self.settings.variant == "paper":
            x = paper_input(real)
            fake = nets["G"](x)
            q = real.shape[-1] // 4
            result = real.clone()
            result[:, :, q : q + fake.shape[-2], q : q + fake.shape[-1]] = fake
            shown = x
        else:
            mask = batch["mask"][:4]
            out = nets["G"](anymask_input(real, mask))
            result = out * mask + real * (1 - mask)
            shown = to_signed(masks.overlay(mask.cpu(), from_signed(real).cpu())).to(real.device)
        rows = torch.stack([shown, result, real], dim=1).flatten(0, 1)
        return from_signed(rows)

    def export(self, nets: dict[str, nn.Module]) -> Export:
        s = self.settings
        if s.variant == "paper":
            return Export(nets["G"], "context_encoder", s.paper, "inpaint")
        return Export(nets["G"], "context_encoder_anymask", s.anymask, "inpaint")
