"""Training images: recursive folders, a deterministic held-out split, seeded crops and flips.

Batches are a pure function of (seed, step, rank): nothing about the data order lives in iterator
state, so a resumed run sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def list_images(root: str | os.PathLike) -> list[Path]:
    """Every image file under `root`, recursively, in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"training data folder {root} does not exist")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def is_held_out(path: Path, root: Path, fraction: float) -> bool:
    """A stable split: the hash of the relative path decides, so adding files moves no other file."""
    if fraction <= 0:
        return False
    digest = hashlib.sha1(path.relative_to(root).as_posix().encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def source_of(path: Path, root: Path) -> str:
    """The source of an image: the first folder below `root` (the package a photo came from), or ''."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else ""


def check_sources(root: Path, paths: Sequence[Path], sources: Sequence[str]) -> None:
    """A clear error when a named held-out source is not a folder of `root` holding images."""
    found = sorted({source_of(p, root) for p in paths} - {""})
    missing = [s for s in sources if s not in found]
    if missing:
        raise ValueError(f"held-out sources {missing} are not folders of images under {root}; its sources are {found}")


def step_generator(seed: int, step: int, rank: int = 0, stream: int = 0) -> torch.Generator:
    """The random stream for one purpose (`stream`) of one step on one rank."""
    mixed = np.random.SeedSequence([seed, step, rank, stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed) & 0x7FFF_FFFF_FFFF_FFFF)


@dataclass
class ImageSet:
    """Decoded training images kept in memory as uint8 [3,H,W] tensors."""

    root: Path
    images: list[Tensor]
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    held_out: list[Path] = field(default_factory=list)
    held_out_sources: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.images)


def load_images(
    root: str | os.PathLike,
    *,
    min_side: int,
    max_side: int | None = None,
    holdout: float = 0.0,
    use_held_out: bool = False,
    holdout_sources: Sequence[str] = (),
) -> ImageSet:
    """Decode every usable image under `root`.

    Images smaller than `min_side` on the short side, unreadable and corrupt files are skipped and
    counted (never fatal); images larger than `max_side` are downscaled once on load. With
    `holdout` > 0 the held-out share is set aside (or, with `use_held_out`, is the set returned);
    `holdout_sources` holds out whole sources (first-level folders, see `source_of`) as well, so that
    a score says how a model does on photos from somewhere it has never seen.
    """
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    root = Path(root)
    found = list_images(root)
    check_sources(root, found, holdout_sources)
    images, paths, skipped, held = [], [], [], []
    for path in found:
        held_out = source_of(path, root) in holdout_sources or is_held_out(path, root, holdout)
        if held_out != use_held_out:
            held.append(path)
            continue
        try:
            image = _decode(path, max_side)
        except Exception as exc:  # any decoder error means "skip this file", never "stop the run"
            skipped.append((path, f"{type(exc).__name__}: {exc}"))
            continue
        if min(image.shape[-2:]) < min_side:
            skipped.append((path, f"smaller than {min_side} px ({image.shape[-1]}x{image.shape[-2]})"))
            continue
        images.append(image)
        paths.append(path)
    for path, why in skipped:
        log.warning("skipped %s: %s", path, why)
    if not images:
        raise ValueError(
            f"no usable training images under {root} (found {len(paths) + len(skipped) + len(held)} files, "
            f"{len(skipped)} skipped, {len(held)} in the other split); expected {', '.join(IMAGE_SUFFIXES)} files "
            f"at least {min_side} px on the short side"
        )
    return ImageSet(root=root, images=images, paths=paths, skipped=skipped, held_out=held,
                    held_out_sources=tuple(holdout_sources))


def random_crops(
    images: Sequence[Tensor], batch: int, size: int, generator: torch.Generator, *, zoom: bool = True,
    picks: Sequence[int] | None = None,
) -> Tensor:
    """`batch` random square crops with random horizontal flips, float [B,C,size,size] in [0,1].

    With `zoom` the crop window's side is drawn log-uniformly between `size` and the image's short
    side and then resized to `size` (bicubic, antialiased, rounded to 8-bit levels), so the network
    sees both fine texture and whole objects.
    An image smaller than `size` is upscaled to fit. Images may have any channel count (all the
    same): a pair stacked along the channels (`load_pairs`) is cropped at one place. `picks`: the images
    to crop (indices, one per crop) instead of random ones.
    """
    out = torch.empty(batch, images[0].shape[0], size, size)
    if picks is None:
        picks = torch.randint(len(images), (batch,), generator=generator).tolist()
    elif len(picks) != batch:
        raise ValueError(f"picks must name one image per crop ({batch}), got {len(picks)}")
    for i, index in enumerate(picks):
        image = images[index]
        h, w = image.shape[-2:]
        short = min(h, w)
        window = short if short <= size else size
        if zoom and short > size:
            u = float(torch.rand((), generator=generator))
            window = round(size * (short / size) ** u)
        top = int(torch.randint(h - window + 1, (1,), generator=generator))
        left = int(torch.randint(w - window + 1, (1,), generator=generator))
        crop = image[:, top : top + window, left : left + window].float() / 255.0
        if window != size:  # bicubic with antialiasing keeps about the detail of a Lanczos downscale
            crop = torch.nn.functional.interpolate(
                crop[None], size=(size, size), mode="bicubic", align_corners=False, antialias=window > size
            )[0]
            crop = crop.clamp(0.0, 1.0).mul(255.0).round().div(255.0)  # 8-bit levels, as a photo has
        if bool(torch.rand((), generator=generator) < 0.5):
            crop = crop.flip(-1)
        out[i] = crop.clamp(0.0, 1.0)
    return out


def _decode(path: Path, max_side: int | None) -> Tensor:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if max_side and max(im.size) > max_side:
            scale = max_side / max(im.size)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


# ---------------------------------------------------------------------------------------------------
# aligned pairs

PAIR_DIRECTIONS = ("AtoB", "BtoA")


@dataclass
class PairSet:
    """Training pairs in memory as uint8 [3,H,W] tensors; `a` is None for synthetic pairs (made from `b`)."""

    root: Path
    kind: str  # "folders" | "side_by_side" | "synthetic:<maker>"
    b: list[Tensor]
    a: list[Tensor] | None
    names: list[str]
    held_out: list[str]
    held_out_sources: tuple[str, ...] = ()  # whole first-level folders set aside (synthetic pairs)

    def __len__(self) -> int:
        return len(self.b)

    @property
    def synthetic(self) -> str | None:
        return self.kind.split(":", 1)[1] if self.kind.startswith("synthetic:") else None

    def describe(self) -> dict[str, Any]:
        return {"folder": self.root.name, "kind": self.kind, "pairs": len(self), "held_out": len(self.held_out),
                "held_out_sources": list(self.held_out_sources)}


def _read(path: Path, max_side: int | None) -> Tensor:
    try:
        image = _decode(path, None)
    except Exception as exc:  # a broken file in a paired set is an error: its partner would be left alone
        raise ValueError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    return _downscale(image, max_side)


def _downscale(image: Tensor, max_side: int | None) -> Tensor:
    h, w = image.shape[-2:]
    if not max_side or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0].round().clamp(0, 255).to(torch.uint8)


def _stems(root: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in list_images(root):
        stem = path.relative_to(root).with_suffix("").as_posix()
        if stem in out:
            raise ValueError(
                f"{root}: two images are named {stem!r} ({out[stem].name}, {path.name}); names must be unique"
            )
        out[stem] = path
    return out


def load_pairs(
    root: str | os.PathLike,
    *,
    holdout: float = 0.0,
    max_side: int | None = None,
    min_side: int = 16,
    direction: str = "AtoB",
) -> PairSet:
    """Paired images from `root`: ``root/A`` + ``root/B`` folders when both exist, else side-by-side A|B files.

    `holdout` sets aside a stable share of the pairs by a hash of their name (`data.is_held_out`);
    `direction` "BtoA" swaps the roles. Images larger than `max_side` are downscaled (both sides alike).
    """
    if direction not in PAIR_DIRECTIONS:
        raise ValueError(f"direction must be one of {PAIR_DIRECTIONS}, got {direction!r}")
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"training data folder {root} does not exist")
    a_list, b_list, names, held = [], [], [], []
    if (root / "A").is_dir() and (root / "B").is_dir():
        kind = "folders"
        a_files, b_files = _stems(root / "A"), _stems(root / "B")
        only_a, only_b = sorted(set(a_files) - set(b_files)), sorted(set(b_files) - set(a_files))
        if only_a or only_b:
            raise ValueError(
                f"{root}: A/ and B/ must hold the same file names (suffixes may differ); only in A: "
                f"{only_a[:5]}{' ...' if len(only_a) > 5 else ''} ({len(only_a)}), only in B: "
                f"{only_b[:5]}{' ...' if len(only_b) > 5 else ''} ({len(only_b)})"
            )
        for stem in sorted(a_files):
            if is_held_out(root / stem, root, holdout):
                held.append(stem)
                continue
            a, b = _read(a_files[stem], None), _read(b_files[stem], None)
            if a.shape != b.shape:
                raise ValueError(
                    f"pair {stem!r}: A is {a.shape[2]}x{a.shape[1]} px but B is {b.shape[2]}x{b.shape[1]} px; "
                    "paired images must have the same size"
                )
            a_list.append(_downscale(a, max_side))
            b_list.append(_downscale(b, max_side))
            names.append(stem)
    else:
        kind = "side_by_side"
        for path in list_images(root):
            stem = path.relative_to(root).with_suffix("").as_posix()
            if is_held_out(root / stem, root, holdout):
                held.append(stem)
                continue
            ab = _read(path, None)
            half = ab.shape[-1] // 2
            a_list.append(_downscale(ab[..., :half].contiguous(), max_side))
            b_list.append(_downscale(ab[..., half : 2 * half].contiguous(), max_side))
            names.append(stem)
    if not names:
        raise ValueError(
            f"no training pairs under {root} ({len(held)} held out); expected A/ and B/ folders with matching "
            f"names, or side-by-side A|B images ({', '.join(IMAGE_SUFFIXES)})"
        )
    for name, a in zip(names, a_list, strict=True):
        if min(a.shape[-2:]) < min_side:
            raise ValueError(f"pair {name!r} is {a.shape[2]}x{a.shape[1]} px; expected at least {min_side} px a side")
    if direction == "BtoA":
        a_list, b_list = b_list, a_list
    return PairSet(root=root, kind=kind, b=b_list, a=a_list, names=names, held_out=held)
