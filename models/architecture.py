"""What an architecture is: the record the registry lists and every weights file names.

An `Architecture` ties an id (the name written into every weights file) to a frozen dataclass
config, a `build(config) -> nn.Module` function, the tasks it can serve, what its network needs of an
input (`SizeRule`: multiple of, minimum, exact size), the precisions it runs in, its scale, and
optionally a converter for foreign (public) checkpoints. Architecture files build one of these;
`registry.py` lists them.

`Accepts` is the other side: what a core entry point takes (tasks, optionally only some
architectures). A loaded model checks an `Accepts` with `LoadedModel.expect`, so a node never holds
a list of architecture ids.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

# What a weights file can be for. Nodes check the task of a model before using it.
TASKS = ("inpaint", "enhance", "translate", "stylize", "edit", "discriminate", "detect")

StateDict = dict[str, Tensor]

PRECISIONS = ("fp32", "bf16", "fp16")
MAX_CONFIG_NUMBER = 65536
"""Every number in a stored config is at most this in magnitude (widths, sizes, depths are far smaller)."""


@dataclass(frozen=True)
class SizeRule:
    """Input sides a network takes: multiples of `multiple`, at least `minimum`, or exactly `exact`.

    The task functions pad, crop or resize to meet it; the rule says what they have to reach.
    """

    multiple: int = 1
    minimum: int = 1
    exact: int | None = None

    def fits(self, height: int, width: int) -> bool:
        if self.exact is not None:
            return height == width == self.exact
        return height % self.multiple == 0 and width % self.multiple == 0 and min(height, width) >= self.minimum

    def describe(self) -> str:
        if self.exact is not None:
            return f"exactly {self.exact}x{self.exact} px"
        parts = [f"multiples of {self.multiple} px"] if self.multiple > 1 else []
        parts += [f"at least {self.minimum} px"] if self.minimum > 1 else []
        return " and ".join(parts) or "any size"


def _any_size(config: Any) -> SizeRule:
    return SizeRule()


@dataclass(frozen=True)
class Accepts:
    """What a core entry point takes: a model for one of `tasks`, of one of `archs` (empty: any of them).

    `wanted` names it for people ("a model for the 'inpaint' task"); `hints` adds a pointer when a
    model of a given architecture id or task is refused, e.g. ("transformer_net", "use GAN Stylize for it").
    """

    wanted: str
    tasks: tuple[str, ...]
    archs: tuple[str, ...] = ()
    hints: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"Accepts({self.wanted!r}): unknown tasks {sorted(unknown)}; known: {TASKS}")

    def takes(self, arch: str, task: str) -> bool:
        return task in self.tasks and (not self.archs or arch in self.archs)

    def refusal(self, arch: str, task: str, who: str, what: str = "this model") -> str | None:
        """None when (arch, task) is taken, else the message: who needs what, and what this is."""
        if self.takes(arch, task):
            return None
        hint = next((text for key, text in self.hints if key in (arch, task)), "")
        message = f"{who} needs {self.wanted}, but {what} is a {arch!r} model for {task!r}"
        return message + (f" ({hint})" if hint else "")


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
    # What the network needs of an input's height and width, given its config.
    sizes: Callable[[Any], SizeRule] = _any_size
    # Precisions the task functions may run it in (fp32 always; reduced ones where tested).
    precisions: tuple[str, ...] = ("fp32", "bf16")
    # Output size / input size (1 for every family of ours).
    scale: int = 1
    # Families whose network only its weights can describe (public architectures run through spandrel):
    # `from_weights(config, state_dict)` makes the module; `build` is not used and there are no examples.
    from_weights: Callable[[Any, StateDict], nn.Module] | None = None

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.config_cls):
            raise TypeError(f"architecture {self.id!r}: config_cls must be a dataclass")
        unknown = set(self.tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"architecture {self.id!r}: unknown tasks {sorted(unknown)}; known: {TASKS}")
        if "fp32" not in self.precisions or set(self.precisions) - set(PRECISIONS):
            raise ValueError(f"architecture {self.id!r}: precisions must include fp32 and come from {PRECISIONS}")

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
            for item in value if isinstance(value, list) else [value]:
                plain = item is None or isinstance(item, bool | str) and len(str(item)) <= 200
                number = isinstance(item, int | float) and not isinstance(item, bool)
                if not plain and not (number and math.isfinite(item) and abs(item) <= MAX_CONFIG_NUMBER):
                    raise ValueError(
                        f"config for architecture {self.id!r}: {name} = {str(value)[:80]} is not plausible (numbers "
                        f"up to {MAX_CONFIG_NUMBER}, short strings, flat lists)"
                    )
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
