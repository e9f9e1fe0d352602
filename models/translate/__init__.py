"""Image-to-image translation on core tensors with a pix2pix / CycleGAN generator or a `vgg_colorizer`.

`translate(model, image)` takes images [B, C, H, W] in [0, 1] of any size and returns the translated
images [B, output_nc, H, W] in [0, 1]. Each batch item goes through the network on its own:

* size: the ResNet generator needs H and W to be multiples of 4, the U-Net multiples of
  2**num_downs (256 for unet_256). `resize_mode="pad"` mirrors the image out to the next multiple and
  crops the result back (no resampling; the network sees the image at its own scale);
  `resize_mode="resize"` scales it to the nearest multiple and the result back to the input size.
* normalisation: `norm_mode="eval"` uses the BatchNorm running statistics (`model.eval()`);
  `norm_mode="batch_stats"` normalises with each image's own statistics, as the reference `test.py`
  does by default (it never calls `eval()` unless `--eval` is given), but with dropout off so the
  result is deterministic. The module's own mode and buffers are left as they were.
* luminance: with `keep_luminance` the result is the network's colours on the input's own luma
  (`models.colour.with_luma`), so a colouriser can never lose the photo's detail or tones: only
  chroma comes from the network (RGB in and out).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import colour, layout
from ..architecture import Accepts
from ..archs import colorize
from ..archs.pix2pix import RESNET, UNET
from ..runtime import prepared

TRANSLATORS = (RESNET.id, UNET.id, colorize.ARCHITECTURE.id)
ACCEPTS = Accepts("a model for the 'translate' task", tasks=("translate",), archs=TRANSLATORS)
NORM_MODES = ("eval", "batch_stats")
RESIZE_MODES = ("pad", "resize")


class TranslateModel(Protocol):
    """What `translate` needs of a model: a `weights.LoadedModel` has all of it."""

    module: nn.Module
    arch: str
    config: Any


def translate(
    model: TranslateModel,
    image: Tensor,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int, int], None] | None = None,
    norm_mode: str = "eval",
    resize_mode: str = "pad",
    keep_luminance: bool = False,
) -> Tensor:
    """Translate each image of the batch with a pix2pix/CycleGAN generator; any size in, same size out.

    `image` is [B, input_nc, H, W] in [0, 1]; the result is [B, output_nc, H, W] float32 in [0, 1] on
    the input's device. `device`/`dtype` are used for the computation only. `progress(i, n)` is called
    after each item. See the module doc for `norm_mode` ("eval" | "batch_stats") and `resize_mode`
    ("pad" | "resize").
    """
    _check_model(model)
    _check_inputs(model.config, image, norm_mode, resize_mode)
    if keep_luminance and not model.config.input_nc == model.config.output_nc == 3:
        raise ValueError(f"keep_luminance needs an RGB-to-RGB generator, this one maps {model.config.input_nc} to "
                         f"{model.config.output_nc} channels")
    out_device = image.device
    device = torch.device(device) if device is not None else out_device
    multiple, min_size = model.config.size_multiple, model.config.min_size
    batch = image.shape[0]
    results = []
    batch_stats = norm_mode == "batch_stats"
    with prepared(model.module, device, dtype, batch_stats=batch_stats) as module, torch.inference_mode():
        for i in range(batch):
            item = layout.to_signed(image[i : i + 1].to(device=device, dtype=torch.float32))
            if resize_mode == "pad":
                out = _run_padded(module, item, multiple, min_size, dtype)
            else:
                out = _run_resized(module, item, multiple, min_size, dtype)
            out = layout.from_signed(out)
            if keep_luminance:
                out = colour.with_luma(out.clamp(0.0, 1.0), colour.luma(image[i : i + 1].to(out)))
            results.append(out.to(out_device))
            if progress is not None:
                progress(i + 1, batch)
    return torch.cat(results).float()


def _check_model(model: TranslateModel) -> None:
    arch = getattr(model, "arch", None)
    if arch not in TRANSLATORS:
        task = getattr(model, "task", None)
        what = f"architecture {arch!r}" + (f" (task {task!r})" if task else "")
        raise ValueError(
            f"translate needs an image-to-image generator ({' or '.join(map(repr, TRANSLATORS))}, task 'translate'), "
            f"got {what}"
        )


def _check_inputs(config: Any, image: Tensor, norm_mode: str, resize_mode: str) -> None:
    if norm_mode not in NORM_MODES:
        raise ValueError(f"norm_mode must be one of {NORM_MODES}, got {norm_mode!r}")
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
    layout.validate_image(image, channels=(config.input_nc,))


def padded_size(size: int, multiple: int, min_size: int) -> int:
    """The smallest multiple of `multiple` that is >= size and >= min_size."""
    return max(min_size, math.ceil(size / multiple) * multiple)


def resized_size(size: int, multiple: int, min_size: int) -> int:
    """The multiple of `multiple` nearest to size, at least min_size."""
    return max(min_size, round(size / multiple) * multiple)




def _run_padded(module: nn.Module, x: Tensor, multiple: int, min_size: int, dtype: torch.dtype) -> Tensor:
    """Mirror x out to the needed size (centred), run, crop the result back to x's size."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, multiple, min_size), padded_size(w, multiple, min_size)
    top, left = (ph - h) // 2, (pw - w) // 2
    if (ph, pw) != (h, w):
        rows = layout.reflect_indices(-top, ph, h, x.device)
        cols = layout.reflect_indices(-left, pw, w, x.device)
        x = x.index_select(-2, rows).index_select(-1, cols)
    out = module(x.to(dtype)).float()
    return out[..., top : top + h, left : left + w]


def _run_resized(module: nn.Module, x: Tensor, multiple: int, min_size: int, dtype: torch.dtype) -> Tensor:
    """Scale x to the nearest allowed size, run, scale the result back to x's size."""
    h, w = x.shape[-2:]
    size = (resized_size(h, multiple, min_size), resized_size(w, multiple, min_size))
    if size == (h, w):
        return module(x.to(dtype)).float()
    small = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    out = module(small.to(dtype)).float()
    return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
