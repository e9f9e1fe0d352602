"""PatchGAN discriminator (Isola et al. 2017, pix2pix `NLayerDiscriminator`).

A stack of 4x4 convolutions that classifies overlapping patches as real or fake; it outputs raw
logits, one per patch. The module layout matches the public pix2pix/CycleGAN code exactly, so its
checkpoints load without renaming: convs at `model.0`, `model.2`, `model.5`, ... (each conv, norm
and LeakyReLU take one Sequential slot, the norm slot holds an Identity when norm is "none").
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..architecture import Architecture, StateDict
from .layers import NORMS, norm_layer


@dataclass(frozen=True)
class PatchGANConfig:
    input_nc: int = 6
    ndf: int = 64
    n_layers: int = 3
    norm: str = "batch"

    def __post_init__(self) -> None:
        if self.input_nc < 1 or self.ndf < 1 or self.n_layers < 1:
            raise ValueError(
                f"input_nc, ndf and n_layers must be >= 1, got {self.input_nc}, {self.ndf}, {self.n_layers}"
            )
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")




class PatchGAN(nn.Module):
    def __init__(self, config: PatchGANConfig) -> None:
        super().__init__()
        c = config
        use_bias = c.norm == "instance"  # a conv before BatchNorm needs no bias; the reference agrees
        layers: list[nn.Module] = [nn.Conv2d(c.input_nc, c.ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, c.n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < c.n_layers else 1
            layers += [
                nn.Conv2d(c.ndf * prev, c.ndf * mult, 4, stride, 1, bias=use_bias),
                norm_layer(c.norm, c.ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(c.ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _conv_weights(state_dict: StateDict) -> list[str]:
    return sorted(
        (k for k, v in state_dict.items() if k.endswith(".weight") and v.ndim == 4),
        key=lambda k: int(k.split(".")[1]),
    )


def detect(state_dict: StateDict) -> bool:
    keys = list(state_dict)
    if not keys or not all(k.startswith("model.") and k.split(".")[1].isdigit() for k in keys):
        return False
    convs = _conv_weights(state_dict)
    if len(convs) < 3 or any(k.count(".") != 2 for k in keys):
        return False
    expected = [0] + [2 + 3 * i for i in range(len(convs) - 1)]
    # 4x4 kernels throughout (a DnCNN with one output channel has the same key pattern with 3x3 ones).
    kernels = all(state_dict[k].ndim == 4 and tuple(state_dict[k].shape[-2:]) == (4, 4) for k in convs)
    return [int(k.split(".")[1]) for k in convs] == expected and state_dict[convs[-1]].shape[0] == 1 and kernels


def convert(state_dict: StateDict) -> tuple[PatchGANConfig, StateDict]:
    convs = _conv_weights(state_dict)
    first = state_dict[convs[0]]
    if any(k.endswith("running_mean") for k in state_dict):
        norm = "batch"
    elif f"{convs[1][: -len('weight')]}bias" in state_dict:
        norm = "instance"
    else:
        norm = "none"
    config = PatchGANConfig(input_nc=first.shape[1], ndf=first.shape[0], n_layers=len(convs) - 2, norm=norm)
    return config, dict(state_dict)


ARCHITECTURE = Architecture(
    id="patchgan",
    config_cls=PatchGANConfig,
    build=PatchGAN,
    tasks=("discriminate",),
    description="PatchGAN discriminator (pix2pix NLayerDiscriminator), raw logits per patch",
    detect=detect,
    convert=convert,
    example_configs=(
        PatchGANConfig(input_nc=6, ndf=8, n_layers=3, norm="batch"),
        PatchGANConfig(input_nc=3, ndf=4, n_layers=2, norm="instance"),
        PatchGANConfig(input_nc=4, ndf=4, n_layers=1, norm="none"),
    ),
)
