"""Reading checkpoint files without building anything: safetensors structure checks, foreign `.pth`.

Foreign checkpoints (`.pth` / `.pt`) are read only with `torch.load(weights_only=True)`: tensors only,
no code ever runs. Nothing here knows architectures; `models.weights` turns what is read into modules.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from .architecture import StateDict


def read_foreign(path: str | os.PathLike) -> StateDict:
    """A public `.pth` checkpoint as a flat state dict: tensors only, no code ever runs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError ... all mean "not loadable"
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"{path}: refused to load: not a plain tensor checkpoint. Only state dicts of tensors are "
            f"read (torch.load weights_only=True); this file holds something else ({text})"
        ) from exc
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    state = {}
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, expected a tensor")
        state[key.removeprefix("module.")] = value
    return state



def check_safetensors_file(path: Path) -> None:
    """Cheap structural checks that give a clear message before the parser does."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: not a safetensors file (only {size} bytes)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > 100_000_000 or not f.read(1).startswith(b"{"):
            raise ValueError(f"{path}: not a safetensors file (no JSON header at the start)")
        if 8 + header_len > size:
            raise ValueError(f"{path}: truncated: header claims {header_len} bytes, file has {size - 8}")
        f.seek(8)
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a safetensors file (corrupt header: {exc})") from exc
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and "data_offsets" in v]
    needed = 8 + header_len + max(ends, default=0)
    if needed > size:
        raise ValueError(f"{path}: truncated: tensors need {needed} bytes, file has {size}")
