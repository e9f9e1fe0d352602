"""The perceptual training term shared by the trainers: relative VGG-16 feature distance.

The L1 distance of the output's and the target's relu2_2 and relu3_3 features, each divided by the mean
magnitude of the target's features, so that a weight means the same for VGG files whose activations
differ in scale (torchvision's and the anti-aliased one of stlpips-pytorch differ ~20x).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..archs.vgg import VGG16Features
from ..layout import from_signed
from .engine import StepContext

PERCEPTUAL_LAYERS = ("relu2_2", "relu3_3")


def check_loss_network(vgg: VGG16Features | None) -> VGG16Features:
    """`vgg` if it reaches PERCEPTUAL_LAYERS; ValueError saying what is missing otherwise."""
    if vgg is None:
        raise ValueError("perceptual_weight > 0 needs a VGG-16 loss network (models.pretrained.load_vgg16)")
    missing = [n for n in PERCEPTUAL_LAYERS if n not in vgg._modules]
    if missing:
        raise ValueError(f"the loss network lacks layers {missing}; load VGG-16 at least up to relu3_3")
    return vgg


def perceptual_distance(vgg: VGG16Features, out: Tensor, target: Tensor) -> Tensor:
    """Sum over PERCEPTUAL_LAYERS of mean |f(out) - f(target)| / mean |f(target)|; images in [0, 1], 1 or 3 channels."""
    if out.shape[1] == 1:
        out, target = out.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
    f_out = vgg.features(out, PERCEPTUAL_LAYERS)
    with torch.no_grad():
        f_target = vgg.features(target, PERCEPTUAL_LAYERS)
    return sum((f_out[n].float() - f_target[n].float()).abs().mean() / (f_target[n].float().abs().mean() + 1e-6)
               for n in PERCEPTUAL_LAYERS)


def perceptual_term(vgg: VGG16Features, ctx: StepContext, out: Tensor, target: Tensor) -> Tensor:
    """`perceptual_distance` of a training step's [-1, 1] output to its [-1, 1] target, under the step's autocast."""
    with ctx.autocast():
        return perceptual_distance(vgg.to(out.device), from_signed(out), from_signed(target))
