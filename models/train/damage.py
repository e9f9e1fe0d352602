"""Training a `damage_unet` detector on synthetic old-photo damage.

Each step takes random crops of clean photos and renders damage over them with
`models.damage.render.render` (seeded from the step, so a resumed run sees the same pairs); the target
is the rendered mask. Grey photos reach the network as three equal channels, as they do at inference.

Loss: binary cross-entropy on the logits, with `positive_weight` on damaged pixels (damage covers a
few percent of a photo, so unweighted BCE learns to answer "nothing"), plus `dice_weight` times the
soft Dice loss of the batch, which scores the mask as a whole, as the F1 the detector is judged by.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..archs.damage import ARCHITECTURE, DamageNet, DamageNetConfig
from ..damage.render import DAMAGE, DamageConfig, render
from ..layout import to_signed
from .data import ImageSet, random_crops
from .engine import Export, StepContext, Task, adam, finite_or_raise


@dataclass(frozen=True)
class DamageSettings:
    damage: DamageConfig = DAMAGE
    net: DamageNetConfig = field(default_factory=DamageNetConfig)
    batch_size: int = 12
    crop: int = 128
    zoom: bool = True
    lr: float = 1e-3
    positive_weight: float = 3.0
    dice_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        m = self.net.size_multiple
        if self.crop < max(32, m) or self.crop % m:
            raise ValueError(f"crop must be >= 32 and a multiple of {m}, got {self.crop}")
        if self.lr <= 0 or self.positive_weight <= 0 or self.dice_weight < 0:
            raise ValueError("lr and positive_weight must be > 0, dice_weight >= 0")


def dice_loss(logits: Tensor, target: Tensor) -> Tensor:
    """1 - soft Dice of sigmoid(logits) against the 0/1 target, over the whole batch."""
    p = torch.sigmoid(logits)
    return 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)


class DamageTask(Task):
    name = "damage"
    preview_columns = 3

    def __init__(self, settings: DamageSettings, data: ImageSet) -> None:
        if settings.net.channels != 3:
            raise ValueError("the damage detector trains on colour and grey photos as 3 channels: use channels=3")
        self.settings, self.data = settings, data

    def describe(self) -> dict[str, Any]:
        return {"settings": dataclasses.asdict(self.settings), "images": len(self.data.images),
                "held_out": len(self.data.held_out), "held_out_sources": list(self.data.held_out_sources),
                "data": self.data.root.name}

    def networks(self) -> dict[str, nn.Module]:
        return {"D": DamageNet(self.settings.net)}

    def optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        return {"D": adam(nets["D"].parameters(), self.settings.lr, (0.9, 0.999))}

    def make_batch(self, generator: torch.Generator) -> dict[str, Tensor]:
        s = self.settings
        clean = random_crops(self.data.images, s.batch_size, s.crop, generator, zoom=s.zoom)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        damaged, mask = render(clean, seed, s.damage)
        return {"input": to_signed(damaged), "target": mask}

    def train_step(self, ctx: StepContext, batch: dict[str, Tensor]) -> dict[str, float]:
        s = self.settings
        x, target = batch["input"], batch["target"]
        with ctx.autocast():
            logits = ctx.nets["D"](x).float()
        weight = torch.tensor(s.positive_weight, device=logits.device)
        bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
        dice = dice_loss(logits, target)
        ctx.optimize(bce + s.dice_weight * dice, "D")
        with torch.no_grad():
            found = logits > 0
            hit = (found & (target > 0.5)).sum().item()
            f1 = 2 * hit / max(1, found.sum().item() + (target > 0.5).sum().item())
        return finite_or_raise({"bce": bce.item(), "dice": dice.item(), "f1": f1,
                                "damaged": target.mean().item()}, ctx.step)

    def preview(self, nets: dict[str, nn.Module], batch: dict[str, Tensor]) -> Tensor:
        """Rows of (damaged input, predicted mask, rendered mask) for up to 4 items."""
        x, target = batch["input"][:4], batch["target"][:4]
        found = torch.sigmoid(nets["D"](x).float())
        rows = torch.stack([(x + 1) / 2, found.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)], dim=1)
        return rows.flatten(0, 1).clamp(0, 1)

    def export(self, nets: dict[str, nn.Module]) -> Export:
        return Export(nets["D"], ARCHITECTURE.id, self.settings.net, "detect")
