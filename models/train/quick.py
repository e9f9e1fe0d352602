"""Default recipes for a folder of photos: what the GAN Train node runs.

The command line (`python -m nodes.train TASK --help`) offers every setting of every task; a node in
a graph offers the few that matter to someone training for the first time: the photos, a style (an
image, or a folder of them), a starting model to fine-tune, steps, batch size, crop size and learning
rate. Everything else keeps the task's defaults, and the task runs on the same engine
(`engine.Trainer`) as the command line.
"""

from __future__ import annotations

from pathlib import Path

from .. import pretrained, weights
from ..archs.enhance import EnhanceConfig
from .adain import AdaINSettings, AdaINTask, encoder_weights
from .data import load_images
from .edit import EditSettings, EditTask
from .engine import Task
from .enhance import EnhanceSettings, EnhanceTask
from .inpaint import InpaintSettings, InpaintTask
from .pix2pix import Pix2PixSettings, Pix2PixTask, load_synthetic
from .style import StyleSettings, StyleTask, load_style_image

TASKS = ("enhance", "inpaint", "edit", "colorize", "poster", "style", "adain")
"""enhance: a restorer; inpaint: the any-mask Context Encoder; edit: the instruction editor; colorize /
poster: pix2pix on pairs made from the photos (a U-Net for crops of 128 or 256 multiples, else a
ResNet generator); style: a fast-neural-style network for one style image;
adain: an arbitrary-style decoder for a folder of style images."""
FINE_TUNABLE = ("enhance",)
NEEDS_STYLE = {"style": "a style image", "adain": "a folder of style images"}
STYLE_SIZE = 512  # long side of a one-style image, as the command line's default


def make_task(task: str, photos: str | Path, *, batch_size: int, crop: int, lr: float,
              init: str | Path | None = None, style: str | Path | None = None) -> Task:
    """The `task` (see `TASKS`) on the photos under `photos`, fine-tuned from the weights file `init`
    where supported; `style` is the style image (style) or folder (adain)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if init is not None and task not in FINE_TUNABLE:
        raise ValueError(f"fine-tuning from a start model works for {', '.join(FINE_TUNABLE)}; {task!r} trains "
                         "from scratch (leave the start model empty)")
    if (style is None) != (task not in NEEDS_STYLE):
        wanted = f"needs {NEEDS_STYLE[task]}" if task in NEEDS_STYLE else "takes no style"
        raise ValueError(f"task {task!r} {wanted}")
    if task in ("colorize", "poster"):
        net_g = "unet_256" if crop % 256 == 0 else "unet_128" if crop % 128 == 0 else "resnet_6blocks"
        settings = Pix2PixSettings(net_g=net_g, batch_size=batch_size, crop=crop, lr=lr)
        return Pix2PixTask(settings, load_synthetic(photos, task))
    data = load_images(photos, min_side=32)
    if task == "enhance":
        net = weights.load(init).config if init is not None else EnhanceConfig()
        if not isinstance(net, EnhanceConfig):
            raise ValueError(f"{Path(init).name} is not an enhance model; start from an enhance_unet file")
        settings = EnhanceSettings(net=net, batch_size=batch_size, crop=crop, lr=lr, adv_weight=0.0,
                                   init=None if init is None else str(init))
        return EnhanceTask(settings, data)
    if task == "inpaint":
        return InpaintTask(InpaintSettings(batch_size=batch_size, crop=crop, lr=lr), data)
    if task == "edit":
        return EditTask(EditSettings(batch_size=batch_size, crop=crop, lr=lr), data)
    if task == "style":
        vgg = pretrained.load_vgg16(None, last="relu4_3")
        return StyleTask(StyleSettings(batch_size=batch_size, crop=crop, lr=lr), data,
                         load_style_image(style, STYLE_SIZE), vgg, style_name=Path(style).name)
    encoder, state, source = encoder_weights()
    settings = AdaINSettings(batch_size=batch_size, crop=crop, lr=lr, encoder=encoder)
    return AdaINTask(settings, data, load_images(style, min_side=32), state, source)
