"""Training an `enhance_unet` restorer/enhancer as a conditional GAN.

Pairs come from one of two sources:

* **synthetic** (the default): random crops of clean photos are the targets; the inputs are the same
  crops passed through `models.enhance.degrade.degrade` with the task's `DegradeConfig` (restoration:
  `RESTORE`, enhancement: `ENHANCE`, or any mix), seeded per step so a resumed run sees the same pairs;
* **paired**: real (degraded A, clean B) pairs from `data.load_pairs` (folders A/ and B/, or A|B
  side by side), cropped at the same place.

Losses: L1 to the clean image (or, `pixel_loss="psnr"`, the mean over crops of log(MSE), which is the mean
PSNR the evaluations report, capped at PSNR_CEILING_DB) plus a small LSGAN term from a PatchGAN that sees
(input, output) pairs, as pix2pix conditions its discriminator (with `adv_weight` 0 the discriminator is
not run at all).
Stage "tone" trains only the tone stage of a network that has one (`EnhanceConfig.tone_knots`), on its own
output: the restorer behind it is frozen and not even run, so a trained restorer (`init`) gains a blind
exposure / contrast / colour correction in front without being retrained. A tone stage judges the whole
picture, and a crop's statistics are not a photo's (a crop of shadow looks under-exposed): with
`tone_view="photo"` the stage reads the whole photo (squashed to PHOTO_VIEW px square and degraded with the
crop's own draws) and its correction is scored on the crop, as the node applies it (on the held-out sources it
generalised worse than crops: models/weights/README.md). A gated stage
(`EnhanceConfig.tone_gate`) may also be taught its gate directly (`gate_weight`): the L1 distance of the gate
to 1 where the degradation's colour fault alone costs the picture the stage reads more than GATE_FAULT_DB, to
0 elsewhere (no colour fault, or one too slight to be worth a correction). Stage "gate" trains only that
gate (with its own hidden layer, `EnhanceConfig.tone_gate_encoder`, when it has one): the curve stays exactly
as trained, and the gate learns when to apply it.
Optionally (`perceptual_weight` > 0, off by default so that training needs no pretrained network) a
perceptual term on a frozen VGG-16 (`models.train.features`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import weights
from ..archs.enhance import (
    ARCHITECTURE,
    EnhanceConfig,
    EnhanceNet,
    add_block_guide,
    add_gate_reading,
    add_vgg_reading,
)
from ..archs.patchgan import PatchGAN, PatchGANConfig
from ..archs.vgg import VGG16Features
from ..enhance.degrade import RESTORE, DegradeConfig, colour_only, degrade
from ..layout import from_signed, to_signed
from .data import ImageSet, PairSet, random_crops
from .engine import Export, StepContext, Task, adam, finite_or_raise
from .features import check_loss_network, perceptual_term

PIXEL_LOSSES = ("l1", "psnr")
STAGES = ("all", "tone", "gate")
TONE_VIEWS = ("crop", "photo")
PHOTO_VIEW = 256  # tone_view "photo": the side of the whole-photo square the tone stage reads in training
GATE_FAULT_DB = 35.0  # gate_weight: a colour fault that leaves the picture above this PSNR asks for no correction
PSNR_CEILING_DB = 45.0  # default: a crop restored beyond this earns little more (a clean photo need not reach 60 dB)


def psnr_floor(ceiling_db: float) -> float:
    """What `log_mse` adds to each crop's MSE for a ceiling in dB ([-1, 1] scale: peak-to-peak 2)."""
    return 4.0 * 10 ** (-ceiling_db / 10)


def join_tone_stage(restorer: weights.LoadedModel, toned: weights.LoadedModel) -> weights.LoadedModel:
    """The restorer of `restorer` behind the trained tone stage of `toned` (both `enhance_unet` models).

    Stage "tone" trains with the restorer frozen and not run, so the stage's weights do not depend on the
    restorer it was trained in front of: it carries over unchanged to a retrained one.
    """
    for name, model in (("restorer", restorer), ("tone", toned)):
        if model.arch != ARCHITECTURE.id:
            raise ValueError(f"--{name} {model.path}: an {ARCHITECTURE.id!r} model is needed, got {model.arch!r}")
    if restorer.config.tone_knots:
        raise ValueError(f"--restorer {restorer.path}: it has a tone stage already (tone_knots "
                         f"{restorer.config.tone_knots}); give the restorer without one")
    if not toned.config.tone_knots or toned.config.channels != restorer.config.channels:
        raise ValueError(f"--tone {toned.path}: a trained tone stage for {restorer.config.channels}-channel images is "
                         f"needed, got tone_knots {toned.config.tone_knots} for {toned.config.channels} channels")
    config = dataclasses.replace(restorer.config, tone_knots=toned.config.tone_knots, tone_gate=toned.config.tone_gate,
                                 tone_encoder=toned.config.tone_encoder,
                                 tone_gate_encoder=toned.config.tone_gate_encoder,
                                 tone_levels=toned.config.tone_levels)
    module = EnhanceNet(config).eval()
    state = restorer.module.state_dict()
    state.update({k: v for k, v in toned.module.state_dict().items() if k.startswith("tone.")})
    module.load_state_dict(state, strict=True)
    provenance = {"restorer": {"file": Path(restorer.path or "").name, **(restorer.provenance or {})},
                  "tone_stage": {"file": Path(toned.path or "").name, **(toned.provenance or {})}}
    return weights.LoadedModel(module=module, arch=ARCHITECTURE.id, config=config, task="enhance",
                               provenance=provenance)


def _reads_vgg(config: EnhanceConfig) -> bool:
    return "vgg" in config.tone_reads


def log_mse(out: Tensor, target: Tensor, ceiling_db: float = PSNR_CEILING_DB) -> Tensor:
    """Mean over the batch of log(MSE + floor) per crop: minimising it maximises the mean PSNR (capped near
    `ceiling_db`), so a clean or lightly degraded crop (small error) counts as much as a heavily degraded one,
    but a crop already past the ceiling stops pulling the network towards pass-through. A crop's pull is
    1 / (its MSE + floor): a lower ceiling lets clean crops pull less against the lightly degraded ones (JPEG)
    that look like them."""
    mse = (out - target).square().flatten(1).mean(dim=1)
    return torch.log(mse + psnr_floor(ceiling_db)).mean()


@dataclass(frozen=True)
class EnhanceSettings:
    degradation: DegradeConfig | None = RESTORE  # None: the data are real pairs
    net: EnhanceConfig = field(default_factory=EnhanceConfig)
    batch_size: int = 16
    crop: int = 128
    zoom: bool = True  # crops of random scale (synthetic pairs only: resampling would alter real noise)
    lr: float = 2e-4
    d_lr_ratio: float = 0.5
    adv_weight: float = 0.005
    discriminator_width: int = 32
    init: str | None = None  # start G from this enhance weights file (fine-tuning); its config must be `net`
    # (up to the noise estimator, and a tone stage `net` adds to a file without one)
    perceptual_weight: float = 0.0  # > 0: add the VGG-16 feature term (needs a loss network, see EnhanceTask)
    pixel_loss: str = "l1"  # "l1", or "psnr": `log_mse`, the mean PSNR over crops negated (up to a scale)
    psnr_ceiling_db: float = PSNR_CEILING_DB  # "psnr": the PSNR past which a crop earns little more
    stage: str = "all"  # "all"; "tone": train the tone stage alone; "gate": only its gate (module doc)
    tone_view: str = "crop"  # stage "tone": what the stage reads, the crop or its whole photo (module doc)
    gate_weight: float = 0.0  # stage "tone", gated: weight of the gate's own target (module doc)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        m = self.net.size_multiple
        if self.crop < max(32, m) or self.crop % m:
            raise ValueError(f"crop must be >= 32 and a multiple of {m}, got {self.crop}")
        if self.adv_weight < 0 or self.perceptual_weight < 0 or self.lr <= 0 or self.d_lr_ratio <= 0:
            raise ValueError("adv_weight and perceptual_weight must be >= 0, lr and d_lr_ratio > 0")
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"pixel_loss must be one of {PIXEL_LOSSES}, got {self.pixel_loss!r}")
        if not 20 <= self.psnr_ceiling_db <= 80:
            raise ValueError(f"psnr_ceiling_db must be in [20, 80] dB, got {self.psnr_ceiling_db}")
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.stage == "tone" and not self.net.tone_knots:
            raise ValueError("stage 'tone' needs a network with a tone stage (tone_knots > 0)")
        if self.stage == "gate" and not self.net.tone_gate:
            raise ValueError("stage 'gate' needs a network with a gated tone stage (tone_gate=True)")
        if self.tone_view not in TONE_VIEWS or (self.tone_view == "photo" and self.stage == "all"):
            raise ValueError(f"tone_view must be one of {TONE_VIEWS}, and 'photo' needs stage 'tone' or 'gate'; got "
                             f"{self.tone_view!r} with stage {self.stage!r}")
        if self.gate_weight < 0 or (self.gate_weight and not (self.stage != "all" and self.net.tone_gate)):
            raise ValueError(f"gate_weight must be >= 0, and > 0 needs stage 'tone' or 'gate' and a gated tone stage; "
                             f"got {self.gate_weight} with stage {self.stage!r}, tone_gate {self.net.tone_gate}")


class EnhanceTask(Task):
    name = "enhance"
    preview_columns = 3

    def __init__(self, settings: EnhanceSettings, data: ImageSet | PairSet, vgg: VGG16Features | None = None,
                 tone_vgg: VGG16Features | None = None) -> None:
        """`vgg`: the frozen loss network of the perceptual term (needed when settings.perceptual_weight > 0).
        `tone_vgg`: the anti-aliased VGG-16 (stlpips-pytorch's) that a tone stage reading with it copies when
        the start file has none."""
        paired = isinstance(data, PairSet)
        if settings.perceptual_weight > 0:
            check_loss_network(vgg)
        if _reads_vgg(settings.net) and tone_vgg is not None and tone_vgg.pooling != "blur":
            raise ValueError(f"the tone stage reads with the anti-aliased VGG-16 of "
                             f"stlpips-pytorch (blur pooling), got one with {tone_vgg.pooling!r} pooling")
        self.tone_vgg = tone_vgg
        if paired != (settings.degradation is None):
            raise ValueError("real pairs need degradation=None, and a degradation needs single images (not pairs)")
        if paired and data.a is None:
            raise ValueError("enhance trains on real pairs or on degradations, not on synthetic pix2pix pairs")
        self.settings, self.data, self.vgg = settings, data, vgg
        # one [6, H, W] image per pair (degraded, clean), so a crop takes the same window from both
        self._images = [torch.cat([a, b]) for a, b in zip(data.a, data.b, strict=True)] if paired else data.images
        if settings.tone_view == "photo" and (paired or settings.degradation is None):
            raise ValueError("tone_view 'photo' degrades whole photos: it needs single images and a degradation")
        self._photos = [_squashed(image, PHOTO_VIEW) for image in self._images] if settings.tone_view == "photo" else []

    def describe(self) -> dict[str, Any]:
        settings = dataclasses.asdict(self.settings)
        if self.settings.init is not None:  # file names only: provenance must not carry this machine's paths
            settings["init"] = Path(self.settings.init).name
        return {"settings": settings, "images": len(self._images), "held_out": len(self.data.held_out),
                "held_out_sources": list(getattr(self.data, "held_out_sources", ())), "data": self.data.root.name}

    def networks(self) -> dict[str, nn.Module]:
        s = self.settings
        channels = s.net.channels
        d_config = PatchGANConfig(input_nc=2 * channels, ndf=s.discriminator_width, n_layers=3, norm="none")
        generator = EnhanceNet(s.net)
        if s.init is not None:
            start = weights.load(s.init)
            same = dataclasses.replace(start.config, noise_estimator=s.net.noise_estimator)  # it has no weights
            if start.arch == ARCHITECTURE.id and not start.config.tone_knots:  # a new tone stage starts as the identity
                same = dataclasses.replace(same, tone_knots=s.net.tone_knots, tone_encoder=s.net.tone_encoder)
            if start.arch == ARCHITECTURE.id and not start.config.tone_gate:  # a new gate starts open
                same = dataclasses.replace(same, tone_gate=s.net.tone_gate, tone_gate_encoder=s.net.tone_gate_encoder)
            add_levels = start.arch == ARCHITECTURE.id and bool(start.config.tone_knots) \
                and not start.config.tone_levels and s.net.tone_levels
            if add_levels:
                same = dataclasses.replace(same, tone_levels=True)
            read_gate = start.arch == ARCHITECTURE.id and start.config.tone_gate \
                and not start.config.tone_gate_encoder and start.config.tone_encoder == "cnn" \
                and s.net.tone_gate_encoder == "both"
            if read_gate:  # a trained gate gets a hidden layer of its own that reads the VGG-16 as well
                same = dataclasses.replace(same, tone_gate_encoder="both")
            widen = start.arch == ARCHITECTURE.id and start.config.guide and not start.config.block_guide
            read_vgg = start.arch == ARCHITECTURE.id and bool(start.config.tone_knots) \
                and start.config.tone_encoder == "cnn" and s.net.tone_encoder == "both"
            if read_vgg:  # a trained CNN stage learns to read the VGG-16 as well
                same = dataclasses.replace(same, tone_encoder="both")
            if widen:  # a block guide is added next to the trained ones
                same = dataclasses.replace(same, block_guide=s.net.block_guide)
            if start.arch != ARCHITECTURE.id or same != s.net:
                raise ValueError(f"--init {s.init}: a {start.arch!r} model with config {start.config}; this run builds "
                                 f"{ARCHITECTURE.id!r} with {s.net}")
            state = start.module.state_dict()
            if widen and s.net.block_guide:
                state = add_block_guide(state, s.net)
            if read_vgg:
                state = add_vgg_reading(state)
            if read_gate:
                state = add_gate_reading(state)
            loaded = generator.load_state_dict(state, strict=False)
            if loaded.unexpected_keys or any(not k.startswith("tone.") for k in loaded.missing_keys):
                raise ValueError(f"--init {s.init}: its weights do not fit this network ({loaded})")
            if add_levels:  # a curve fitted to unlevelled input would stand in the levels' way: it starts again
                # from the identity, while the stage's readers and gate keep what they learnt
                nn.init.zeros_(generator.tone.out.weight)
                nn.init.zeros_(generator.tone.out.bias)
        if generator.tone is not None and generator.tone.vgg is not None and not (s.init and _reads_vgg(start.config)):
            if self.tone_vgg is None:
                raise ValueError(f"a tone stage that reads with tone_encoder {s.net.tone_encoder!r} (gate: "
                                 f"{s.net.tone_gate_encoder or 'the same'!r}) needs the VGG-16 "
                                 "of stlpips-pytorch (tone_vgg) the first time")
            generator.tone.vgg.load_state_dict(self.tone_vgg.state_dict())
        if s.stage != "all":  # "gate": the gate and its own hidden layer; the curve stays as it is
            for name, parameter in generator.named_parameters():
                parameter.requires_grad_(name.startswith("tone.gate" if s.stage == "gate" else "tone."))
        if generator.tone is not None and generator.tone.vgg is not None:  # the VGG-16 stays as ImageNet trained it
            generator.tone.vgg.requires_grad_(False)
        return {"G": generator, "D": PatchGAN(d_config)}

    def optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        s = self.settings
        trained = [p for p in nets["G"].parameters() if p.requires_grad]  # stage "tone": the tone stage only
        optimizers = {"G": adam(trained, s.lr, (0.9, 0.999))}
        if s.adv_weight > 0:  # the discriminator learns only when its loss is used
            optimizers["D"] = adam(nets["D"].parameters(), s.lr * s.d_lr_ratio)
        return optimizers

    def make_batch(self, generator: torch.Generator) -> dict[str, Tensor]:
        s = self.settings
        if s.degradation is None:
            pairs = random_crops(self._images, s.batch_size, s.crop, generator, zoom=False)
            degraded, clean = pairs[:, :3], pairs[:, 3:]
        else:
            picks = torch.randint(len(self._images), (s.batch_size,), generator=generator).tolist() \
                if self._photos else None
            clean = random_crops(self._images, s.batch_size, s.crop, generator, zoom=s.zoom, picks=picks)
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            # the nodes receive 8-bit images: the network learns on inputs rounded the same way
            degraded = degrade(clean, s.degradation, seed).mul(255.0).round().div(255.0)
        batch = {"input": degraded, "target": clean}
        if self._photos:  # item i of both batches draws from the same seed stream: the same faults, whole photo
            photos = torch.stack([self._photos[i] for i in picks]).float().div(255.0)
            batch["photo"] = degrade(photos, s.degradation, seed).mul(255.0).round().div(255.0)
        faulted = None
        if s.gate_weight > 0:  # each step decides from its own stream: the colour fault alone, as drawn above
            read = photos if self._photos else clean
            error = (degrade(read, colour_only(s.degradation), seed) - read).square().mean(dim=(1, 2, 3))
            faulted = (error > 10 ** (-GATE_FAULT_DB / 10)).float()
        if s.net.channels == 1:
            batch = {k: t.mean(dim=1, keepdim=True) for k, t in batch.items()}
        batch = {k: to_signed(t) for k, t in batch.items()}
        return batch if faulted is None else {**batch, "faulted": faulted}

    def train_step(self, ctx: StepContext, batch: dict[str, Tensor]) -> dict[str, float]:
        s = self.settings
        x, target = batch["input"], batch["target"]
        gate = None
        with ctx.autocast():
            if s.stage != "all":  # the stage reads the whole photo, or the crop, and corrects the crop
                tone = ctx.nets["G"](batch.get("photo", x), tone_params=True)
                out, gate = tone.to(x.dtype).apply(x).float(), tone.gate
            else:
                out = ctx.nets["G"](x).float()
        l1 = (out - target).abs().mean()
        losses = {"l1": l1.item(), "l1_input": (x - target).abs().mean().item()}
        if s.pixel_loss == "psnr":
            total = log_mse(out, target, s.psnr_ceiling_db)
            losses["log_mse"] = total.item()
        else:
            total = l1
        if s.gate_weight > 0:
            gate_error = (gate - batch["faulted"]).abs().mean()
            total = total + s.gate_weight * gate_error
            losses.update(gate_error=gate_error.item(), faulted=batch["faulted"].mean().item())
        if s.adv_weight > 0:  # with weight 0 the discriminator would only cost time: it stays as initialised
            with ctx.autocast():
                d_real = ctx.nets["D"](torch.cat([x, target], 1)).float()
                d_fake = ctx.nets["D"](torch.cat([x, out.detach()], 1)).float()
            loss_d = 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake**2).mean()
            ctx.optimize(loss_d, "D")
            with ctx.frozen("D") as d, ctx.autocast():
                d_on_fake = d(torch.cat([x, out], 1)).float()
            adv = ((d_on_fake - 1) ** 2).mean()
            total = total + s.adv_weight * adv
            losses.update(loss_d=loss_d.item(), adv=adv.item())
        if s.perceptual_weight > 0:
            perceptual = perceptual_term(self.vgg, ctx, out, target)
            total = total + s.perceptual_weight * perceptual
            losses["perceptual"] = perceptual.item()
        ctx.optimize(total, "G")
        return finite_or_raise(losses, ctx.step)

    def preview(self, nets: dict[str, nn.Module], batch: dict[str, Tensor]) -> Tensor:
        """Rows of (degraded input, output, clean target) for up to 4 items."""
        x, target = batch["input"][:4], batch["target"][:4]
        out = nets["G"](x).float()
        rows = from_signed(torch.stack([x, out, target], dim=1).flatten(0, 1))
        return rows.expand(-1, 3, -1, -1) if rows.shape[1] == 1 else rows

    def export(self, nets: dict[str, nn.Module]) -> Export:
        return Export(nets["G"], ARCHITECTURE.id, self.settings.net, "enhance")


def _squashed(image: Tensor, side: int) -> Tensor:
    """uint8 [C,H,W] -> uint8 [C,side,side], the whole picture squashed to a square as the tone stage's
    thumbnail squashes it (bicubic, antialiased)."""
    out = torch.nn.functional.interpolate(image[None].float(), size=(side, side), mode="bicubic", align_corners=False,
                                          antialias=True)[0]
    return out.clamp(0.0, 255.0).round().to(torch.uint8)
