"""ST-LPIPS: the shift-tolerant LPIPS perceptual distance (Ghildyal & Liu 2022), VGG-16 variant.

LPIPS (Zhang et al. 2018, version 0.1) compares two images through a fixed network: the features
of both at `STLPIPS_LAYERS` are unit-normalised over channels (eps 1e-10), their squared difference
is weighted per channel by a learned 1x1 head (no bias), averaged over the map and summed over the
layers. ST-LPIPS ("Shift-tolerant perceptual similarity metric", ECCV 2022) uses a VGG-16 with
anti-aliased pooling (`models.archs.vgg`, pooling "blur") and heads trained for it, so a one or two
pixel shift costs far less than noise of the same PSNR. 0 means identical; larger is more different.

Trunk and heads come from the file that ships in the `stlpips-pytorch` package
(`models.pretrained.read_stlpips_state`); the package itself is never imported. The result equals
the package's ``LPIPS(net="vgg", variant="shift_tolerant")(a, b, normalize=True)`` (its ScalingLayer
on [-1, 1] inputs is the ImageNet normalisation `VGG16Features` applies to [0, 1] inputs).

* `stlpips(a, b)`: the distance of two BCHW batches in [0, 1], float32 [B], under `torch.no_grad`,
  with a cached network per device (loaded once).
* `load_stlpips(path, device)`: that cached, frozen `STLPIPS` module.
* `STLPIPS(trunk, heads)`: the module itself (no file I/O), differentiable in its inputs.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import pretrained
from .archs.vgg import VGG16Features

__all__ = ["MIN_SIDE", "NORM_EPS", "STLPIPS", "STLPIPS_LAYERS", "load_stlpips", "stlpips"]

STLPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
NORM_EPS = 1e-10
# Each anti-aliased pooling reflection-pads its input by 2 after a stride-1 2x2 max, which needs a
# side of at least 4 there; sides go n -> floor(n / 2) + 1, so the image needs 18 px for pool4.
MIN_SIDE = 18


def _unit(x: Tensor) -> Tensor:
    """`x` divided by its L2 norm over channels (+ eps), as LPIPS' ``normalize_tensor``."""
    return x / (x.square().sum(dim=1, keepdim=True).sqrt() + NORM_EPS)


def _check_images(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"ST-LPIPS compares images of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() != 4 or a.shape[1] != 3:
        raise ValueError(f"ST-LPIPS takes RGB batches [B, 3, H, W], got {tuple(a.shape)}")
    if min(a.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"ST-LPIPS needs images of at least {MIN_SIDE}x{MIN_SIDE} px, got {tuple(a.shape[-2:])}")


class STLPIPS(nn.Module):
    """ST-LPIPS-VGG distance of RGB batches in [0, 1]: `forward(a, b)` returns float32 [B].

    `trunk` is a `VGG16Features("blur")` reaching relu5_3; `heads` the five [1, C, 1, 1] LPIPS
    weights in `STLPIPS_LAYERS` order. Parameters are frozen; gradients flow to the inputs.
    """

    def __init__(self, trunk: VGG16Features, heads: Sequence[Tensor]) -> None:
        super().__init__()
        layers = dict(trunk.named_children())
        if trunk.pooling != "blur" or any(n not in layers for n in STLPIPS_LAYERS):
            raise ValueError("ST-LPIPS needs the anti-aliased VGG-16 (pooling 'blur') up to relu5_3")
        widths = [layers[n.replace("relu", "conv")].out_channels for n in STLPIPS_LAYERS]
        shapes = [tuple(h.shape) for h in heads]
        if shapes != [(1, c, 1, 1) for c in widths]:
            raise ValueError(f"ST-LPIPS heads must be [1, C, 1, 1] for C in {widths}, got {shapes}")
        self.trunk = trunk.requires_grad_(False).eval()
        for k, head in enumerate(heads):
            self.register_buffer(f"lin{k}", head.detach().float().clone())

    def heads(self) -> list[Tensor]:
        return [getattr(self, f"lin{k}") for k in range(len(STLPIPS_LAYERS))]

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        _check_images(a, b)
        n = a.shape[0]
        feats = self.trunk.features(torch.cat([a, b]).float(), STLPIPS_LAYERS)  # one pass for both
        total = a.new_zeros(n, dtype=torch.float32)
        for name, head in zip(STLPIPS_LAYERS, self.heads(), strict=True):
            f = _unit(feats[name])
            total = total + F.conv2d((f[:n] - f[n:]).square(), head).mean(dim=(1, 2, 3))
        return total


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, device: str) -> STLPIPS:
    if device != "cpu":
        return copy.deepcopy(_load_cached(path, "cpu")).to(device)
    state, heads = pretrained.read_stlpips_state(path)
    trunk = VGG16Features("blur", "relu5_3")
    trunk.load_state_dict(state, strict=True)
    return STLPIPS(trunk, heads).eval()


def load_stlpips(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> STLPIPS:
    """The frozen ST-LPIPS module on `device`, from `path` or the installed stlpips-pytorch file (None).

    Cached per (file, device) and shared between callers: do not train, move or modify it.
    FileNotFoundError naming ``pip install 'stlpips-pytorch==0.0.2'`` when there is no file.
    """
    found = pretrained.stlpips_file(path).resolve()
    return _load_cached(str(found), str(torch.device(device)))


def stlpips(a: Tensor, b: Tensor, path: str | os.PathLike | None = None) -> Tensor:
    """ST-LPIPS-VGG distance of each pair of `a`, `b` (BCHW RGB in [0, 1], one shape): float32 [B].

    Computed without gradients on the images' device; the network is loaded once (`load_stlpips`).
    """
    _check_images(a, b)
    model = load_stlpips(path, a.device)
    with torch.no_grad():
        return model(a, b)
