"""Default recipes for a folder of photos: what the GAN Train node runs.

The command line (`python -m nodes.train TASK --help`) offers every setting of every task; a node in
a graph offers the few that matter to someone training for the first time: the photos, a starting
model to fine-tune, steps, batch size, crop size and learning rate. Everything else keeps the task's
defaults, and the task runs on the same engine (`engine.Trainer`) as the command line.
"""

from __future__ import annotations

from pathlib import Path

from .. import weights
from ..archs.enhance import EnhanceConfig
from .data import ImageSet
from .edit import EditSettings, EditTask
from .engine import Task
from .enhance import EnhanceSettings, EnhanceTask
from .inpaint import InpaintSettings, InpaintTask

TASKS = ("enhance", "inpaint", "edit")
FINE_TUNABLE = ("enhance",)


def make_task(task: str, data: ImageSet, *, batch_size: int, crop: int, lr: float, init: str | Path | None = None,
              ) -> Task:
    """The `task` ("enhance": the restorer's degradation mix; "inpaint": the any-mask Context Encoder;
    "edit": every instruction) on `data`, fine-tuned from the weights file `init` where supported."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if init is not None and task not in FINE_TUNABLE:
        raise ValueError(f"fine-tuning from a start model works for {', '.join(FINE_TUNABLE)}; {task!r} trains "
                         "from scratch (leave the start model empty)")
    if task == "enhance":
        net = weights.load(init).config if init is not None else EnhanceConfig()
        if not isinstance(net, EnhanceConfig):
            raise ValueError(f"{Path(init).name} is not an enhance model; start from an enhance_unet file")
        settings = EnhanceSettings(net=net, batch_size=batch_size, crop=crop, lr=lr, adv_weight=0.0,
                                   init=None if init is None else str(init))
        return EnhanceTask(settings, data)
    if task == "inpaint":
        return InpaintTask(InpaintSettings(batch_size=batch_size, crop=crop, lr=lr), data)
    return EditTask(EditSettings(batch_size=batch_size, crop=crop, lr=lr), data)
