"""Weights files: safetensors with the architecture, its config, the task and provenance inside.

`save()` writes our format; `load()` reads it back: metadata -> config -> build -> strict load.
Foreign checkpoints (`.pth` / `.pt`) are read only with `torch.load(weights_only=True)` (never plain
pickle) and handed to the architecture's converter; `convert()` writes the result in our format.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .architecture import Accepts, SizeRule
from .archs import adain
from .checkpoint import check_safetensors_file, read_foreign
from .registry import ARCHITECTURES, TASKS, Architecture, Registry, StateDict

FORMAT = "gan-edit"
FORMAT_VERSION = 1
FOREIGN_SUFFIXES = (".pth", ".pt", ".ckpt")
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
    check_safetensors_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{path}: a safetensors file, but not a gan-edit weights file (metadata has no "
            f"format={FORMAT!r}; found keys {sorted(metadata)}). Convert foreign checkpoints with "
            "models.weights.convert()."
        )
    missing = [k for k in _KEYS if k not in metadata]
    if missing:
        raise ValueError(f"{path}: gan-edit metadata is missing {missing}")
    if int(metadata["format_version"]) > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written by a newer version (format {metadata['format_version']}, this code reads "
            f"up to {FORMAT_VERSION}); update the pack"
        )
    if metadata["task"] not in TASKS:
        raise ValueError(f"{path}: unknown task {metadata['task']!r}; known: {TASKS}")
    return metadata


def load(path: str | os.PathLike, registry: Registry = ARCHITECTURES) -> LoadedModel:
    """Rebuild the module a weights file of ours describes and load its tensors strictly."""
    path = Path(path)
    if path.suffix.lower() in FOREIGN_SUFFIXES:
        return load_foreign(path, registry)
    metadata = read_metadata(path)
    architecture = registry.get(metadata["arch"])
    try:
        config = architecture.config_from_dict(json.loads(metadata["config"]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: config metadata is not valid JSON ({exc})") from exc
    module = architecture.build(config)
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: tensor data unreadable ({exc})") from exc
    _load_strict(module, state, path, architecture)
    return LoadedModel(
        module=module.eval(),
        arch=architecture.id,
        config=config,
        task=metadata["task"],
        provenance=json.loads(metadata["provenance"]),
        path=str(path),
    )


def load_foreign(path: str | os.PathLike, registry: Registry = ARCHITECTURES) -> LoadedModel:
    """Detect, convert and strictly load a public checkpoint (see `convert` to save it as ours)."""
    path = Path(path)
    state = read_foreign(path)
    architecture = registry.detect(state)
    if architecture.convert is None:
        raise ValueError(f"{path}: architecture {architecture.id!r} has no converter")
    config, converted = architecture.convert(state)
    module = architecture.build(config)
    _load_strict(module, converted, path, architecture)
    return LoadedModel(
        module=module.eval(),
        arch=architecture.id,
        config=config,
        task=architecture.tasks[0],
        provenance={"converted_from": path.name},
        path=str(path),
    )


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


def _load_strict(module: nn.Module, state: StateDict, path: Path, architecture: Architecture) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {wrong[:3]})")
        raise ValueError(f"{path}: weights do not fit architecture {architecture.id!r}: " + "; ".join(parts))
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
