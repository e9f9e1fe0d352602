"""Accepted ranges of the numeric parameters that several core functions share.

The core checks a value with `Range.check`; the node schemas take their min and max from the same
objects, so a widget never offers what the core refuses, nor hides what it takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """Both ends inclusive."""

    low: float
    high: float

    def check(self, name: str, value: Any, meaning: str = "") -> Any:
        """`value` when it is a number in the range, else a ValueError naming `name` (and its `meaning`)."""
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (number and self.low <= value <= self.high):
            raise ValueError(f"{name} must be in [{self.low:g}, {self.high:g}]{meaning}, got {value!r}")
        return value


STRENGTH = Range(0.0, 1.0)
"""Blend of the input (0, returned exactly) and the full effect (1)."""
CONTEXT = Range(0.0, 4.0)
"""Margin around a hole or region that the network sees, as a fraction of its size."""
WORKING_SIZE = Range(32, 8192)
"""Longest crop side (px) the network runs at; larger crops are downscaled."""
