"""Small building blocks shared by the architecture files."""

from __future__ import annotations

from torch import nn

NORMS = ("batch", "instance", "none")


def norm_layer(kind: str, channels: int, *, instance_affine: bool = False) -> nn.Module:
    """BatchNorm, InstanceNorm (no running statistics; affine only when asked, as in the public
    pix2pix/CycleGAN code where it is not) or an Identity that holds the slot, so keys keep their
    Sequential indices whatever the norm."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=instance_affine, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")
