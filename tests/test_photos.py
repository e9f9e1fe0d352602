"""Tests for the photo-getting tool: RCC reader, filter rules, copyright matching, manifest. No network, no apt."""

import hashlib
import importlib.util
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.train import photos
from models.train.photos import (
    Candidate,
    Manifest,
    RccEntry,
    RccError,
    ZstdUnavailable,
    copyright_summary,
    dep5_licence,
    gcompris_kind,
    is_flat,
    opencv_kind,
    parse_dep5,
    parse_rcc_header,
    photo_skip_reason,
    process,
    read_manifest,
    read_rcc,
    with_other_suffixes,
    write_manifest,
)

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------------------------------------------------
# A tiny RCC writer, independent of the reader: header, data, names, then the tree (as Qt's rcc lays it out).
# ---------------------------------------------------------------------------------------------------------


def _nest(files: dict) -> dict:
    root: dict = {}
    for path, content in files.items():
        *dirs, leaf = path.split("/")
        node = root
        for name in dirs:
            node = node.setdefault(name, {})
        node[leaf] = content
    return root


def _encode(content) -> tuple[bytes, int]:
    """``bytes`` -> stored as is; ``("zlib", bytes)`` -> qCompress layout with flag 1; ``("zstd", raw)`` flag 4."""
    if isinstance(content, bytes):
        return content, 0
    kind, data = content
    if kind == "zlib":
        return struct.pack(">I", len(data)) + zlib.compress(data), 1
    return data, 4


def build_rcc(files: dict, version: int = 3, overall_flags: int = 1) -> bytes:
    """Bytes of an .rcc holding ``files`` (path -> content, see :func:`_encode`)."""
    nodes: list[tuple[str, object]] = [("", _nest(files))]
    first_child: dict[int, int] = {}
    i = 0
    while i < len(nodes):
        node = nodes[i][1]
        if isinstance(node, dict):
            first_child[i] = len(nodes)
            nodes.extend((name, node[name]) for name in sorted(node))
        i += 1
    names, name_offsets = b"", {}
    for name, _ in nodes[1:]:
        if name not in name_offsets:
            name_offsets[name] = len(names)
            names += struct.pack(">HI", len(name), 0xDEADBEEF) + name.encode("utf-16-be")
    data, tree = b"", b""
    for index, (name, node) in enumerate(nodes):
        name_offset = name_offsets.get(name, 0)
        if isinstance(node, dict):
            tree += struct.pack(">IHII", name_offset, 2, len(node), first_child[index])
        else:
            raw, flags = _encode(node)
            tree += struct.pack(">IHhhI", name_offset, flags, 0, 1, len(data))
            data += struct.pack(">I", len(raw)) + raw
        if version >= 2:
            tree += struct.pack(">Q", 1_700_000_000_000)
    header_size = 24 if version >= 3 else 20
    data_offset = header_size
    names_offset = data_offset + len(data)
    tree_offset = names_offset + len(names)
    header = b"qres" + struct.pack(">4I", version, tree_offset, data_offset, names_offset)
    if version >= 3:
        header += struct.pack(">I", overall_flags)
    return header + data + names + tree


SAMPLE = {
    "top.txt": b"hello",
    "gcompris/src/activities/a/resource/one.bin": ("zlib", b"one" * 100),
    "gcompris/src/activities/a/resource/deep/two.bin": b"\x00\x01\x02",
    "gcompris/src/activities/b/three.bin": ("zlib", b""),
}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reads_nested_plain_and_zlib_entries_for_each_header_version(version):
    entries = read_rcc(build_rcc(SAMPLE, version=version))
    assert [e.path for e in entries] == sorted(SAMPLE)
    by_path = {e.path: e for e in entries}
    assert by_path["top.txt"].data() == b"hello"
    assert by_path["gcompris/src/activities/a/resource/one.bin"].data() == b"one" * 100
    assert by_path["gcompris/src/activities/a/resource/one.bin"].compressed
    assert by_path["gcompris/src/activities/a/resource/deep/two.bin"].data() == b"\x00\x01\x02"
    assert not by_path["gcompris/src/activities/a/resource/deep/two.bin"].compressed
    assert by_path["gcompris/src/activities/b/three.bin"].data() == b""


@pytest.mark.parametrize(("version", "node_size", "flags"), [(1, 14, 0), (2, 22, 0), (3, 22, 5)])
def test_rcc_header_fields(version, node_size, flags):
    blob = build_rcc({"x": b"1"}, version=version, overall_flags=5)
    header = parse_rcc_header(blob)
    assert header.version == version
    assert header.node_size == node_size
    assert header.flags == flags
    assert header.data_offset == (24 if version == 3 else 20)
    assert blob[header.data_offset : header.data_offset + 5] == b"\x00\x00\x00\x011"


def test_rcc_zlib_stored_with_wrong_length_is_an_error():
    raw = struct.pack(">I", 99) + zlib.compress(b"abc")
    with pytest.raises(RccError, match="header says 99"):
        RccEntry("f", photos.RCC_COMPRESSED, raw).data()


@pytest.mark.parametrize("blob", [b"nope" + bytes(20), b"qres\x00\x00", b"qres" + struct.pack(">4I", 7, 0, 0, 0)])
def test_rcc_rejects_bad_headers(blob):
    with pytest.raises(RccError):
        parse_rcc_header(blob)


def test_rcc_rejects_truncated_tree():
    blob = build_rcc({"a/b": b"x"})
    with pytest.raises(RccError):
        read_rcc(blob[:-10])


def _without_zstandard(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "zstandard" else real(name, *a))


def test_rcc_zstd_entry_without_module_raises_and_is_counted(monkeypatch, tmp_path):
    _without_zstandard(monkeypatch)
    (entry,) = read_rcc(build_rcc({"p/z.webp": ("zstd", b"\x28\xb5\x2f\xfd")}))
    assert entry.flags == photos.RCC_COMPRESSED_ZSTD
    with pytest.raises(ZstdUnavailable):
        entry.data()
    manifest = Manifest()
    process(_candidate("z", entry.data), tmp_path, 1024, manifest)
    assert manifest.skipped == {"test": {"zstd_unavailable": 1}}
    assert manifest.images == []


# ---------------------------------------------------------------------------------------------------------
# Filter rules
# ---------------------------------------------------------------------------------------------------------

ACT = "gcompris/src/activities"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (f"{ACT}/explore_farm_animals/resource/animals/cow.webp", "photos"),
        (f"{ACT}/explore_monuments/resource/india/charminar.webp", "photos"),
        (f"{ACT}/categorization/resource/images/fishes/fish1.webp", "photos"),
        (f"{ACT}/explore_farm_animals/resource/animals/cow.svg", None),
        (f"{ACT}/explore_farm_animals/explore_farm_animals.svg", None),
        (f"{ACT}/explore_farm_animals/resource/animals/cow.ogg", None),
        (f"{ACT}/details/resource/image/TajMahal_background.webp", "photos"),
        (f"{ACT}/details/resource/image/TajMahal_3.webp", None),
        (f"{ACT}/details/resource/image/Gogh4_background.webp", "paintings"),
        (f"{ACT}/details/resource/image/Van_Gogh_The_Night_Cafe_background.webp", "paintings"),
        (f"{ACT}/paintings/resource/image/GreatWave_a1.webp", "paintings"),
        (f"{ACT}/paintings/paintings.svg", None),
        (f"{ACT}/clickgame/resource/sea1.webp", None),
        (f"{ACT}/ActivityInfo.qml", None),
    ],
)
def test_gcompris_kind(path, kind):
    assert gcompris_kind(path) == kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("fruits.jpg", "photos"),
        ("messi5.jpg", "photos"),
        ("left.jpg", "photos"),
        ("starry_night.jpg", "paintings"),
        ("left01.jpg", None),
        ("right14.jpg", None),
        ("chessboard.png", None),
        ("opencv-logo-white.png", None),
        ("pic3.png", None),
        ("text_defocus.jpg", None),
        ("imageTextN.png", None),
        ("H1to3p.xml", None),
        ("vtest.avi", None),
    ],
)
def test_opencv_kind(name, kind):
    assert opencv_kind(name) == kind


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _stripes(width: int, height: int) -> Image.Image:
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, ::2] = (255, 0, 0)
    array[:, 1::2] = (255, 255, 255)
    return Image.fromarray(array)


def test_is_flat_separates_flat_colours_from_noise():
    assert is_flat(_stripes(300, 300))
    assert not is_flat(_noise(300, 300))
    half = np.asarray(_noise(300, 300)).copy()
    half[:150] = 255  # half white, half noise: below the 0.9 share
    assert not is_flat(Image.fromarray(half))
    assert is_flat(Image.fromarray(half), share=0.4)


@pytest.mark.parametrize(
    ("size", "kind", "reason"),
    [
        ((300, 256), "photos", None),
        ((1000, 255), "photos", "small"),
        ((120, 80), "paintings", None),
        ((120, 63), "paintings", "small"),
    ],
)
def test_photo_skip_reason_sizes(size, kind, reason):
    assert photo_skip_reason(_noise(*size), kind) == reason


def test_photo_skip_reason_flat_photo():
    assert photo_skip_reason(_stripes(400, 300), "photos") == "flat"


def test_plasma_picks_largest_landscape_size():
    names = [Path(n) for n in ("1080x1920.png", "5120x2880.png", "2560x1600.png", "screenshot.png")]
    assert max(names, key=photos._plasma_size).name == "5120x2880.png"


# ---------------------------------------------------------------------------------------------------------
# Copyright (DEP-5)
# ---------------------------------------------------------------------------------------------------------

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2014 Someone
License: GPL-3+

Files: src/activities/details/resource/image/*
       src/activities/farm/resource/animals/*
Copyright: 2015 Other
License: GPL-3

Files: src/activities/farm/resource/animals/kangaroo.jpg
Copyright: Photographer
License: CC-BY-SA-3.0
Comment: https://commons.wikimedia.org/

License: GPL-3+
 This program is free software...
"""


def test_parse_dep5_reads_files_stanzas_with_continuation_lines():
    stanzas = parse_dep5(COPYRIGHT)
    assert [s.licence for s in stanzas] == ["GPL-3+", "GPL-3", "CC-BY-SA-3.0"]
    assert stanzas[1].patterns == ("src/activities/details/resource/image/*", "src/activities/farm/resource/animals/*")
    assert copyright_summary(stanzas) == "GPL-3+"


def test_dep5_last_match_wins_and_webp_matches_upstream_jpg():
    stanzas = parse_dep5(COPYRIGHT)
    kangaroo = "src/activities/farm/resource/animals/kangaroo.webp"
    assert dep5_licence(stanzas, with_other_suffixes(kangaroo)) == "CC-BY-SA-3.0"
    assert dep5_licence(stanzas, ["src/activities/farm/resource/animals/cow.webp"]) == "GPL-3"
    assert dep5_licence(stanzas, ["src/core/star.png"]) == "GPL-3+"
    assert dep5_licence(parse_dep5("Files: a/*\nLicense: MIT\n"), ["b/c.png"]) is None


def test_with_other_suffixes():
    assert with_other_suffixes("a/b.webp")[:3] == ["a/b.webp", "a/b.jpg", "a/b.jpeg"]
    assert with_other_suffixes("README") == ["README"]


# ---------------------------------------------------------------------------------------------------------
# Writing images and the manifest
# ---------------------------------------------------------------------------------------------------------


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _candidate(name: str, load, original: str = "x.webp", kind: str = "photos") -> Candidate:
    return Candidate("test", kind, f"sub/{name}", original, "pkg", "1.0-1", "CC0-1.0", load)


def test_process_shrinks_large_images_and_records_values(tmp_path):
    raw = _encoded(_noise(2000, 500), "WEBP")
    manifest = Manifest()
    process(_candidate("big", lambda: raw), tmp_path, 1024, manifest)
    (record,) = manifest.images
    target = tmp_path / "photos/test/sub/big.png"
    assert record.file == "photos/test/sub/big.png"
    assert (record.width, record.height) == (1024, 256)
    assert (record.original_width, record.original_height) == (2000, 500)
    assert record.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert record.bytes == target.stat().st_size
    assert (record.package, record.version, record.licence, record.original) == ("pkg", "1.0-1", "CC0-1.0", "x.webp")
    assert Image.open(target).size == (1024, 256)


def test_process_keeps_small_jpeg_bytes_and_skips_existing_outputs(tmp_path):
    raw = _encoded(_noise(400, 300), "JPEG")
    manifest = Manifest()
    candidate = _candidate("small", lambda: raw, original="y.jpg")
    process(candidate, tmp_path, 1024, manifest)
    target = tmp_path / "photos/test/sub/small.jpg"
    assert target.read_bytes() == raw
    target.write_bytes(raw + b"\x00")  # a changed output proves the second run does not rewrite it
    process(candidate, tmp_path, 1024, manifest)
    assert target.read_bytes() == raw + b"\x00"
    assert [r.file for r in manifest.images] == ["photos/test/sub/small.jpg"] * 2


def test_process_counts_corrupt_and_small(tmp_path):
    manifest = Manifest()
    process(_candidate("bad", lambda: b"not an image"), tmp_path, 1024, manifest)
    process(_candidate("tiny", lambda: _encoded(_noise(100, 100), "PNG")), tmp_path, 1024, manifest)
    assert manifest.skipped == {"test": {"corrupt": 1, "small": 1}}
    assert list(tmp_path.iterdir()) == []


def test_manifest_round_trip_counts_and_order(tmp_path):
    manifest = Manifest(max_side=512)
    for name, kind in (("b", "photos"), ("a", "paintings"), ("c", "photos")):
        raw = _encoded(_noise(300, 300), "PNG")
        process(_candidate(name, lambda raw=raw: raw, kind=kind), tmp_path, 512, manifest)
    manifest.skip("test", "flat")
    manifest.missing_packages.append("gone-pkg")
    path = tmp_path / "manifest.json"
    write_manifest(manifest, path)
    data = json.loads(path.read_text())
    assert data["counts"] == {"test": {"photos": 2, "paintings": 1}}
    assert data["skipped"] == {"test": {"flat": 1}}
    assert data["missing_packages"] == ["gone-pkg"]
    assert data["max_side"] == 512
    assert [r["file"] for r in data["images"]] == [
        "paintings/test/sub/a.png",
        "photos/test/sub/b.png",
        "photos/test/sub/c.png",
    ]
    assert data["total_bytes"] == sum(r["bytes"] for r in data["images"])
    again = read_manifest(path)
    assert again.counts() == manifest.counts()
    assert sorted(r.sha256 for r in again.images) == sorted(r.sha256 for r in manifest.images)


def test_fetch_rejects_unknown_sources(tmp_path):
    with pytest.raises(ValueError, match="unknown sources"):
        photos.fetch(tmp_path, ["gcompris", "flickr"])


def test_add_parser_registers_photos_command():
    import argparse

    from nodes.train import photos as command

    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["photos", "--out", "d", "--sources", "skimage", "--max-side", "512"])
    assert (args.command, args.out, args.sources, args.max_side, args.func) == (
        "photos",
        Path("d"),
        "skimage",
        512,
        command.run,
    )


def test_process_keeps_alpha_in_png_output(tmp_path):
    rgba = np.zeros((200, 300, 4), dtype=np.uint8)
    rgba[..., :3] = np.asarray(_noise(300, 200))
    rgba[:, 150:, 3] = 255  # left half transparent, like a puzzle tile's notches
    raw = _encoded(Image.fromarray(rgba), "WEBP")
    manifest = Manifest()
    process(_candidate("tile", lambda: raw, kind="paintings"), tmp_path, 1024, manifest)
    written = Image.open(tmp_path / "paintings/test/sub/tile.png")
    assert written.mode == "RGBA"
    alpha = np.asarray(written)[..., 3]
    assert alpha[:, :150].max() == 0
    assert alpha[:, 150:].min() == 255
