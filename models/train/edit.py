"""Training the instruction-conditioned edit generator (task `edit`).

Every step draws random crops of the photos, one mask per crop (`edit_pairs.draw_masks`: blocks,
strokes, irregular, blobs) and one instruction per crop (uniformly from the instructions being
trained), and synthesises the pair with `edit_pairs.make_pair`. The generator gets
`archs.edit.network_input` (image, mask, condition planes), the very input inference builds.

Losses, with *region* = where the instruction acts (the mask; its complement for
`blur_background`):
* L1 to the target over the region x `hole_weight` + L1 over the rest (the rest of the target is
  the input, so this teaches the network to leave it alone; inference composites anyway);
* `adv_weight` x LSGAN: a PatchGAN conditioned on the network input (x and the image concatenated)
  judges the composite (output in the region, input elsewhere) against the real target.
Adam 2e-4, beta1 0.5, the discriminator at `d_lr_ratio` x the generator's rate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import masks, weights
from ..archs.edit import INSTRUCTIONS, OUTSIDE_INSTRUCTIONS, EditConfig, EditGenerator, condition_vector, network_input
from ..archs.patchgan import PatchGAN, PatchGANConfig
from ..colour import match_to_ring
from ..edit import pairs as edit_pairs
from ..layout import from_signed, to_signed
from .data import ImageSet, random_crops
from .engine import Export, StepContext, Task, adam, finite_or_raise


@dataclass(frozen=True)
class EditSettings:
    """What to learn (the engine's RunOptions say how to run)."""

    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-4
    d_lr_ratio: float = 0.5
    adv_weight: float = 0.005
    hole_weight: float = 4.0
    mask_kinds: tuple[str, ...] = edit_pairs.MASK_KINDS
    generator: EditConfig = field(default_factory=EditConfig)
    discriminator_width: int = 32
    init: str | None = None  # start G from this edit weights file (fine-tuning); its tensors must fit `generator`

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.crop < 32 or self.crop % self.generator.stride:
            raise ValueError(
                f"crop must be >= 32 and a multiple of the stride {self.generator.stride}, got {self.crop}"
            )
        unknown = set(self.mask_kinds) - set(edit_pairs.MASK_KINDS)
        if not self.mask_kinds or unknown:
            raise ValueError(f"mask_kinds must be a non-empty subset of {edit_pairs.MASK_KINDS}, got {self.mask_kinds}")
        if self.lr <= 0 or self.d_lr_ratio <= 0 or self.adv_weight < 0 or self.hole_weight <= 0:
            raise ValueError("lr, d_lr_ratio and hole_weight must be > 0 and adv_weight >= 0")

    @property
    def instructions(self) -> tuple[str, ...]:
        return self.generator.instructions


def parse_instructions(text: str) -> tuple[str, ...]:
    """'remove, recolour' -> ('remove', 'recolour'); unknown or repeated names are an error."""
    names = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in names if k not in INSTRUCTIONS]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"--instructions must list some of {', '.join(INSTRUCTIONS)} once each; got {text!r}")
    return names


def synthesise_batch(
    config: EditConfig, photos: Tensor, mask: Tensor, instructions: list[str], generator: torch.Generator
) -> dict[str, Tensor]:
    """Pairs for a batch of crops: x (network input), source and target in [-1, 1], region, mask."""
    sources, targets, conditions, regions = [], [], [], []
    for i, name in enumerate(instructions):
        pair = edit_pairs.make_pair(name, photos[i : i + 1], mask[i : i + 1], generator)
        if name == "harmonise_paste" and config.harmonise_transfer:  # as models.edit does before the network
            pair = dataclasses.replace(pair, input=match_to_ring(pair.input, pair.mask))
        sources.append(pair.input)
        targets.append(pair.target)
        conditions.append(condition_vector(config, [name], pair.colour, torch.tensor([pair.amount])))
        regions.append(1.0 - pair.mask if name in OUTSIDE_INSTRUCTIONS else pair.mask)
    source = to_signed(torch.cat(sources))
    x = network_input(config, source, mask, torch.cat(conditions), instructions)
    return {"x": x, "source": source, "target": to_signed(torch.cat(targets)), "region": torch.cat(regions),
            "mask": mask}


class EditTask(Task):
    name = "edit"
    preview_columns = 3

    def __init__(self, settings: EditSettings, data: ImageSet) -> None:
        self.settings, self.data = settings, data

    def describe(self) -> dict[str, Any]:
        settings = asdict(self.settings)
        if self.settings.init is not None:  # the file name only: provenance carries no machine paths
            settings["init"] = Path(self.settings.init).name
        return {
            "settings": settings,
            "data": {"folder": self.data.root.name, "images": len(self.data), "skipped": len(self.data.skipped),
                     "held_out": len(self.data.held_out),
                     "held_out_sources": list(getattr(self.data, "held_out_sources", ()))},
        }

    def networks(self) -> dict[str, nn.Module]:
        s = self.settings
        d_config = PatchGANConfig(input_nc=s.generator.in_channels + 3, ndf=s.discriminator_width, n_layers=3,
                                  norm="instance")
        generator = EditGenerator(s.generator)
        if s.init is not None:
            start = weights.load(s.init)
            if start.arch != "edit" or dataclasses.replace(start.config, harmonise_transfer=False) != \
                    dataclasses.replace(s.generator, harmonise_transfer=False):
                raise ValueError(f"--init {s.init}: a {start.arch!r} model with config {start.config}; this run builds "
                                 f"'edit' with {s.generator} (only harmonise_transfer may differ)")
            generator.load_state_dict(start.module.state_dict())
        return {"G": generator, "D": PatchGAN(d_config)}

    def optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        s = self.settings
        return {"G": adam(nets["G"].parameters(), s.lr), "D": adam(nets["D"].parameters(), s.lr * s.d_lr_ratio)}

    def make_batch(self, generator: torch.Generator) -> dict[str, Tensor]:
        s = self.settings
        photos = random_crops(self.data.images, s.batch_size, s.crop, generator)
        mask = edit_pairs.draw_masks(s.batch_size, s.crop, s.mask_kinds, generator)
        picks = torch.randint(len(s.instructions), (s.batch_size,), generator=generator).tolist()
        return synthesise_batch(s.generator, photos, mask, [s.instructions[i] for i in picks], generator)

    def train_step(self, ctx: StepContext, batch: dict[str, Tensor]) -> dict[str, float]:
        s = self.settings
        x, source, target, region = batch["x"], batch["source"], batch["target"], batch["region"]
        with ctx.autocast():
            out = ctx.nets["G"](x).float()
        comp = out * region + source * (1 - region)
        with ctx.autocast():
            d_real = ctx.nets["D"](torch.cat([x, target], 1)).float()
            d_fake = ctx.nets["D"](torch.cat([x, comp.detach()], 1)).float()
        loss_d = 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake**2).mean()
        ctx.optimize(loss_d, "D")
        with ctx.frozen("D") as d, ctx.autocast():
            d_on_fake = d(torch.cat([x, comp], 1)).float()
        adv = ((d_on_fake - 1) ** 2).mean()
        error = (out - target).abs()
        inside = (error * region).sum() / (3 * region.sum()).clamp(min=1)
        rest = (error * (1 - region)).sum() / (3 * (1 - region).sum()).clamp(min=1)
        loss_g = s.hole_weight * inside + rest + s.adv_weight * adv
        ctx.optimize(loss_g, "G")
        return finite_or_raise(
            {"loss_d": loss_d.item(), "l1_region": inside.item(), "l1_rest": rest.item(), "adv": adv.item()}, ctx.step
        )

    def preview(self, nets: dict[str, nn.Module], batch: dict[str, Tensor]) -> Tensor:
        """Rows of (input with the mask tinted, result composited, target) for up to 5 items."""
        x, source, target, region = (batch[k][:5] for k in ("x", "source", "target", "region"))
        out = nets["G"](x).float()
        comp = out * region + source * (1 - region)
        shown = to_signed(masks.overlay(batch["mask"][:5].cpu(), from_signed(source).cpu())).to(source.device)
        rows = torch.stack([shown, comp, target], dim=1).flatten(0, 1)
        return from_signed(rows)

    def export(self, nets: dict[str, nn.Module]) -> Export:
        return Export(nets["G"], "edit", self.settings.generator, "edit")
