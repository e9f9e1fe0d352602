"""Hostile weights files, generated from two small good ones (shared by the fuzz tests).

`make_hostile(folder, marker)` writes at least 1,000 files and returns them as `(path, kind, benign_ok)`:
`kind` names the mutation; `benign_ok` is True where the mutation may leave a loadable file (a flipped
bit inside a provenance string, say), so loading it is allowed to succeed. Every pickle payload, if it
ever ran, would create `marker`.
"""

from __future__ import annotations

import io
import json
import pickle
import random
import struct
import zipfile
from pathlib import Path

import torch

from models import weights
from models.archs.enhance import EnhanceConfig, EnhanceNet
from models.archs.pix2pix import ResnetGenerator, ResnetGeneratorConfig

SEED = 20261203


class _Payload:
    """Unpickling this runs `open(marker, "w")`: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def good_files(folder: Path) -> tuple[Path, Path]:
    """A tiny enhance model of ours (.safetensors) and a tiny CycleGAN generator as its project saves it (.pth)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32)
    ours = weights.save(EnhanceNet(config), folder / "good.safetensors", "enhance_unet", config, "enhance")
    resnet = ResnetGenerator(ResnetGeneratorConfig(ngf=4, n_blocks=1))
    foreign = folder / "good.pth"
    torch.save({k.removeprefix("net."): v for k, v in resnet.state_dict().items()}, foreign)
    return ours, foreign


def _split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def _header_mutations(header: dict, rng: random.Random) -> list[tuple[str, dict]]:
    names = [k for k in header if k != "__metadata__"]
    out = []
    for _ in range(12):
        name = rng.choice(names)
        h = json.loads(json.dumps(header))
        kind = rng.choice(["huge_shape", "dtype", "overlap", "negative", "shape_type", "no_offsets", "gap",
                           "not_object", "past_end"])
        entry = h[name]
        if kind == "huge_shape":
            entry["shape"] = [2 ** rng.randint(20, 40), 2 ** rng.randint(10, 20)]
        elif kind == "dtype":
            entry["dtype"] = rng.choice(["F128", "Q4", "", "object", 7])
        elif kind == "overlap":
            start, end = entry["data_offsets"]
            entry["data_offsets"] = [max(0, start - 4), end - 4] if start >= 4 else [0, end]
        elif kind == "negative":
            entry["data_offsets"] = [-8, entry["data_offsets"][1]]
        elif kind == "shape_type":
            entry["shape"] = rng.choice([["8"], [1.5, 2], "16", [-1, 3], None])
        elif kind == "no_offsets":
            del entry["data_offsets"]
        elif kind == "gap":
            entry["data_offsets"] = [entry["data_offsets"][0] + 4, entry["data_offsets"][1] + 4]
        elif kind == "not_object":
            h[name] = [1, 2, 3]
        else:  # past_end
            entry["data_offsets"] = [entry["data_offsets"][0], entry["data_offsets"][1] + 2 ** 33]
        out.append((f"header_{kind}", h))
    return out


def _metadata_mutations(header: dict, rng: random.Random) -> list[tuple[str, dict]]:
    meta = header["__metadata__"]
    config = json.loads(meta["config"])
    cases: list[tuple[str, dict]] = []

    def with_meta(kind: str, **changes) -> None:
        h = json.loads(json.dumps(header))
        h["__metadata__"] = {**meta, **changes}
        for key, value in changes.items():
            if value is None:
                del h["__metadata__"][key]
        cases.append((f"metadata_{kind}", h))

    for field in ("base_channels", "levels", "blocks", "context_size"):
        for value in (2 ** rng.randint(11, 16), rng.randint(10**6, 10**9), -rng.randint(1, 64), 0):
            with_meta(f"config_{field}", config=json.dumps({**config, field: value}))
    with_meta("config_type", config=json.dumps({**config, "base_channels": "wide"}))
    with_meta("config_unknown_field", config=json.dumps({**config, "evil": 1}))
    with_meta("config_not_json", config="{" * rng.randint(1, 9))
    with_meta("config_deep", config="[" * 100_000 + "]" * 100_000)
    with_meta("config_list", config="[1, 2]")
    with_meta("arch_unknown", arch=rng.choice(["lama", "", "../../etc/passwd", "enhance_unet "]))
    with_meta("arch_other", arch=rng.choice(["pix2pix_unet", "context_encoder", "adain", "patchgan"]))
    with_meta("task_unknown", task=rng.choice(["paint", "", "ENHANCE"]))
    with_meta("task_other", task="inpaint")
    with_meta("format_version", format_version=rng.choice(["x", "99", "-1", "1.5", ""]))
    with_meta("format_foreign", format=rng.choice(["pt", "gan-edit2", ""]))
    with_meta("missing_key", **{rng.choice(["arch", "config", "task", "format_version", "provenance"]): None})
    return cases


def _pickles(folder: Path, marker: Path, count: int) -> list[tuple[Path, str, bool]]:
    out = []
    for i in range(count):
        path = folder / f"pickle_{i:03d}.pth"
        payload = _Payload(marker)
        shape = i % 4
        if shape == 0:
            path.write_bytes(pickle.dumps({"weight": payload}, protocol=2))
        elif shape == 1:
            torch.save({"state_dict": {"weight": torch.zeros(2)}, "hook": payload}, path)
        elif shape == 2:
            path.write_bytes(pickle.dumps(payload, protocol=4))
        else:
            torch.save([payload, torch.ones(3)], path)
        out.append((path, "pickle_payload", False))
    return out


def _zips(folder: Path, good_pth: bytes, count: int) -> list[tuple[Path, str, bool]]:
    """torch-like zips whose members are compressed, or declare more bytes than the file holds."""
    out = []
    with zipfile.ZipFile(io.BytesIO(good_pth)) as archive:
        members = [(info.filename, archive.read(info.filename)) for info in archive.infolist()]
    for i in range(count):
        path = folder / f"zip_{i:03d}.pth"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bomb:
            for name, data in members:
                if name.endswith("/data/0") or name.endswith("data.pkl"):
                    data = data + b"\0" * (2 ** (20 + i % 4))  # compresses to almost nothing
                bomb.writestr(name, data)
        out.append((path, "zip_compressed", False))
    return out


def make_hostile(folder: Path, marker: Path) -> list[tuple[Path, str, bool]]:
    rng = random.Random(SEED)
    good_dir = folder / "good"
    ours, foreign = good_files(good_dir)
    data, pth = ours.read_bytes(), foreign.read_bytes()
    header, body = _split(data)
    header_end = struct.unpack("<Q", data[:8])[0] + 8
    files: list[tuple[Path, str, bool]] = []

    def write(name: str, content: bytes, kind: str, benign_ok: bool = False, suffix: str = ".safetensors") -> None:
        path = folder / f"{len(files):04d}_{name}{suffix}"
        path.write_bytes(content)
        files.append((path, kind, benign_ok))

    for _ in range(210):  # truncated anywhere
        cut = rng.randrange(0, len(data))
        write("truncated", data[:cut], "truncated")
    for _ in range(130):
        cut = rng.randrange(0, len(pth))
        write("truncated", pth[:cut], "truncated_pth", suffix=".pth")
    for _ in range(250):  # bit flips in the header (length field included)
        raw = bytearray(data)
        position = rng.randrange(0, header_end)
        raw[position] ^= 1 << rng.randrange(8)
        write("bitflip", bytes(raw), "bitflip_header", benign_ok=position >= 8)
    for _ in range(100):  # bit flips anywhere in the foreign checkpoint
        raw = bytearray(pth)
        raw[rng.randrange(0, len(raw))] ^= 1 << rng.randrange(8)
        write("bitflip", bytes(raw), "bitflip_pth", benign_ok=True, suffix=".pth")
    for _ in range(12):
        for kind, mutated in _header_mutations(header, rng):
            write(kind, _join(mutated, body), kind)
    for _ in range(4):
        for kind, mutated in _metadata_mutations(header, rng):
            write(kind, _join(mutated, body), kind)
    for length in (2 ** 63, 2 ** 40, 10 ** 9, len(data), 0):  # header length fields
        write("header_length", struct.pack("<Q", length) + data[8:], "header_length")
    write("empty", b"", "empty")
    write("junk", bytes(rng.randrange(256) for _ in range(4096)), "junk")
    files += _pickles(folder, marker, 40)
    files += _zips(folder, pth, 12)
    return files
