"""Training CycleGAN (Zhu et al. 2017, task `translate`): unpaired translation between two image folders.

Two generators, G_A: A -> B and G_B: B -> A, and two PatchGANs, D_A (judges domain B: real B against
G_A(A)) and D_B (judges domain A), as the reference names them. Losses as in the paper and its code:

* adversarial: LSGAN, G minimises (D(G(x)) - 1)^2, D minimises ((D(real) - 1)^2 + D(fake)^2) / 2;
* cycle consistency: lambda_cycle (10) x (|G_B(G_A(A)) - A| + |G_A(G_B(B)) - B|);
* identity: lambda_identity (0.5) x lambda_cycle x (|G_A(B) - B| + |G_B(A) - A|).

The discriminators see fakes drawn from an image pool of the last `pool_size` (50) generated images
(Shrivastava et al. 2017): once the pool is full, each new fake is either shown as is or swapped for
a random stored one (probability 1/2 each). The pools are part of the training state: the engine
checkpoints them (`Task.state_dict`), so a resumed run continues exactly. The pool's coin flips come
from torch's global RNG, which the checkpoint carries too. Under torchrun each rank keeps its own pools
(of its own fakes) and the checkpoint holds one state per rank.

Adam 2e-4, beta1 0.5; one optimizer over both generators and one over both discriminators, like the
reference. Crops: each item of A and of B is an independent random square crop (side log-uniform
between `crop` and the short side, resized to `crop`) with a random flip (`data.random_crops`).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..archs.layers import NORMS
from ..archs.patchgan import PatchGAN, PatchGANConfig
from ..layout import from_signed, to_signed
from .data import ImageSet, random_crops, step_generator
from .engine import Export, StepContext, Task, adam, finite_or_raise
from .pix2pix import GENERATORS, build_generator, generator_arch, generator_config, init_weights


class ImagePool:
    """The reference's image buffer: up to `size` past fakes, returned in place of new ones half the time."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[Tensor] = []

    def query(self, images: Tensor) -> Tensor:
        """For each item: store it while the pool fills; then return it or a stored one (swapped in), 50/50."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) > 0.5:
                index = int(torch.randint(0, self.size, ()))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict[str, Any]:
        stacked = torch.cat(self.images) if self.images else torch.empty(0)
        return {"size": self.size, "images": stacked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"the checkpoint's image pool holds up to {state['size']} images, this run {self.size}")
        images = state["images"]
        self.images = [images[i : i + 1].clone() for i in range(images.shape[0])] if images.numel() else []


@dataclass(frozen=True)
class CycleGANSettings:
    """What to learn (the engine's RunOptions say how to run)."""

    net_g: str = "resnet_9blocks"
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3
    norm: str = "instance"
    dropout: bool = False
    batch_size: int = 1
    crop: int = 256
    zoom: bool = True
    lr: float = 2e-4
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50

    def __post_init__(self) -> None:
        if self.net_g not in GENERATORS:
            raise ValueError(f"netG must be one of {GENERATORS}, got {self.net_g!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if min(self.ngf, self.ndf, self.n_layers_d, self.batch_size) < 1:
            raise ValueError("ngf, ndf, n_layers_d and batch_size must be >= 1")
        if self.lr <= 0 or self.lambda_cycle < 0 or self.lambda_identity < 0 or self.pool_size < 0:
            raise ValueError("lr must be > 0; lambda_cycle, lambda_identity and pool_size >= 0")
        config = self.generator()
        if self.crop % config.size_multiple or self.crop < config.min_size:
            raise ValueError(
                f"{self.net_g} needs crops that are multiples of {config.size_multiple} and at least "
                f"{config.min_size} px, got crop {self.crop}"
            )

    def generator(self):
        return generator_config(self.net_g, ngf=self.ngf, norm=self.norm, dropout=self.dropout)


def lsgan(prediction: Tensor, real: bool) -> Tensor:
    """Least-squares GAN loss against an all-real (1) or all-fake (0) target."""
    return ((prediction - (1.0 if real else 0.0)) ** 2).mean()


class CycleGANTask(Task):
    name = "cyclegan"
    preview_columns = 3

    def __init__(self, settings: CycleGANSettings, data_a: ImageSet, data_b: ImageSet,
                 out_b: Path | None = None) -> None:
        self.settings, self.data_a, self.data_b, self.out_b = settings, data_a, data_b, out_b
        self.pool_a, self.pool_b = ImagePool(settings.pool_size), ImagePool(settings.pool_size)

    def describe(self) -> dict[str, Any]:
        def facts(data: ImageSet) -> dict[str, Any]:
            return {"folder": data.root.name, "images": len(data), "skipped": len(data.skipped),
                    "held_out": len(data.held_out)}

        return {"settings": asdict(self.settings), "data_a": facts(self.data_a), "data_b": facts(self.data_b)}

    def networks(self) -> dict[str, nn.Module]:
        s = self.settings
        d_config = PatchGANConfig(input_nc=3, ndf=s.ndf, n_layers=s.n_layers_d, norm=s.norm)
        return {
            "G_A": init_weights(build_generator(s.generator())),
            "G_B": init_weights(build_generator(s.generator())),
            "D_A": init_weights(PatchGAN(d_config)),
            "D_B": init_weights(PatchGAN(d_config)),
        }

    def optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        lr = self.settings.lr
        return {
            "G": adam(itertools.chain(nets["G_A"].parameters(), nets["G_B"].parameters()), lr),
            "D": adam(itertools.chain(nets["D_A"].parameters(), nets["D_B"].parameters()), lr),
        }

    def make_batch(self, generator: torch.Generator) -> dict[str, Tensor]:
        s = self.settings
        second = step_generator(int(torch.randint(2**62, (1,), generator=generator)), 0)  # B's own stream
        a = random_crops(self.data_a.images, s.batch_size, s.crop, generator, zoom=s.zoom)
        b = random_crops(self.data_b.images, s.batch_size, s.crop, second, zoom=s.zoom)
        return {"A": to_signed(a), "B": to_signed(b)}

    def state_dict(self) -> dict[str, Any]:
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pool_a.load_state_dict(state["pool_a"])
        self.pool_b.load_state_dict(state["pool_b"])

    def train_step(self, ctx: StepContext, batch: dict[str, Tensor]) -> dict[str, float]:
        s = self.settings
        real_a, real_b = batch["A"], batch["B"]
        g_a, g_b = ctx.nets["G_A"], ctx.nets["G_B"]
        with ctx.frozen("D_A") as d_a, ctx.frozen("D_B") as d_b, ctx.autocast():
            fake_b = g_a(real_a)
            rec_a = g_b(fake_b)
            fake_a = g_b(real_b)
            rec_b = g_a(fake_a)
            adv_a = lsgan(d_a(fake_b).float(), True)
            adv_b = lsgan(d_b(fake_a).float(), True)
            cycle_a = (rec_a.float() - real_a).abs().mean()
            cycle_b = (rec_b.float() - real_b).abs().mean()
            idt_a = idt_b = torch.zeros((), device=real_a.device)
            if s.lambda_identity > 0:
                idt_a = (g_a(real_b).float() - real_b).abs().mean()
                idt_b = (g_b(real_a).float() - real_a).abs().mean()
        loss_g = (adv_a + adv_b + s.lambda_cycle * (cycle_a + cycle_b)
                  + s.lambda_identity * s.lambda_cycle * (idt_a + idt_b))
        ctx.optimize(loss_g, "G")
        pooled_b = self.pool_b.query(fake_b.detach().float())
        pooled_a = self.pool_a.query(fake_a.detach().float())
        with ctx.autocast():
            loss_d_a = 0.5 * (lsgan(ctx.nets["D_A"](real_b).float(), True)
                              + lsgan(ctx.nets["D_A"](pooled_b).float(), False))
            loss_d_b = 0.5 * (lsgan(ctx.nets["D_B"](real_a).float(), True)
                              + lsgan(ctx.nets["D_B"](pooled_a).float(), False))
        ctx.optimize(loss_d_a + loss_d_b, "D")
        losses = {"d_a": loss_d_a.item(), "d_b": loss_d_b.item(), "g_a": adv_a.item(), "g_b": adv_b.item(),
                  "cycle_a": cycle_a.item(), "cycle_b": cycle_b.item(), "idt_a": idt_a.item(), "idt_b": idt_b.item()}
        return finite_or_raise(losses, ctx.step)

    def preview(self, nets: dict[str, nn.Module], batch: dict[str, Tensor]) -> Tensor:
        """Rows of (A, G_A(A), G_B(G_A(A))) then (B, G_B(B), G_A(G_B(B))), up to 2 items each."""
        a, b = batch["A"][:2], batch["B"][:2]
        fake_b, fake_a = nets["G_A"](a), nets["G_B"](b)
        rows_a = torch.stack([a, fake_b, nets["G_B"](fake_b)], dim=1).flatten(0, 1)
        rows_b = torch.stack([b, fake_a, nets["G_A"](fake_a)], dim=1).flatten(0, 1)
        return from_signed(torch.cat([rows_a, rows_b]))

    def export(self, nets: dict[str, nn.Module]) -> Export:
        config = self.settings.generator()
        return Export(nets["G_A"], generator_arch(config), config, "translate")

    def extra_exports(self, nets: dict[str, nn.Module]) -> list[tuple[Path, Export]]:
        if self.out_b is None:
            return []
        config = self.settings.generator()
        return [(Path(self.out_b), Export(nets["G_B"], generator_arch(config), config, "translate"))]
