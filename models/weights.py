"""Weights files: safetensors with the architecture, its config, the task and provenance inside.

`save()` writes our format; `load()` reads it back: metadata -> config -> build -> strict load.
Foreign checkpoints (`.pth` / `.pt`) are read only with `torch.load(weights_only=True)` (never plain
pickle) and handed to the architecture's converter; `convert()` writes the result in our format.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.nn.modules.module import (
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)

from .architecture import Accepts, SizeRule
from .archs import adain, spandrel
from .checkpoint import Header, read_foreign, read_header
from .registry import ARCHITECTURES, TASKS, Architecture, Registry, StateDict

FORMAT = "gan-edit"
FORMAT_VERSION = 1
FOREIGN_SUFFIXES = (".pth", ".pt", ".ckpt")
MAX_PARAMETERS = 400_000_000
"""Parameter budget of one model file (1.6 GB in float32); set GAN_EDIT_MAX_PARAMETERS for larger ones."""
MAX_MODULES = 2_000
"""Layers (modules) a config may imply; the largest public configs we load have about 300."""
_KEYS = ("format", "format_version", "arch", "config", "task", "provenance")


@dataclass(frozen=True)
class LoadedModel:
    """The model descriptor: a rebuilt module with everything its file and its architecture say about it.

    `task`, `arch`, `config`, `provenance` and `path` come from the file; `sizes`, `precisions`, `scale`
    and `description` from the architecture the registry holds for `arch`. `expect(accepts, who)` is the
    one check a caller makes before using it.
    """

    module: nn.Module
    arch: str
    config: Any
    task: str
    provenance: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def architecture(self) -> Architecture:
        return ARCHITECTURES.get(self.arch)

    @property
    def sizes(self) -> SizeRule:
        """What the network needs of an input's height and width (the task functions meet it)."""
        return self.architecture.sizes(self.config)

    @property
    def precisions(self) -> tuple[str, ...]:
        return self.architecture.precisions

    @property
    def scale(self) -> int:
        return self.architecture.scale

    @property
    def description(self) -> str:
        return self.architecture.description

    def expect(self, accepts: Accepts, who: str) -> LoadedModel:
        """Refuse with a message for people unless `accepts` takes this model; returns the model."""
        message = accepts.refusal(self.arch, self.task, who, self.path or "this model")
        if message is not None:
            raise ValueError(message)
        return self


def save(
    module: nn.Module,
    path: str | os.PathLike,
    arch: str,
    config: Any,
    task: str,
    provenance: Mapping[str, Any] | None = None,
    registry: Registry = ARCHITECTURES,
) -> Path:
    """Write `module`'s weights with its config; atomic (a crash never leaves a half file)."""
    architecture = registry.get(arch)
    if task not in architecture.tasks:
        raise ValueError(f"architecture {arch!r} serves tasks {architecture.tasks}, not {task!r}")
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "arch": arch,
        "config": architecture.config_to_json(config),
        "task": task,
        "provenance": json.dumps(dict(provenance or {}), sort_keys=True, default=str),
    }
    # safetensors refuses tensors that share memory; clone makes each one its own.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a weights file of ours, checked; the tensors are not read."""
    path = Path(path)
    return _checked_metadata(path, read_header(path).metadata)


def _checked_metadata(path: Path, metadata: dict[str, str]) -> dict[str, str]:
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{path}: a safetensors file, but not a gan-edit weights file (metadata has no "
            f"format={FORMAT!r}; found keys {sorted(metadata)}). Convert foreign checkpoints with "
            "models.weights.convert()."
        )
    missing = [k for k in _KEYS if k not in metadata]
    if missing:
        raise ValueError(f"{path}: gan-edit metadata is missing {missing}")
    if not metadata["format_version"].isdigit():
        raise ValueError(f"{path}: format_version must be a number, got {metadata['format_version']!r}")
    if int(metadata["format_version"]) > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written by a newer version (format {metadata['format_version']}, this code reads "
            f"up to {FORMAT_VERSION}); update the pack"
        )
    if metadata["task"] not in TASKS:
        raise ValueError(f"{path}: unknown task {metadata['task']!r}; known: {TASKS}")
    return metadata


def max_parameters() -> int:
    """The parameter budget of a model file: `GAN_EDIT_MAX_PARAMETERS` when set, else `MAX_PARAMETERS`."""
    value = os.environ.get("GAN_EDIT_MAX_PARAMETERS", "")
    if not value:
        return MAX_PARAMETERS
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"GAN_EDIT_MAX_PARAMETERS must be a positive integer, got {value!r}")
    return int(value)


def load(path: str | os.PathLike, registry: Registry = ARCHITECTURES) -> LoadedModel:
    """Rebuild the module a weights file of ours describes and load its tensors strictly.

    Checked before anything is allocated: the header (dtypes, shapes, byte ranges; see
    `checkpoint.read_header`), the metadata, and the tensor shapes the config implies, computed on
    the meta device under the parameter budget (`max_parameters()`). Only a file that fits is built.
    """
    path = Path(path)
    if path.suffix.lower() in FOREIGN_SUFFIXES:
        return load_foreign(path, registry)
    header = read_header(path)
    if header.metadata.get("format") != FORMAT:
        return _load_foreign_safetensors(path, header, registry)
    metadata = _checked_metadata(path, header.metadata)
    try:
        architecture = registry.get(metadata["arch"])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    try:
        values = json.loads(metadata["config"])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: config metadata is not valid JSON ({exc})") from exc
    if not isinstance(values, dict):
        raise ValueError(f"{path}: config metadata must be a JSON object, got {type(values).__name__}")
    if metadata["task"] not in architecture.tasks:
        raise ValueError(f"{path}: says task {metadata['task']!r}, but architecture {architecture.id!r} serves "
                         f"{list(architecture.tasks)}")
    try:
        config = architecture.config_from_dict(values)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    _check_budget(path, header.numel, "declares")
    if architecture.from_weights is not None:
        module = _from_weights(path, architecture, config, _tensors(path))
    else:
        expected = _shapes_on_meta(path, architecture, config, max_parameters())
        problems = _fit_problems(expected, {k: t.shape for k, t in header.tensors.items()})
        if problems:
            raise ValueError(f"{path}: weights do not fit architecture {architecture.id!r}: {problems}")
        module = architecture.build(config)
        _load_strict(module, _tensors(path), path, architecture)
    return LoadedModel(
        module=module.eval(),
        arch=architecture.id,
        config=config,
        task=metadata["task"],
        provenance=_provenance(metadata["provenance"]),
        path=str(path),
    )


def load_foreign(path: str | os.PathLike, registry: Registry = ARCHITECTURES) -> LoadedModel:
    """Detect, convert and strictly load a public `.pth` checkpoint (see `convert` to save it as ours).

    Every detector is asked: the pack's own families', and spandrel's for other projects' networks (LaMa,
    MAT, SCUNet, ...) when it is installed (`models.archs.spandrel`); exactly one must claim the file.
    """
    path = Path(path)
    state = read_foreign(path)
    _check_budget(path, sum(t.numel() for t in state.values()), "holds")
    return _from_state(path, state, registry)


def _load_foreign_safetensors(path: Path, header: Header, registry: Registry) -> LoadedModel:
    """A safetensors file without our metadata: a public network's tensors (e.g. LaMa or MAT as .safetensors)."""
    _check_budget(path, header.numel, "declares")
    try:
        return _from_state(path, _tensors(path), registry)
    except ValueError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise ValueError(f"{path}: a safetensors file, but not a gan-edit weights file (its metadata has no "
                         f"format={FORMAT!r}), and not a public checkpoint the pack can read: {reason}") from None


def _from_state(path: Path, state: StateDict, registry: Registry) -> LoadedModel:
    try:
        architecture = registry.detect(state)
        if architecture.convert is None:
            raise ValueError(f"architecture {architecture.id!r} has no converter")
        config, converted = architecture.convert(state)
    except ValueError as exc:
        hint = "" if spandrel.available() else f"; {spandrel.MISSING}"
        raise ValueError(f"{path}: {exc}{hint}") from None
    if architecture.from_weights is not None:
        module = _from_weights(path, architecture, config, converted)
    else:
        problems = _fit_problems(_shapes_on_meta(path, architecture, config, max_parameters()),
                                 {k: tuple(v.shape) for k, v in converted.items()})
        if problems:
            raise ValueError(f"{path}: weights do not fit architecture {architecture.id!r}: {problems}")
        module = architecture.build(config)
        _load_strict(module, converted, path, architecture)
    task = config.task if architecture.id == spandrel.ARCH_ID else architecture.tasks[0]
    return LoadedModel(
        module=module.eval(),
        arch=architecture.id,
        config=config,
        task=task,
        provenance={"converted_from": path.name},
        path=str(path),
    )


def from_spandrel(descriptor: Any, name: str = "") -> LoadedModel:
    """A model spandrel already loaded (e.g. ComfyUI's UPSCALE_MODEL) as a model of the pack's tasks.

    Refused with a message: upscalers (scale > 1), face restorers, channel layouts other than RGB or grey.
    """
    try:
        config, module = spandrel.wrap(descriptor)
    except ValueError as exc:
        raise ValueError(f"{name or 'this model'}: {exc}") from None
    return LoadedModel(module=module.eval(), arch=spandrel.ARCH_ID, config=config, task=config.task,
                       provenance={"loaded_by": "spandrel"}, path=name)


def _check_budget(path: Path, numel: int, verb: str) -> None:
    budget = max_parameters()
    if numel > budget:
        raise ValueError(f"{path}: the file {verb} {numel:,} parameters; the limit is {budget:,} "
                         "(GAN_EDIT_MAX_PARAMETERS)")


def _tensors(path: Path) -> StateDict:
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: tensor data unreadable ({exc})") from exc


def _from_weights(path: Path, architecture: Architecture, config: Any, state: StateDict) -> nn.Module:
    try:
        return architecture.from_weights(config, state)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def convert(src: str | os.PathLike, dst: str | os.PathLike, registry: Registry = ARCHITECTURES) -> Path:
    """Convert a public checkpoint into a gan-edit safetensors file."""
    loaded = load_foreign(src, registry)
    return save(loaded.module, dst, loaded.arch, loaded.config, loaded.task, loaded.provenance, registry)


def load_adain_pair(vgg_path: str | os.PathLike, decoder_path: str | os.PathLike) -> LoadedModel:
    """Load the reference `vgg_normalised.pth` + `decoder.pth` as one adain model (float32)."""
    config, state = adain.pair_state(read_foreign(vgg_path), read_foreign(decoder_path))
    module = adain.AdaIN(config)
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    provenance = {"converted_from": [Path(vgg_path).name, Path(decoder_path).name]}
    return LoadedModel(
        module=module.eval(), arch=adain.ARCHITECTURE.id, config=config, task="stylize", provenance=provenance,
        path=str(decoder_path),
    )


def convert_adain_pair(vgg_path: str | os.PathLike, decoder_path: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write the reference encoder + decoder files as one gan-edit safetensors file at `dst`."""
    loaded = load_adain_pair(vgg_path, decoder_path)
    return save(loaded.module, dst, loaded.arch, loaded.config, loaded.task, loaded.provenance)


def _provenance(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        value = None
    return value if isinstance(value, dict) else {"unreadable": text[:200]}


class _OverBudget(Exception):
    """Raised from inside a registration hook to stop a build that grew past its budget."""


@contextmanager
def _budget(max_params: int, max_modules: int) -> Iterator[None]:
    """Stop any module built in this thread once it registers more parameters or submodules than allowed."""
    thread = threading.get_ident()
    counts = {"parameters": 0, "modules": 0}

    def on_parameter(module: nn.Module, name: str, param: Tensor | None) -> None:
        if param is not None and threading.get_ident() == thread:
            counts["parameters"] += param.numel()
            if counts["parameters"] > max_params:
                raise _OverBudget(f"more than {max_params:,} parameters (GAN_EDIT_MAX_PARAMETERS)")

    def on_module(module: nn.Module, name: str, sub: nn.Module | None) -> None:
        if sub is not None and threading.get_ident() == thread:
            counts["modules"] += 1
            if counts["modules"] > max_modules:
                raise _OverBudget(f"more than {max_modules:,} layers")

    handles = [register_module_parameter_registration_hook(on_parameter),
               register_module_module_registration_hook(on_module)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _shapes_on_meta(path: Path, architecture: Architecture, config: Any, max_params: int) -> dict[str, tuple]:
    """The state dict shapes `config` implies, from a build on the meta device (nothing is allocated)."""
    try:
        with _budget(max_params, MAX_MODULES), torch.device("meta"):
            module = architecture.build(config)
    except _OverBudget as exc:
        raise ValueError(f"{path}: implausible config for architecture {architecture.id!r}: it implies {exc}") from None
    except (ValueError, TypeError, RuntimeError, OverflowError, MemoryError) as exc:
        raise ValueError(f"{path}: architecture {architecture.id!r} cannot be built from this config ({exc})") from None
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _fit_problems(expected: Mapping[str, tuple], found: Mapping[str, tuple]) -> str:
    """'' when the two key -> shape maps agree, else what differs, for people."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k}: file {tuple(found[k])} vs model {tuple(v)}" for k, v in expected.items()
             if k in found and tuple(found[k]) != tuple(v)]
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
    if wrong:
        parts.append(f"{len(wrong)} shape mismatches (e.g. {wrong[:3]})")
    return "; ".join(parts)


def _load_strict(module: nn.Module, state: StateDict, path: Path, architecture: Architecture) -> None:
    expected = module.state_dict()
    problems = _fit_problems({k: tuple(v.shape) for k, v in expected.items()},
                             {k: tuple(v.shape) for k, v in state.items()})
    if problems:
        raise ValueError(f"{path}: weights do not fit architecture {architecture.id!r}: {problems}")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
