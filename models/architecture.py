"""What an architecture is: the record the registry lists and every weights file names.

An `Architecture` ties an id (the name written into every weights file) to a frozen dataclass
config, a `build(config) -> nn.Module` function, the tasks it can serve, and optionally a converter
for foreign (public) checkpoints. Architecture files build one of these; `registry.py` lists them.
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
