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

import numpy as np
import torch
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

    def __len__(self) -> int:
        return len(self.images)


def load_images(
    root: str | os.PathLike,
    *,
    min_side: int,
    max_side: int | None = None,
    holdout: float = 0.0,
    use_held_out: bool = False,
) -> ImageSet:
    """Decode every usable image under `root`.

    Images smaller than `min_side` on the short side, unreadable and corrupt files are skipped and
    counted (never fatal); images larger than `max_side` are downscaled once on load. With
    `holdout` > 0 the held-out share is set aside (or, with `use_held_out`, is the set returned).
    """
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    root = Path(root)
    images, paths, skipped, held = [], [], [], []
    for path in list_images(root):
        if is_held_out(path, root, holdout) != use_held_out:
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
    return ImageSet(root=root, images=images, paths=paths, skipped=skipped, held_out=held)


def random_crops(
    images: Sequence[Tensor], batch: int, size: int, generator: torch.Generator, *, zoom: bool = True
) -> Tensor:
    """`batch` random square crops with random horizontal flips, float [B,C,size,size] in [0,1].

    With `zoom` the crop window's side is drawn log-uniformly between `size` and the image's short
    side and then resized to `size`, so the network sees both fine texture and whole objects.
    An image smaller than `size` is upscaled to fit. Images may have any channel count (all the
    same): a pair stacked along the channels (`load_pairs`) is cropped at one place.
    """
    out = torch.empty(batch, images[0].shape[0], size, size)
    picks = torch.randint(len(images), (batch,), generator=generator).tolist()
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
        if window != size:
            crop = torch.nn.functional.interpolate(
                crop[None], size=(size, size), mode="bilinear", align_corners=False, antialias=window > size
            )[0]
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


def load_pairs(
    root: str | os.PathLike,
    root_b: str | os.PathLike | None = None,
    *,
    min_side: int,
    max_side: int | None = None,
    holdout: float = 0.0,
    use_held_out: bool = False,
) -> ImageSet:
    """Aligned (A, B) training pairs, each kept as one uint8 [6,H,W] tensor (A's channels first).

    Two layouts: `root_b` given: A images under `root`, B images under `root_b` with the same relative
    paths (a file without its partner is an error naming it, as are pairs of different sizes);
    `root_b` None: every image under `root` is A and B side by side (A left, B right, even width).
    `max_side` applies to each half; the held-out split is by A's relative path.
    """
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    root = Path(root)
    files = list_images(root)
    if root_b is not None:
        root_b = Path(root_b)
        by_name = {p.relative_to(root_b).with_suffix("").as_posix(): p for p in list_images(root_b)}
        names = {p.relative_to(root).with_suffix("").as_posix() for p in files}
        missing_b = sorted(names - set(by_name))
        missing_a = sorted(set(by_name) - names)
        if missing_a or missing_b:
            raise ValueError(
                f"paired folders must hold the same file names: {len(missing_b)} in {root} have no partner in "
                f"{root_b} (e.g. {missing_b[:3]}), {len(missing_a)} in {root_b} none in {root} (e.g. {missing_a[:3]})"
            )
    images, paths, skipped, held = [], [], [], []
    for path in files:
        if is_held_out(path, root, holdout) != use_held_out:
            held.append(path)
            continue
        try:
            if root_b is None:
                whole = _decode(path, None)
                if whole.shape[-1] % 2:
                    raise ValueError(f"side-by-side A|B image of odd width {whole.shape[-1]}")
                half = whole.shape[-1] // 2
                a, b = whole[..., :half], whole[..., half:]
                if max_side and max(a.shape[-2:]) > max_side:
                    a, b = (_shrink(t, max_side) for t in (a, b))
            else:
                partner = by_name[path.relative_to(root).with_suffix("").as_posix()]
                a, b = _decode(path, max_side), _decode(partner, max_side)
                if a.shape != b.shape:
                    raise ValueError(f"A is {tuple(a.shape[1:])} but its partner {partner} is {tuple(b.shape[1:])}")
        except Exception as exc:  # one bad pair is skipped and counted, never fatal
            skipped.append((path, f"{type(exc).__name__}: {exc}"))
            continue
        if min(a.shape[-2:]) < min_side:
            skipped.append((path, f"smaller than {min_side} px ({a.shape[-1]}x{a.shape[-2]})"))
            continue
        images.append(torch.cat([a, b]))
        paths.append(path)
    for path, why in skipped:
        log.warning("skipped %s: %s", path, why)
    if not images:
        raise ValueError(
            f"no usable training pairs under {root} ({len(files)} files, {len(skipped)} skipped, {len(held)} in the "
            f"other split); expected {'A|B side-by-side images' if root_b is None else 'files with partners'} at "
            f"least {min_side} px on the short side"
        )
    return ImageSet(root=root, images=images, paths=paths, skipped=skipped, held_out=held)


def _shrink(image: Tensor, max_side: int) -> Tensor:
    scale = max_side / max(image.shape[-2:])
    size = (round(image.shape[-2] * scale), round(image.shape[-1] * scale))
    small = torch.nn.functional.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True)[0]
    return small.round().clamp(0, 255).to(torch.uint8)
