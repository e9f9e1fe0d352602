"""AdaIN decoder training (Huang & Belongie 2017): a fixed encoder, a decoder learnt for any style.

Each step takes a batch of content crops and a batch of style crops. The fixed encoder gives the
content's relu4_1 features f_c and the style's features at relu1_1 .. relu4_1; the AdaIN target is
t = AdaIN(f_c, f_s) (the content features with the style's per-channel mean and std). The decoder
makes g(t), which is encoded again, and the losses are

- content: mean squared error between encode(g(t)) at relu4_1 and t;
- style: at each of relu1_1, relu2_1, relu3_1, relu4_1, the mean squared error of the per-channel
  means plus that of the per-channel stds between g(t) and the style, summed over the layers;
- optionally (`identity_weight` > 0, not in the paper) an identity term: the mean absolute pixel
  error between g(f_c), the decoder's reconstruction of the content from its own features, and the
  content. It gives the decoder a direct signal to invert the encoder, so short runs (a CPU's worth
  of steps) keep the content's structure; it is what alpha 0 returns at run time.

The decoder is the skip decoder by default (`decoder="skip"`, `models.archs.adain.SkipDecoder`): it reads
relu2_1 and relu3_1 as well, each moved to the style's statistics like relu4_1, so the content's edges
reach it directly. The reference decoder rebuilds the picture from relu4_1 alone; measured on one CPU
thread (4 crops of 128 px, Adam 3e-4), it had not got past the crops' mean colours after 250 steps
(pixel L1 0.18-0.25 against 0.11-0.15 for each crop's mean colour), while the skip decoder's stylised
crops show their content after 200 steps.

The exported file is a whole `adain` model (encoder + decoder) for the task 'stylize', which
`models.stylize.adain_style` and the GAN Style Transfer node load unchanged. The encoder is either
the reference `vgg_normalised` VGG-19 (config encoder 'vgg19_normalised') or a VGG-16 cut after
relu4_1 from `models.archs.vgg` ('vgg16_blurpool' for the anti-aliased stlpips network, 'vgg16' for
a torchvision file).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..archs.adain import ARCHITECTURE, AdaIN, AdaINConfig, mean_std, run_decoder, stylised
from .data import ImageSet, random_crops
from .engine import Export, StepContext, Task, adam, finite_or_raise


@dataclass(frozen=True)
class AdaINSettings:
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-4
    content_weight: float = 1.0
    style_weight: float = 10.0
    identity_weight: float = 0.0
    encoder: str = "vgg16_blurpool"
    decoder: str = "skip"

    def __post_init__(self) -> None:
        AdaINConfig(self.encoder, self.decoder)  # validates the names
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.crop < 32 or self.crop % 8:
            raise ValueError(f"crop must be a multiple of 8 and >= 32 (the encoder's stride), got {self.crop}")
        if self.lr <= 0 or min(self.content_weight, self.style_weight, self.identity_weight) < 0:
            raise ValueError("lr must be > 0 and the loss weights >= 0")


def style_loss(generated: list[Tensor], style: list[Tensor]) -> Tensor:
    """Sum over layers of MSE(means) + MSE(stds) (per channel, over H x W)."""
    total = generated[0].new_zeros((), dtype=torch.float32)
    for g, s in zip(generated, style, strict=True):
        g_mean, g_std = mean_std(g.float())
        s_mean, s_std = mean_std(s.float())
        total = total + F.mse_loss(g_mean, s_mean) + F.mse_loss(g_std, s_std)
    return total


class AdaINTask(Task):
    """Train the decoder of an `adain` model whose encoder weights are given (see module doc)."""

    name = "adain"
    preview_columns = 3

    def __init__(self, settings: AdaINSettings, content: ImageSet, style: ImageSet,
                 encoder_state: dict[str, Tensor], encoder_source: str = "") -> None:
        self.settings, self.content, self.style = settings, content, style
        self.encoder_state, self.encoder_source = encoder_state, encoder_source
        self._encoder: AdaIN | None = None
        self.config = AdaINConfig(settings.encoder, settings.decoder)
        probe = AdaIN(self.config).encoder.state_dict()
        missing = sorted(set(probe) - set(encoder_state))
        unexpected = sorted(set(encoder_state) - set(probe))
        if missing or unexpected:
            raise ValueError(
                f"the encoder weights do not fit encoder {settings.encoder!r}: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "encoder_weights": self.encoder_source,
            "data": {
                "content": {"folder": self.content.root.name, "images": len(self.content),
                            "held_out": len(self.content.held_out)},
                "style": {"folder": self.style.root.name, "images": len(self.style),
                          "held_out": len(self.style.held_out)},
            },
        }

    def networks(self) -> dict[str, nn.Module]:
        """Only the decoder trains; the encoder is fixed and lives outside the engine's networks."""
        return {"decoder": AdaIN(self.config).decoder}

    def encoder(self, device: torch.device) -> nn.Module:
        """The fixed encoder (eval mode, no parameter gradients) on `device`, built once."""
        if self._encoder is None:
            model = AdaIN(self.config)
            model.encoder.load_state_dict(self.encoder_state, strict=True)
            model.decoder = nn.Sequential()  # the encoder's holder; its decoder is the trained one
            self._encoder = model.requires_grad_(False).eval()
        return self._encoder.to(device)

    def optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        return {"decoder": adam(nets["decoder"].parameters(), self.settings.lr, betas=(0.9, 0.999))}

    def make_batch(self, generator: torch.Generator) -> dict[str, Tensor]:
        s = self.settings
        return {
            "content": random_crops(self.content.images, s.batch_size, s.crop, generator),
            "style": random_crops(self.style.images, s.batch_size, s.crop, generator),
        }

    def losses(self, decoder: nn.Module, content: Tensor, style: Tensor,
               ctx: StepContext | None = None) -> dict[str, Tensor]:
        """Weighted content and style losses and their sum ('total') for one batch (module doc)."""
        s = self.settings
        enc = self.encoder(content.device)
        autocast = ctx.autocast() if ctx is not None else torch.autocast(content.device.type, enabled=False)
        height, width = content.shape[-2:]
        batch = content.shape[0]
        with autocast:
            with torch.no_grad():
                levels = [f.float() for f in enc.decoder_inputs(content)]
                style_feats = [f.float() for f in enc.encode_levels(style)]
                targets = stylised(levels, [mean_std(f) for f in style_feats[-len(levels):]])
            inputs = targets
            if s.identity_weight > 0:  # one decoder pass for the stylised and the reconstructed batch
                inputs = [torch.cat([t, f]) for t, f in zip(targets, levels, strict=True)]
            decoded = run_decoder(decoder, inputs, enc.decode_offset)[..., :height, :width]
            decoded, reconstructed = decoded[:batch], decoded[batch:]
            generated = enc.encode_levels(decoded)
        target = targets[-1]
        content_loss = s.content_weight * F.mse_loss(generated[-1].float(), target)
        styled = s.style_weight * style_loss(generated, style_feats)
        terms = {"content": content_loss, "style": styled}
        if s.identity_weight > 0:
            terms["identity"] = s.identity_weight * F.l1_loss(reconstructed.float(), content)
        terms["total"] = sum(terms.values())
        return terms

    def train_step(self, ctx: StepContext, batch: dict[str, Tensor]) -> dict[str, float]:
        terms = self.losses(ctx.nets["decoder"], batch["content"], batch["style"], ctx)
        ctx.optimize(terms["total"], "decoder")
        return finite_or_raise({k: v.item() for k, v in terms.items()}, ctx.step)

    def model(self, decoder: nn.Module) -> AdaIN:
        """The whole adain model: the fixed encoder and (a copy of) `decoder`'s weights, on the CPU."""
        model = AdaIN(self.config)
        model.encoder.load_state_dict(self.encoder_state, strict=True)
        model.decoder.load_state_dict({k: v.detach().cpu() for k, v in decoder.state_dict().items()}, strict=True)
        return model.eval()

    def preview(self, nets: dict[str, nn.Module], batch: dict[str, Tensor]) -> Tensor:
        """Rows of (content, style, result) for up to 4 pairs."""
        content, style = batch["content"][:4], batch["style"][:4]
        model = self.model(nets["decoder"]).to(content.device)
        out = model(content, style).clamp(0, 1)
        return torch.stack([content, style, out], dim=1).flatten(0, 1)

    def export(self, nets: dict[str, nn.Module]) -> Export:
        return Export(self.model(nets["decoder"]), ARCHITECTURE.id, self.config, "stylize")


def encoder_weights(encoder_path: str | None = None, vgg_path: str | None = None) -> tuple[str, dict[str, Tensor], str]:
    """(encoder name, encoder state dict, source file name) for training.

    `encoder_path`: a reference `vgg_normalised.pth` (VGG-19, 'vgg19_normalised'). Otherwise a VGG-16
    cut after relu4_1 from `vgg_path` (torchvision or stlpips file) or, without it, from the installed
    stlpips package ('vgg16_blurpool' or 'vgg16' after its pooling).
    """
    from pathlib import Path

    from .. import pretrained
    from ..archs import adain as adain_arch
    from ..checkpoint import read_foreign

    if encoder_path is not None:
        if vgg_path is not None:
            raise ValueError("give either --encoder (a vgg_normalised.pth) or --vgg (a VGG-16 file), not both")
        state = read_foreign(encoder_path)
        if not adain_arch.is_vgg(state):
            raise ValueError(
                f"{encoder_path}: not an AdaIN vgg_normalised state dict (expected keys 0.weight, 2.weight ... "
                f"29.weight of the reference VGG-19); first keys found: {list(state)[:6]}"
            )
        kept = {k: v.float() for k, v in state.items() if int(k.split(".")[0]) < adain_arch.ENCODER_CHILDREN}
        return "vgg19_normalised", kept, Path(encoder_path).name
    pooling, state = pretrained.read_vgg16_state(vgg_path, last="relu4_1")
    default = f"{pretrained.STLPIPS_REQUIREMENT}:{'/'.join(pretrained.STLPIPS_WEIGHTS)}"
    source = Path(vgg_path).name if vgg_path is not None else default
    return ("vgg16_blurpool" if pooling == "blur" else "vgg16"), state, source
