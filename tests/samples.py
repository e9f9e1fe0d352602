"""The sample photos of workflows/inputs as test inputs (astronaut, chelsea and coffee come from scikit-image,
a source the shipped models never trained on)."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models import layout

INPUTS = Path(__file__).resolve().parents[1] / "workflows" / "inputs"
PHOTOS = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")


def read_sample(name: str, long_side: int = 256) -> torch.Tensor:
    """A sample photo as [1,3,H,W] float in [0,1], its long side resized to `long_side` (Lanczos)."""
    with Image.open(INPUTS / name) as im:
        im = im.convert("RGB")
        scale = long_side / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        return layout.from_u8(np.asarray(im))
