"""The one explicit list of architectures.

Loading a file of ours never guesses: the architecture id and its config travel in the file, and
the id is looked up here. `detect` exists only to recognise foreign (public) state dicts.
"""

from __future__ import annotations

from .architecture import TASKS, Architecture, StateDict
from .archs import (
    adain,
    colorize,
    context_encoder,
    damage,
    edit,
    enhance,
    patchgan,
    pix2pix,
    spandrel,
    transformer_net,
)

__all__ = ["ARCHITECTURES", "TASKS", "Architecture", "Registry", "StateDict"]


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


ARCHITECTURES = Registry(
    (
        patchgan.ARCHITECTURE,
        *context_encoder.ARCHITECTURES,
        transformer_net.ARCHITECTURE,
        adain.ARCHITECTURE,
        *pix2pix.ARCHITECTURES,
        colorize.ARCHITECTURE,
        enhance.ARCHITECTURE,
        edit.ARCHITECTURE,
        damage.ARCHITECTURE,
        spandrel.ARCHITECTURE,
    )
)
