"""Running a module for inference on a chosen device and dtype, leaving it as it was afterwards."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import nn

log = logging.getLogger(__name__)
T = TypeVar("T")


@contextmanager
def prepared(
    module: nn.Module, device: torch.device, dtype: torch.dtype, *, batch_stats: bool = False
) -> Iterator[nn.Module]:
    """`module` on `device`/`dtype` in eval mode; afterwards back where it was, in the modes it had.

    With `batch_stats` BatchNorm layers normalise with each batch's own statistics (train mode
    without tracking, so the running buffers stay untouched), as the pix2pix reference test script
    does; dropout stays off. When `dtype` differs from the weights' a copy is used: casting weights
    down and back up would lose precision.
    """
    param = next(module.parameters(), None)
    old_device = param.device if param is not None else device
    old_dtype = param.dtype if param is not None else dtype
    modes = [(m, m.training) for m in module.modules()]
    work = copy.deepcopy(module) if dtype != old_dtype else module
    moved = work is not module or device != old_device
    work = (work.to(device=device, dtype=dtype) if moved else work).eval()
    batch_norms = [m for m in work.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tracking = [m.track_running_stats for m in batch_norms]
    if batch_stats:
        for m in batch_norms:
            m.train()
            m.track_running_stats = False
    try:
        yield work
    finally:
        for m, track in zip(batch_norms, tracking, strict=True):
            m.track_running_stats = track
        if work is module:
            if moved:
                module.to(device=old_device)
            for m, training in modes:
                m.training = training


def halving_tile_on_oom(run: Callable[[int], T], tile: int, minimum: int, what: str) -> T:
    """`run(tile)`, and on a CUDA out-of-memory error `run` again with half the tile, down to `minimum` px.

    ComfyUI's own upscale node does the same; `what` names the work in the warning ("enhancing").
    """
    size = tile
    while True:
        try:
            return run(size)
        except torch.OutOfMemoryError:
            if size // 2 < minimum:
                raise
            size //= 2
            log.warning("out of memory: %s in tiles of %d px", what, size)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
