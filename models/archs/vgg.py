"""VGG-16 feature extractor: the loss network of style training and an AdaIN encoder.

`VGG16Features` is VGG-16's convolutional part (conv1_1 .. relu5_3, or cut after any named layer)
with ImageNet normalisation inside: it takes RGB images in [0, 1]. Layers are named children
(`conv1_1`, `relu1_1`, ..., `pool1`, ...), so state dict keys read `conv3_2.weight`.

Two weight sources, both read with `torch.load(weights_only=True)`:

* a torchvision `vgg16-*.pth` file (keys `features.N.weight`, classifier keys ignored): plain 2x2
  max pooling (`pooling="max"`);
* the VGG-16 that ships in the `stlpips-pytorch` package (`weights/vST0.0/vgg_shift_tolerant.pth`,
  BSD-2): a VGG-16 trained with anti-aliased pooling (Zhang 2019, "Making convolutional networks
  shift-invariant again"), keys `net.sliceK.N.weight` plus LPIPS heads (`lin*`, ignored) and the
  input scaling layer (checked: it is ImageNet normalisation on [-1, 1] inputs). Each pooling is
  `MaxPool2d(2, stride=1)`, reflection padding of 2 on every side and a depthwise [1, 2, 1] x [1, 2, 1]
  / 16 blur with stride 2 (`pooling="blur"`, the package's `Downsample(filt_size=3, pad_more=True)`).
  A side of n px becomes floor(n / 2) + 1, so maps are slightly larger than n / 2. The file stores the
  blur filters; the loader checks them against ours.

This file only maps state dicts; reading the files is `models.pretrained.load_vgg16`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
POOLINGS = ("max", "blur")

# (block, convs, channels): VGG-16 configuration "D".
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))


def layer_names() -> tuple[str, ...]:
    """Every layer in order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ..., relu5_3 (no pool5)."""
    names: list[str] = []
    for block, convs, _ in _BLOCKS:
        if block > 1:
            names.append(f"pool{block - 1}")
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
    return tuple(names)


LAYERS = layer_names()
CONVS = tuple(n for n in LAYERS if n.startswith("conv"))
_TORCHVISION_INDEX = {}  # conv name -> torchvision `features` index
_STLPIPS_INDEX = {}  # conv name -> (slice, index) in the stlpips network
_STLPIPS_FILTERS = {}  # pool name -> (slice, index) of its blur filter


def _index_tables() -> None:
    tv = st = 0
    for name in LAYERS:
        if name.startswith("pool"):
            block = int(name[4:])
            tv += 1  # MaxPool2d(2, 2)
            _STLPIPS_FILTERS[name] = (block + 1, st + 1)  # MaxPool2d(2, 1) then Downsample
            st += 2
        elif name.startswith("conv"):
            _TORCHVISION_INDEX[name] = tv
            _STLPIPS_INDEX[name] = (int(name[4]), st)
            tv += 1
            st += 1
        else:
            tv += 1
            st += 1


_index_tables()


def binomial_filter(channels: int) -> Tensor:
    """[channels, 1, 3, 3] depthwise blur: outer([1, 2, 1], [1, 2, 1]) / 16."""
    a = torch.tensor([1.0, 2.0, 1.0])
    return (a[:, None] * a[None, :] / 16.0).expand(channels, 1, 3, 3).contiguous()


class BlurMaxPool(nn.Module):
    """Anti-aliased max pooling: max over 2x2 at stride 1, reflection pad 2, blur with stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("filt", binomial_filter(channels), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(x, 2, stride=1)
        x = F.pad(x, (2, 2, 2, 2), mode="reflect")
        return F.conv2d(x, self.filt.to(x.dtype), stride=2, groups=x.shape[1])


def _check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


class VGG16Features(nn.Sequential):
    """VGG-16 conv layers up to `last`, RGB [0, 1] in (ImageNet normalisation inside).

    `forward(x)` returns the output of `last`; `features(x, names)` the outputs of the named layers.
    """

    def __init__(self, pooling: str = "max", last: str = "relu5_3") -> None:
        _check_pooling(pooling)
        if last not in LAYERS:
            raise ValueError(f"last must be a VGG-16 layer name ({LAYERS[0]} .. {LAYERS[-1]}), got {last!r}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        cin = 3
        for name in LAYERS[: LAYERS.index(last) + 1]:
            if name.startswith("conv"):
                cout = _BLOCKS[int(name[4]) - 1][2]
                layers[name] = nn.Conv2d(cin, cout, 3, padding=1)
                cin = cout
            elif name.startswith("relu"):
                layers[name] = nn.ReLU()
            else:
                layers[name] = nn.MaxPool2d(2, 2) if pooling == "max" else BlurMaxPool(cin)
        super().__init__(layers)
        self.pooling, self.last = pooling, last
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalise(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        x = self.normalise(x)
        for layer in self.children():
            x = layer(x)
        return x

    def features(self, x: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
        """Outputs of the layers in `names` (any order); stops after the deepest one."""
        unknown = [n for n in names if n not in self._modules]
        if unknown:
            raise ValueError(f"unknown or cut-off VGG-16 layers {unknown}; this network has {list(self._modules)}")
        wanted, out = set(names), {}
        x = self.normalise(x)
        for name, layer in self.named_children():
            x = layer(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out


# --------------------------------------------------------------------------------------------------
# Weight files


def is_torchvision_state(state: Mapping[str, Tensor]) -> bool:
    return all(f"features.{i}.weight" in state for i in _TORCHVISION_INDEX.values())


def is_stlpips_state(state: Mapping[str, Tensor]) -> bool:
    return all(f"net.slice{s}.{i}.weight" in state for s, i in _STLPIPS_INDEX.values())


def _conv_state(state: Mapping[str, Tensor], keys: Mapping[str, str], last: str) -> dict[str, Tensor]:
    """Our keys for the convs up to `last`, from `keys` (our conv name -> the file's key prefix), shape-checked."""
    kept = LAYERS[: LAYERS.index(last) + 1]
    out = {}
    cin = 3
    for name in CONVS:
        cout = _BLOCKS[int(name[4]) - 1][2]
        if name in kept:
            for part, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
                tensor = state[f"{keys[name]}.{part}"]
                if tuple(tensor.shape) != shape:
                    found = tuple(tensor.shape)
                    raise ValueError(f"VGG-16 {name}.{part}: expected shape {shape}, the file has {found}")
                out[f"{name}.{part}"] = tensor.float()
        cin = cout
    return out


def state_from_torchvision(state: Mapping[str, Tensor], last: str = "relu5_3") -> dict[str, Tensor]:
    return _conv_state(state, {n: f"features.{i}" for n, i in _TORCHVISION_INDEX.items()}, last)


def state_from_stlpips(state: Mapping[str, Tensor], last: str = "relu5_3") -> dict[str, Tensor]:
    """Our conv keys from the stlpips file; its blur filters and input scaling are checked, not loaded."""
    for pool, (s, i) in _STLPIPS_FILTERS.items():
        key = f"net.slice{s}.{i}.filt"
        if key in state:
            channels = state[key].shape[0]
            if not torch.allclose(state[key].float(), binomial_filter(channels), atol=1e-6):
                raise ValueError(f"{key} ({pool}) is not the [1, 2, 1] blur this network reproduces")
    if "scaling_layer.shift" in state:  # LPIPS takes [-1, 1]: shift = 2 * mean - 1, scale = 2 * std
        shift = torch.tensor(IMAGENET_MEAN) * 2 - 1
        scale = torch.tensor(IMAGENET_STD) * 2
        if not (torch.allclose(state["scaling_layer.shift"].flatten().float(), shift, atol=2e-3)
                and torch.allclose(state["scaling_layer.scale"].flatten().float(), scale, atol=2e-3)):
            raise ValueError("the file's input scaling is not ImageNet normalisation")
    return _conv_state(state, {n: f"net.slice{s}.{i}" for n, (s, i) in _STLPIPS_INDEX.items()}, last)
