"""Training pairs for the edit instructions, synthesised from real photos (seeded, deterministic).

Every pair is (input, target, mask, colour, amount) on core tensors: images [1,3,H,W] in [0,1], the
mask [1,1,H,W] with 1 = the region the user marked. Everything random is drawn from the
`torch.Generator` passed in, so the same photo, mask and generator state give the same pair on any
machine. Outside the mask the target equals the input exactly, except for `blur_background`, which
by definition changes the outside and keeps the inside exactly.

The recipes (numbers are the module constants below):

* `remove`: target = the photo. input = the photo with a *foreign patch* pasted into the region: the
  same photo rotated by 180 degrees with its colour channels permuted (a random non-identity
  permutation), so the region holds something that does not belong there. The network never sees
  the region (`archs.edit.network_input` blanks it for `remove`): it learns to fill from context,
  i.e. "remove what is under the mask" the way LaMa-style removers do, and it cannot copy the object.
  The pasted patch matters for the evaluation's "untouched input" row (doing nothing leaves the
  object) and for the discriminator, which judges the composite against the input.
* `recolour`: input = the photo; target = `recolour_transform(photo, mask, colour)`, a closed-form
  recolouring in Oklab (Ottosson 2020), a perceptual space whose L is lightness:
  1. the region's dominant chroma (a, b) = the median over the mask's pixels;
  2. a soft matte = mask x exp(-|ab - ab_dominant|^2 / (2 x RECOLOUR_MATTE_SIGMA^2)): inside a rough
     mask only the pixels of the dominant colour change (a red shirt in a box turns blue, the grey
     wall around it in the box does not);
  3. lightness L' = L + RECOLOUR_LIGHTNESS_SHIFT x (L_colour - mean L under the matte): half way
     towards the colour's lightness, every pixel by the same offset, so shading is kept;
  4. chroma (a', b') = (a, b)_colour x L' / mean(L'), clipped to [0, RECOLOUR_MAX_CHROMA_GAIN]: the
     requested hue and chroma, darker where the surface is shaded (as a real surface of that colour
     would be);
  5. Oklab -> sRGB, clamped to [0, 1], blended by the matte.
  The requested colour is drawn in Oklab (L in [0.35, 0.85], chroma in [0.06, 0.20], any hue) and
  clipped to the sRGB gamut. What the network adds over running this formula: nothing beyond it in
  principle - it learns the formula, including the two non-local parts (the dominant colour and the
  mean lightness of the region) and the matte, in the same network that serves the other
  instructions. `recolour_transform` is public for anyone who wants the formula itself.
* `relight`: input = the photo; target = `relight_transform(photo, mask, amount)`, amount in
  [-1, 1] (|amount| >= 0.2 in training): in linear light each pixel gets the gain
  2 ** (RELIGHT_STOPS x amount x w), where w is a soft falloff inside the mask (0 at its edge, 1
  from RELIGHT_FALLOFF x the region's size inwards; w = mask x clamp(2 x feather(mask) - 1, 0, 1)).
  Brightening uses a Reinhard-style shoulder y = x g / (1 + x (g - 1)), so white stays white
  instead of clipping; darkening is the plain gain.
* `harmonise_paste`: target = the photo; input = the photo with the region's colour statistics
  perturbed as if it were pasted from another shot: per-channel gamma in [0.7, 1.4] (one value),
  per-channel gain in [0.75, 1.3], an additive cast in [-0.08, 0.08] per channel, then saturation x
  [0.5, 1.5] around the BT.601 luma. The network learns to undo it from the context.
* `blur_background`: input = the photo; target = `blur_background_transform(photo, mask, amount)`:
  the outside of the mask blurred with a depth-agnostic Gaussian of sigma = amount x BLUR_FRACTION x
  the image's shorter side (amount in [0.2, 1] in training), computed as a *normalised* convolution
  of the background only (blur(image x bg) / blur(bg)), so the subject does not bleed into the
  blurred background as a halo; it is feathered at the mask edge (blend weight of the original =
  max(mask, feather(mask, ~2 sigma))), and the inside of the mask is the photo exactly.

Masks come from `draw_masks`: the random-block, free-form stroke and LaMa-irregular generators of
`models.masks`, and `blobs` (a thresholded smooth noise field: one or a few rounded object-like
regions, BLOB_COVERAGE of the image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import layout, masks
from ..archs.edit import INSTRUCTIONS

MASK_KINDS = ("blocks", "strokes", "irregular", "blobs")
RECOLOUR_MATTE_SIGMA = 0.05
RECOLOUR_LIGHTNESS_SHIFT = 0.5
RECOLOUR_MAX_CHROMA_GAIN = 1.5
RELIGHT_STOPS = 1.5
RELIGHT_FALLOFF = 0.15
BLUR_FRACTION = 0.03
BLOB_COVERAGE = (0.08, 0.35)
LUMA = (0.299, 0.587, 0.114)


@dataclass
class EditPair:
    """One synthetic training or evaluation example."""

    instruction: str
    input: Tensor  # [1,3,H,W] in [0,1]
    target: Tensor  # [1,3,H,W] in [0,1]
    mask: Tensor  # [1,1,H,W], 1 = region
    colour: Tensor | None  # [1,3] RGB in [0,1] (recolour), else None
    amount: float  # relight: signed gain amount; blur_background: blur amount; else 0


# --------------------------------------------------------------------------------------------------
# colour spaces


def srgb_to_linear(x: Tensor) -> Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Tensor) -> Tensor:
    x = x.clamp(min=0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=1e-12) ** (1 / 2.4) - 0.055)


_LMS = torch.tensor([[0.4122214708, 0.5363325363, 0.0514459929],
                     [0.2119034982, 0.6806995451, 0.1073969566],
                     [0.0883024619, 0.2817188376, 0.6299787005]])
_LAB = torch.tensor([[0.2104542553, 0.7936177850, -0.0040720468],
                     [1.9779984951, -2.4285922050, 0.4505937099],
                     [0.0259040371, 0.7827717662, -0.8086757660]])


def _mix(matrix: Tensor, x: Tensor) -> Tensor:
    return torch.einsum("ij,bj...->bi...", matrix.to(x.device, x.dtype), x)


def rgb_to_oklab(rgb: Tensor) -> Tensor:
    """sRGB [B,3,...] in [0,1] -> Oklab (L in [0,1], a and b about +-0.3)."""
    lms = _mix(_LMS, srgb_to_linear(rgb))
    return _mix(_LAB, lms.clamp(min=0) ** (1 / 3))


def oklab_to_rgb(lab: Tensor) -> Tensor:
    """Oklab -> sRGB (not clamped: out-of-gamut colours leave [0,1])."""
    lms = _mix(torch.linalg.inv(_LAB.double()).float(), lab) ** 3
    return linear_to_srgb(_mix(torch.linalg.inv(_LMS.double()).float(), lms))


# --------------------------------------------------------------------------------------------------
# masks


def blobs(size: int, generator: torch.Generator) -> Tensor:
    """[1,1,size,size]: a smooth random field thresholded to cover BLOB_COVERAGE of the image."""
    cells = int(torch.randint(3, 6, (1,), generator=generator))
    noise = torch.rand(1, 1, cells, cells, generator=generator)
    # a bump in a random place so the region is usually one or two blobs, not speckle
    cy, cx = torch.rand(2, generator=generator).tolist()
    yy, xx = torch.meshgrid(torch.linspace(0, 1, cells), torch.linspace(0, 1, cells), indexing="ij")
    noise = noise + 1.5 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.1)
    field = F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=True)
    lo, hi = BLOB_COVERAGE
    share = lo + (hi - lo) * float(torch.rand((), generator=generator))
    threshold = torch.quantile(field.flatten(), 1.0 - share)
    return (field > threshold).float()


def draw_masks(batch: int, size: int, kinds: tuple[str, ...], generator: torch.Generator) -> Tensor:
    """One mask per item [batch,1,size,size], each from a kind of MASK_KINDS picked at random."""
    unknown = [k for k in kinds if k not in MASK_KINDS]
    if not kinds or unknown:
        raise ValueError(f"mask kinds must be a non-empty subset of {MASK_KINDS}, got {kinds}")
    out = []
    for _ in range(batch):
        kind = kinds[int(torch.randint(len(kinds), (1,), generator=generator))]
        seed = int(torch.randint(2**62, (1,), generator=generator))
        if kind == "blocks":
            out.append(masks.random_blocks(size, size, 1, seed, count=(1, 3), size=(0.2, 0.5)))
        elif kind == "strokes":
            out.append(masks.free_form_strokes(size, size, 1, seed))
        elif kind == "irregular":
            out.append(masks.irregular(size, size, 1, seed, preset=("medium", "thick")[seed % 2]))
        else:
            out.append(blobs(size, generator))
    return torch.cat(out)


# --------------------------------------------------------------------------------------------------
# closed-form transforms (also the pair targets)


def _uniform(generator: torch.Generator, lo: float, hi: float, n: int = 1) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def _weighted_mean(values: Tensor, weight: Tensor) -> Tensor:
    """Per item and channel: sum(values x weight) / sum(weight) -> [B,C,1,1]."""
    total = weight.sum(dim=(-2, -1), keepdim=True).clamp(min=1e-6)
    return (values * weight).sum(dim=(-2, -1), keepdim=True) / total


def _region_median(values: Tensor, mask: Tensor) -> Tensor:
    """Per item and channel: the median over the pixels with mask > 0.5 -> [B,C,1,1]."""
    out = []
    for v, m in zip(values, mask, strict=True):
        inside = m[0] > 0.5
        picked = v[:, inside] if bool(inside.any()) else v.flatten(1)
        out.append(picked.median(dim=1).values)
    return torch.stack(out)[:, :, None, None]


def recolour_transform(image: Tensor, mask: Tensor, colour: Tensor) -> Tensor:
    """The closed-form recolouring of the module doc; colour [B,3] RGB in [0,1]. Outside the mask: unchanged."""
    lab = rgb_to_oklab(image)
    lightness, chroma = lab[:, :1], lab[:, 1:]
    target = rgb_to_oklab(colour.reshape(-1, 3, 1, 1).to(image))
    dominant = _region_median(chroma, mask)
    distance = (chroma - dominant).square().sum(dim=1, keepdim=True)
    matte = mask * torch.exp(-distance / (2 * RECOLOUR_MATTE_SIGMA**2))
    mean_l = _weighted_mean(lightness, matte)
    new_l = lightness + RECOLOUR_LIGHTNESS_SHIFT * (target[:, :1] - mean_l)
    mean_new_l = _weighted_mean(new_l, matte).clamp(min=1e-3)
    gain = (new_l / mean_new_l).clamp(0.0, RECOLOUR_MAX_CHROMA_GAIN)
    rgb = oklab_to_rgb(torch.cat([new_l, target[:, 1:] * gain], dim=1)).clamp(0.0, 1.0)
    return image * (1 - matte) + rgb * matte


def relight_weight(mask: Tensor) -> Tensor:
    """The soft falloff w of `relight_transform`: 0 at the mask's edge, 1 deep inside, 0 outside."""
    out = []
    for m in mask:
        boxes = masks.bbox(m[None])
        _, _, w, h = boxes[0]
        radius = max(2, round(RELIGHT_FALLOFF * max(w, h, 1)))
        out.append(m[None] * (2 * masks.feather(m[None], radius) - 1).clamp(0.0, 1.0))
    return torch.cat(out)


def relight_transform(image: Tensor, mask: Tensor, amount: Tensor | float) -> Tensor:
    """Brighten (amount > 0) or darken the region in linear light with a soft falloff (module doc)."""
    amount = torch.as_tensor(amount, dtype=image.dtype, device=image.device).reshape(-1, 1, 1, 1)
    weight = relight_weight(mask)
    gain = 2.0 ** (RELIGHT_STOPS * amount * weight)
    linear = srgb_to_linear(image)
    bright = linear * gain / (1 + linear * (gain - 1))
    out = linear_to_srgb(torch.where(gain > 1, bright, linear * gain)).clamp(0.0, 1.0)
    return torch.where(weight > 0, out, image)


def harmonise_perturb(image: Tensor, mask: Tensor, generator: torch.Generator) -> Tensor:
    """The region's colour statistics changed as if pasted from another shot (module doc)."""
    gamma = float(_uniform(generator, 0.7, 1.4))
    gain = _uniform(generator, 0.75, 1.3, 3).view(1, 3, 1, 1)
    cast = _uniform(generator, -0.08, 0.08, 3).view(1, 3, 1, 1)
    saturation = float(_uniform(generator, 0.5, 1.5))
    x = (image.clamp(min=0) ** gamma * gain.to(image) + cast.to(image)).clamp(0.0, 1.0)
    luma = (x * torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    x = (luma + saturation * (x - luma)).clamp(0.0, 1.0)
    return image * (1 - mask) + x * mask


def gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur (truncated at 3 sigma), reflected at the border."""
    if sigma <= 0:
        return image.clone()
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, min(image.shape[-2:]) - 1)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(image)
    c = image.shape[1]
    out = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def blur_sigma(amount: float, height: int, width: int) -> float:
    """The Gaussian sigma (px) of blur amount `amount` on an image of this size."""
    return float(amount) * BLUR_FRACTION * min(height, width)


def blur_background_transform(image: Tensor, mask: Tensor, amount: float) -> Tensor:
    """The outside blurred without the subject's halo, feathered at the edge; the inside kept (module doc)."""
    sigma = blur_sigma(amount, *image.shape[-2:])
    if sigma <= 0:
        return image.clone()
    background = 1.0 - (mask > 0.5).to(image.dtype)
    weight = gaussian_blur(background, sigma)
    blurred = gaussian_blur(image * background, sigma) / weight.clamp(min=1e-4)
    blurred = torch.where(weight > 1e-3, blurred, gaussian_blur(image, sigma)).clamp(0.0, 1.0)
    keep = torch.maximum(mask, masks.feather(mask, max(1, round(2 * sigma))))
    return image * keep + blurred * (1 - keep)


# --------------------------------------------------------------------------------------------------
# pairs


def random_colour(generator: torch.Generator) -> Tensor:
    """[1,3] sRGB in [0,1]: drawn in Oklab (L 0.35..0.85, chroma 0.06..0.20, any hue), clipped to the gamut."""
    lightness = float(_uniform(generator, 0.35, 0.85))
    chroma = float(_uniform(generator, 0.06, 0.20))
    hue = float(_uniform(generator, 0.0, 2 * math.pi))
    lab = torch.tensor([lightness, chroma * math.cos(hue), chroma * math.sin(hue)]).view(1, 3, 1, 1)
    return oklab_to_rgb(lab).clamp(0.0, 1.0).view(1, 3)


def foreign_patch(image: Tensor, generator: torch.Generator) -> Tensor:
    """The photo rotated by 180 degrees with a random non-identity permutation of its channels."""
    perms = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
    perm = perms[int(torch.randint(len(perms), (1,), generator=generator))]
    return image.flip(-1).flip(-2)[:, list(perm)]


def make_pair(instruction: str, image: Tensor, mask: Tensor, generator: torch.Generator) -> EditPair:
    """One pair for `instruction` from a photo [1,3,H,W] in [0,1] and a mask [1,1,H,W] (see the module doc)."""
    if instruction not in INSTRUCTIONS:
        raise ValueError(f"unknown instruction {instruction!r}; known: {', '.join(INSTRUCTIONS)}")
    layout.validate_image(image, channels=(3,))
    layout.validate_mask(mask)
    if image.shape[0] != 1 or mask.shape != (1, 1, *image.shape[-2:]):
        raise ValueError(
            f"make_pair takes one image [1,3,H,W] and its mask [1,1,H,W], got {tuple(image.shape)} and "
            f"{tuple(mask.shape)}"
        )
    colour, amount = None, 0.0
    if instruction == "remove":
        source, target = image * (1 - mask) + foreign_patch(image, generator) * mask, image
    elif instruction == "recolour":
        colour = random_colour(generator)
        source, target = image, recolour_transform(image, mask, colour)
    elif instruction == "relight":
        sign = 1.0 if bool(torch.rand((), generator=generator) < 0.5) else -1.0
        amount = sign * float(_uniform(generator, 0.2, 1.0))
        source, target = image, relight_transform(image, mask, amount)
    elif instruction == "harmonise_paste":
        source, target = harmonise_perturb(image, mask, generator), image
    else:
        amount = float(_uniform(generator, 0.2, 1.0))
        source, target = image, blur_background_transform(image, mask, amount)
    return EditPair(instruction, source.clamp(0.0, 1.0), target.clamp(0.0, 1.0), mask, colour, amount)
