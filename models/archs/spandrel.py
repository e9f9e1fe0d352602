"""Public architectures of other projects (LaMa, MAT, SCUNet, NAFNet, FBCNN, DnCNN, DRUNet, ...) through spandrel.

spandrel (MIT; one of ComfyUI's own requirements) recognises a state dict by its keys and builds the
network it belongs to. It is optional outside ComfyUI: nothing here imports it until a foreign file
asks for it, and `spandrel_extra_arches` (MAT, Restormer, ...: licences differ per architecture) is
used only when it is installed.

The record `ARCHITECTURE` fits these networks into the pack's own loader: its config says which
spandrel architecture a file holds, what its network needs of an input, and what it is for. The
module is always made from the weights (`from_weights`), since only they describe the network. The
task is derived from spandrel's purpose: inpainting networks serve `inpaint`, 1x restoration networks
`enhance`; upscalers and face restorers are refused with a pointer to where they belong.

`SpandrelNet` wraps spandrel's model so that calling it goes through spandrel's own call function
(the architecture's quirks: FBCNN's tuple output, the noise map of DRUNet/FDnCNN, output clamped to
[0, 1]). Images are in [0, 1]; masks [B, 1, H, W] with 1 = fill. The task functions pad to the
size rule before calling, so spandrel never pads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..architecture import Architecture, SizeRule, StateDict

ARCH_ID = "spandrel"
WRAPPER_PREFIX = "net."
"""Files of ours that hold a spandrel network store the wrapper's keys (`net.` + spandrel's)."""
MISSING = (
    "this file is not one of the pack's own architectures; other projects' networks (LaMa, MAT, SCUNet, NAFNet, "
    "...) are read through the 'spandrel' package, which is not installed here (pip install spandrel; ComfyUI "
    "already ships it)"
)
UPSCALER_HINT = (
    "GAN Enhance keeps the image size; put upscalers in ComfyUI's models/upscale_models/ and use Load Upscale "
    "Model + Upscale Image (using Model)"
)


@dataclass(frozen=True)
class SpandrelConfig:
    """What a file holds: spandrel's architecture id, its purpose, channels and input size rule."""

    architecture: str = ""
    purpose: str = "Restoration"
    channels: int = 3
    multiple: int = 1
    minimum: int = 1
    square: bool = False
    fp16: bool = False
    bf16: bool = False

    @property
    def task(self) -> str:
        return "inpaint" if self.purpose == "Inpainting" else "enhance"


class SpandrelNet(nn.Module):
    """spandrel's network as a module: `forward(image)` for restorers, `forward(image, mask)` for inpainters."""

    def __init__(self, descriptor: Any, config: SpandrelConfig) -> None:
        super().__init__()
        self.net = descriptor.model
        self.config = config
        self._descriptor = descriptor

    def forward(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        # spandrel's descriptor calls self.net (the same object, wherever it was moved) through the
        # architecture's call function; sizes already meet the rule, so it pads nothing.
        if self.config.task == "inpaint":
            return self._descriptor(image, mask)
        return self._descriptor(image)


@functools.cache
def _registry() -> Any:
    try:
        import spandrel
    except ImportError:
        raise ValueError(MISSING) from None
    registry = spandrel.MAIN_REGISTRY.copy()
    try:
        import spandrel_extra_arches
    except ImportError:
        pass
    else:
        registry.add(*spandrel_extra_arches.EXTRA_REGISTRY, ignore_duplicates=True)
    return registry


def available() -> bool:
    """Whether spandrel can be imported here."""
    try:
        _registry()
    except ValueError:
        return False
    return True


def architectures() -> list[str]:
    """The ids spandrel (and spandrel_extra_arches, when installed) can read; [] without spandrel."""
    return [support.architecture.id for support in _registry()] if available() else []


def _detect(state: StateDict) -> bool:
    if not available():
        return False
    return any(support.detect(state) for support in _registry())


def config_of(descriptor: Any) -> SpandrelConfig:
    """The config of a spandrel model descriptor; refuses what the pack's tasks cannot use."""
    arch = descriptor.architecture.id
    if descriptor.purpose == "FaceSR":
        raise ValueError(f"a {arch} face restoration model: it needs aligned 512 px face crops, which the pack's "
                         "nodes do not make")
    if descriptor.scale != 1:
        raise ValueError(f"a {descriptor.scale}x {arch} upscaler; {UPSCALER_HINT}")
    inpainter = descriptor.purpose == "Inpainting"
    channels = descriptor.input_channels
    if channels != descriptor.output_channels or channels not in (1, 3) or (inpainter and channels != 3):
        raise ValueError(f"a {arch} model with {descriptor.input_channels} input and {descriptor.output_channels} "
                         "output channels; the pack runs RGB (3 -> 3) or grey (1 -> 1) models")
    rule = descriptor.size_requirements
    return SpandrelConfig(
        architecture=arch, purpose="Inpainting" if inpainter else "Restoration", channels=channels,
        multiple=rule.multiple_of, minimum=max(1, rule.minimum), square=rule.square,
        fp16=bool(descriptor.supports_half), bf16=bool(descriptor.supports_bfloat16),
    )


def _describe(state: StateDict) -> Any:
    from spandrel import UnsupportedModelError

    try:
        return _registry().load(dict(state))
    except UnsupportedModelError:
        raise ValueError("spandrel does not recognise this state dict") from None
    except Exception as exc:  # spandrel builds from shapes it reads: a damaged or hostile file can fail anywhere
        raise ValueError(f"spandrel recognised the keys but could not build the network ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None


def _convert(state: StateDict) -> tuple[SpandrelConfig, StateDict]:
    return config_of(_describe(state)), state


def wrap(descriptor: Any) -> tuple[SpandrelConfig, SpandrelNet]:
    """A spandrel model descriptor (e.g. ComfyUI's UPSCALE_MODEL) as (config, module)."""
    config = config_of(descriptor)
    return config, SpandrelNet(descriptor, config)


def _from_weights(config: SpandrelConfig, state: StateDict) -> SpandrelNet:
    if state and all(k.startswith(WRAPPER_PREFIX) for k in state):
        state = {k.removeprefix(WRAPPER_PREFIX): v for k, v in state.items()}
    found, module = wrap(_describe(state))
    if found.architecture != config.architecture:
        raise ValueError(f"the file says spandrel architecture {config.architecture!r}, its tensors are "
                         f"{found.architecture!r}")
    return module.eval()


def _build(config: SpandrelConfig) -> nn.Module:
    raise ValueError(f"a spandrel network ({config.architecture or 'any'}) is made from its weights, not from a config")


def _sizes(config: SpandrelConfig) -> SizeRule:
    return SizeRule(multiple=config.multiple, minimum=config.minimum)


ARCHITECTURE = Architecture(
    id=ARCH_ID,
    config_cls=SpandrelConfig,
    build=_build,
    tasks=("inpaint", "enhance"),
    description="a public architecture read through spandrel (its id is the config's 'architecture')",
    detect=_detect,
    convert=_convert,
    sizes=_sizes,
    precisions=("fp32",),
    from_weights=_from_weights,
)
