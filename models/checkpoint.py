"""Reading checkpoint files without building anything: safetensors structure checks, foreign `.pth`.

Foreign checkpoints (`.pth` / `.pt`) are read only with `torch.load(weights_only=True)`: tensors only,
no code ever runs. Nothing here knows architectures; `models.weights` turns what is read into modules.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .architecture import StateDict


def read_foreign(path: str | os.PathLike) -> StateDict:
    """A public `.pth` checkpoint as a flat state dict: tensors only, no code ever runs.

    A zip checkpoint (what `torch.save` writes) is opened only when its entries are stored, not
    compressed, and add up to no more than the file: nothing can unpack to more than is on disk.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        _check_zip(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError ... all mean "not loadable"
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"{path}: refused to load: not a plain tensor checkpoint. Only state dicts of tensors are "
            f"read (torch.load weights_only=True); this file holds something else ({text})"
        ) from exc
    obj = _unwrapped(obj)
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    state = {}
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, expected a tensor")
        state[key.removeprefix("module.")] = value
    return state


WRAPPERS = ("state_dict", "params_ema", "params", "model_state_dict", "net_g", "generator")
"""Keys under which training frameworks (Lightning, BasicSR, KAIR, ...) store the network's state dict."""


def _unwrapped(obj: object) -> object:
    """The state dict inside a training checkpoint's wrapper (the first of `WRAPPERS` that holds a mapping)."""
    if isinstance(obj, Mapping):
        for key in WRAPPERS:
            if isinstance(obj.get(key), Mapping) and obj[key]:
                return obj[key]
    return obj


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ValueError(f"{path}: refused to load: a damaged zip checkpoint ({exc})") from exc
    if any("/code/__torch__/" in e.filename for e in entries):
        raise ValueError(f"{path}: refused to load: a TorchScript file (a program with its weights), which is not "
                         "read; use a plain state dict of the same model (.pth, .ckpt or .safetensors)")
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise ValueError(f"{path}: refused to load: compressed entries ({packed[:3]}); torch.save stores them "
                         "uncompressed, so this is not a checkpoint it wrote")
    declared, size = sum(e.file_size for e in entries), path.stat().st_size
    if declared > size:
        raise ValueError(f"{path}: refused to load: its entries declare {declared} bytes, more than the file's {size}")


DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
"""safetensors dtypes a weights file may hold, with their sizes in bytes."""
MAX_HEADER_BYTES = 4 * 1024 * 1024
"""A header of this size lists ~40,000 tensors; ours have under 1,000. Larger is refused unparsed."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as a safetensors header declares it: dtype, shape, byte range in the data section."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Header:
    """A checked safetensors header: every tensor's declaration and the metadata strings."""

    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors.values())


def read_header(path: str | os.PathLike) -> Header:
    """Read and check a safetensors header without reading any tensor (a few KB of I/O).

    Refused with a message: a file too short or not starting with a JSON header, a header larger than
    `MAX_HEADER_BYTES` or than the file, unknown dtypes, shapes that are not lists of non-negative
    ints, byte ranges that do not match dtype x shape, overlap each other, leave gaps or run past the
    end of the file, and metadata that is not a map of strings.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: not a safetensors file (only {size} bytes)")
        (header_len,) = struct.unpack("<Q", head)
        if not f.read(1).startswith(b"{"):
            raise ValueError(f"{path}: not a safetensors file (no JSON header at the start)")
        if header_len > MAX_HEADER_BYTES:
            raise ValueError(f"{path}: not a plausible safetensors file (header claims {header_len} bytes; the "
                             f"limit is {MAX_HEADER_BYTES})")
        if 8 + header_len > size:
            raise ValueError(f"{path}: truncated: header claims {header_len} bytes, file has {size - 8}")
        f.seek(8)
        try:
            raw = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{path}: not a safetensors file (corrupt header: {exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a safetensors file (the header is a {type(raw).__name__}, not an object)")
    metadata = raw.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{path}: corrupt header: __metadata__ must map names to strings")
    tensors = {name: _entry(path, name, value) for name, value in raw.items()}
    data_size = size - 8 - header_len
    position = 0
    for name, entry in sorted(tensors.items(), key=lambda item: (item[1].start, item[1].end)):
        if entry.start != position:
            what = "overlaps the tensor before it" if entry.start < position else "leaves a gap before it"
            raise ValueError(f"{path}: corrupt header: tensor {name!r} at bytes {entry.start}-{entry.end} {what}")
        position = entry.end
    if position > data_size:
        raise ValueError(f"{path}: truncated: tensors need {8 + header_len + position} bytes, file has {size}")
    return Header(tensors=tensors, metadata=metadata)


def _entry(path: Path, name: str, value: object) -> TensorEntry:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: corrupt header: entry {name!r} is not an object")
    dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"{path}: tensor {name!r} has dtype {dtype!r}; expected one of {sorted(DTYPE_BYTES)}")
    if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"{path}: tensor {name!r} has shape {shape!r}; expected a list of non-negative ints")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int for n in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise ValueError(f"{path}: tensor {name!r} has data_offsets {offsets!r}; expected [start, end], 0 <= start "
                         "<= end")
    entry = TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])
    if entry.end - entry.start != entry.numel * DTYPE_BYTES[dtype]:
        raise ValueError(f"{path}: corrupt header: tensor {name!r} ({dtype} {list(shape)}) needs "
                         f"{entry.numel * DTYPE_BYTES[dtype]} bytes but spans {entry.end - entry.start}")
    return entry
