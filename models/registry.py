"""The one explicit list of architectures.

An `Architecture` ties an id (the name written into every weights file) to a frozen dataclass
config, a `build(config) -> nn.Module` function, the tasks it can serve, and optionally a converter
for foreign (public) checkpoints. Loading a file of ours never guesses: the id and config travel in
the file. `detect` exists only to recognise foreign state dicts.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

# What a weights file can be for. Nodes check the task of a model before using it.
TASKS = ("inpaint", "enhance", "translate", "stylize", "edit", "discriminate")

StateDict = dict[str, Tensor]


@dataclass(frozen=True)
class Architecture:
    """One architecture family member the loader can rebuild from a config."""

    id: str
    config_cls: type
    build: Callable[[Any], nn.Module]
    tasks: tuple[str, ...]
    description: str
    # Foreign checkpoints: `detect(state_dict)` says whether a state dict is of this architecture,
    # `convert(state_dict)` returns (config, state dict with our keys).
    detect: Callable[[StateDict], bool] | None = None
    convert: Callable[[StateDict], tuple[Any, StateDict]] | None = None
    # Small configs that tests build and round-trip through save/load.
    example_configs: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.config_cls):
            raise TypeError(f"architecture {self.id!r}: config_cls must be a dataclass")
        unknown = set(self.tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"architecture {self.id!r}: unknown tasks {sorted(unknown)}; known: {TASKS}")

    def config_from_dict(self, values: Mapping[str, Any]) -> Any:
        """Rebuild the config dataclass from its JSON form (lists become tuples where typed so)."""
        fields = {f.name: f for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(
                f"config for architecture {self.id!r} has unknown fields {unknown}; expected a subset of "
                f"{sorted(fields)}"
            )
        hints = typing.get_type_hints(self.config_cls)
        kwargs = {}
        for name, value in values.items():
            origin = typing.get_origin(hints.get(name))
            kwargs[name] = tuple(value) if origin is tuple and isinstance(value, list) else value
        try:
            return self.config_cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid config for architecture {self.id!r}: {exc}") from exc

    def config_to_json(self, config: Any) -> str:
        if not isinstance(config, self.config_cls):
            raise TypeError(
                f"architecture {self.id!r} expects a {self.config_cls.__name__} config, "
                f"got {type(config).__name__}"
            )
        return json.dumps(dataclasses.asdict(config), sort_keys=True)


class Registry:
    """Architectures by id. Registering an id twice is an error."""

    def __init__(self, architectures: tuple[Architecture, ...] = ()) -> None:
        self._by_id: dict[str, Architecture] = {}
        for arch in architectures:
            self.register(arch)

    def register(self, arch: Architecture) -> None:
        if arch.id in self._by_id:
            raise ValueError(f"architecture id {arch.id!r} is registered twice")
        self._by_id[arch.id] = arch

    def get(self, arch_id: str) -> Architecture:
        try:
            return self._by_id[arch_id]
        except KeyError:
            raise ValueError(
                f"unknown architecture {arch_id!r}; this version knows: {', '.join(sorted(self._by_id)) or 'none'}"
            ) from None

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def __iter__(self):
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def detect(self, state_dict: StateDict) -> Architecture:
        """Find the architecture a foreign state dict belongs to; exactly one must claim it."""
        matches = [a for a in self if a.detect is not None and a.detect(state_dict)]
        if len(matches) == 1:
            return matches[0]
        sample = ", ".join(list(state_dict)[:6])
        if not matches:
            raise ValueError(
                f"no known architecture matches this checkpoint ({len(state_dict)} tensors; first keys: {sample})"
            )
        raise ValueError(f"ambiguous checkpoint: matches {[a.id for a in matches]} (first keys: {sample})")


def _builtin() -> tuple[Architecture, ...]:
    from .archs import context_encoder, patchgan

    return (patchgan.ARCHITECTURE, *context_encoder.ARCHITECTURES)


ARCHITECTURES = Registry(_builtin())
