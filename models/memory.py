"""A memory budget for tensors made from user numbers (mask sizes and batches, degraded copies, tiles).

`require(nbytes, what)` refuses, before anything is allocated, an estimate above `limit()`: the value
of `GAN_EDIT_MEMORY_LIMIT_GB` when set, else three quarters of the memory the system has available
now. The message says what needs how much, and what to lower.
"""

from __future__ import annotations

import os

AVAILABLE_SHARE = 0.75


def human(nbytes: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def _available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def limit() -> int:
    """Bytes one request may claim: GAN_EDIT_MEMORY_LIMIT_GB, else a share of the memory available now."""
    value = os.environ.get("GAN_EDIT_MEMORY_LIMIT_GB", "")
    if value:
        try:
            gib = float(value)
        except ValueError:
            gib = -1.0
        if not gib > 0:
            raise ValueError(f"GAN_EDIT_MEMORY_LIMIT_GB must be a positive number of GiB, got {value!r}")
        return int(gib * 2**30)
    return int(_available() * AVAILABLE_SHARE)


def require(nbytes: int, what: str, advice: str = "lower the batch or the size") -> None:
    """Refuse when `what` would need more than `limit()`; e.g. '16384x16384x64 masks need 64.0 GiB'."""
    budget = limit()
    if nbytes > budget:
        source = "GAN_EDIT_MEMORY_LIMIT_GB" if os.environ.get("GAN_EDIT_MEMORY_LIMIT_GB") else "of the memory available"
        raise ValueError(f"{what} need {human(nbytes)}; the limit is {human(budget)} ({source}) - {advice}")


def crop_network_bytes(image_shape: tuple[int, ...], working_size: int | None, channels: int, maps: int = 6) -> int:
    """Estimated peak of a crop-and-fill task on the CPU: the results (a few copies of the images) and the
    network's activations on the largest crop it may see (the image's longer side, capped at `working_size`)."""
    batch, image_channels, height, width = image_shape
    side = max(height, width) if working_size is None else min(working_size, max(height, width))
    return 4 * (3 * batch * image_channels * height * width + maps * channels * (side + 64) ** 2)
