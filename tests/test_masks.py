"""Unit tests of models/masks.py: generators, coverage control, masks from images, mask maths."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import layout, masks

pytestmark = pytest.mark.unit

# name -> generator(height, width, batch, seed, **kwargs)
GENERATORS = {
    "blocks": masks.random_blocks,
    "free_form": masks.free_form_strokes,
    "thin": lambda h, w, b, s, **k: masks.irregular(h, w, b, s, preset="thin", **k),
    "medium": lambda h, w, b, s, **k: masks.irregular(h, w, b, s, preset="medium", **k),
    "thick": lambda h, w, b, s, **k: masks.irregular(h, w, b, s, preset="thick", **k),
}


def boundary_pixels(mask: torch.Tensor) -> torch.Tensor:
    """Hole pixels with a 4-neighbour outside the hole, per item."""
    hole = mask[:, 0] > 0.5
    inner = masks.grow(mask, -1)[:, 0] > 0.5
    return (hole & ~inner).sum(dim=(1, 2)).float()


def thickness(mask: torch.Tensor) -> torch.Tensor:
    """Area / boundary pixels: about half the stroke width for long strokes, per item."""
    return (mask[:, 0] > 0.5).sum(dim=(1, 2)).float() / boundary_pixels(mask)


def disc_reference(mask: np.ndarray, r: int) -> np.ndarray:
    """Brute-force dilation of a 2-D bool array by the disc dx^2 + dy^2 <= r^2."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    ys, xs = np.nonzero(mask)
    yy, xx = np.mgrid[0:h, 0:w]
    for y, x in zip(ys, xs, strict=True):
        out |= (yy - y) ** 2 + (xx - x) ** 2 <= r * r
    return out


# ---------------------------------------------------------------------------------------------
# generators: shape, values, determinism


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_shape_dtype_and_binary_values(name):
    m = GENERATORS[name](64, 96, 3, 0)
    assert m.shape == (3, 1, 64, 96)
    assert m.dtype == torch.float32
    assert set(torch.unique(m).tolist()) <= {0.0, 1.0}
    assert (masks.coverage(m) > 0).all()


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_determinism(name):
    gen = GENERATORS[name]
    a = gen(96, 96, 4, 123)
    assert torch.equal(a, gen(96, 96, 4, 123))
    assert not torch.equal(a, gen(96, 96, 4, 124))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(a[i], a[j]), f"items {i} and {j} are identical"
    # item i does not depend on the batch size
    assert torch.equal(a[:2], gen(96, 96, 2, 123))
    assert torch.equal(a[3], gen(96, 96, 7, 123)[3])


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("bucket", list(masks.COVERAGE_BUCKETS))
def test_generator_coverage_buckets(name, bucket):
    lo, hi = masks.COVERAGE_BUCKETS[bucket]
    m = GENERATORS[name](128, 128, 30, 5, coverage=(lo, hi))
    ratio = masks.coverage(m)
    assert ratio.min().item() >= lo and ratio.max().item() <= hi, (bucket, ratio.tolist())
    assert set(torch.unique(m).tolist()) <= {0.0, 1.0}


def test_coverage_buckets_are_the_nvidia_ones():
    assert list(masks.COVERAGE_BUCKETS.values()) == [
        (0.01, 0.10), (0.10, 0.20), (0.20, 0.30), (0.30, 0.40), (0.40, 0.50), (0.50, 0.60)]


def test_coverage_impossible_raises_runtime_error_naming_the_item():
    # every block covers at least 0.9^2 = 81% of the image: 1-10% cannot be reached
    with pytest.raises(RuntimeError, match=r"item 0 .*closest ratio reached 0\.8"):
        masks.random_blocks(32, 32, 1, 0, size=(0.9, 1.0), coverage=(0.01, 0.1))


@pytest.mark.parametrize("name", GENERATORS)
def test_generators_scale_with_image_size(name):
    """The same seed at 512 px draws the 256 px mask scaled by 2, up to rasterisation.

    Per boundary pixel the outline can move by at most 1.5 px (vertex rounding: 0.5 px at 256,
    doubled, plus 0.5 px at 512) + 0.75 px (brush width rounding: 1 px at 256 doubled, plus
    0.5 px at 512, half of it per side), so |mask512 - up2(mask256)| <= 2.25 * boundary512.
    A width that did not scale would miss this by roughly area / 2.
    """
    gen = GENERATORS[name]
    small, big = gen(256, 256, 12, 11), gen(512, 512, 12, 11)
    upsampled = F.interpolate(small, scale_factor=2, mode="nearest")
    differing = (upsampled != big).sum(dim=(1, 2, 3)).float()
    assert (differing <= 2.25 * boundary_pixels(big)).all(), (differing / boundary_pixels(big)).tolist()
    # hole ratio is size independent; area / boundary (about half the stroke width) doubles
    assert torch.allclose(masks.coverage(small), masks.coverage(big), atol=0.03)
    ratio = (thickness(big).mean() / thickness(small).mean()).item()
    assert 1.9 <= ratio <= 2.1, ratio


def test_free_form_width_scales_with_min_side():
    # a single straight-ish stroke: width_range fixed to one value -> thickness doubles with size
    kw = dict(strokes=(1, 1), vertices=(1, 1), width_range=(20, 20))
    small = masks.free_form_strokes(256, 256, 20, 3, **kw)
    big = masks.free_form_strokes(512, 512, 20, 3, **kw)
    ratio = (thickness(big).mean() / thickness(small).mean()).item()
    assert 1.9 <= ratio <= 2.1, ratio


# ---------------------------------------------------------------------------------------------
# generator-specific behaviour


def test_irregular_presets_order_by_stroke_thickness_and_respect_cap():
    stats = {}
    for preset in ("thin", "medium", "thick"):
        m = masks.irregular(256, 256, 60, 1, preset=preset)
        assert masks.coverage(m).max().item() <= 0.5  # LaMa's max_tamper_area
        stats[preset] = thickness(m).mean().item()
    # LaMa's widths at 256 px: 5 + U(0, 10 | 50 | 100) -> mean 10, 30, 55 px; thickness ~ width / 2
    assert 4 < stats["thin"] < 8, stats
    assert stats["thin"] * 2 < stats["medium"] < stats["thick"], stats


def test_irregular_custom_and_overrides():
    custom = dict(min_times=2, max_times=2, max_width=1, max_len=1, max_angle=4)
    m = masks.irregular(128, 128, 4, 0, preset="custom", **custom)
    assert set(torch.unique(m).tolist()) == {0.0, 1.0}
    # width at 128 px: (5 + U(0, 1)) / 2 -> 3 px; two strokes of 1..5 segments of ~5 px
    assert masks.coverage(m).max().item() < 0.05
    wide = masks.irregular(128, 128, 20, 0, preset="thin", max_width=60)
    assert thickness(wide).mean() > 2 * thickness(masks.irregular(128, 128, 20, 0, preset="thin")).mean()
    with pytest.raises(ValueError, match=r"'custom' needs .*missing \['max_len', 'max_angle'\]"):
        masks.irregular(64, 64, 1, 0, preset="custom", min_times=1, max_times=2, max_width=3)
    with pytest.raises(ValueError, match=r"unknown parameters \['max_lenght'\]"):
        masks.irregular(64, 64, 1, 0, preset="thin", max_lenght=3)
    with pytest.raises(ValueError, match=r"preset must be one of .*got 'huge'"):
        masks.irregular(64, 64, 1, 0, preset="huge")


def test_random_blocks_sizes_count_and_max_coverage():
    # one block of 0.25 * 128 = 32 px per side
    one = masks.random_blocks(128, 128, 6, 0, count=(1, 1), size=(0.25, 0.25))
    assert (one.sum(dim=(1, 2, 3)) == 32 * 32).all()
    for item in masks.bbox(one):
        assert item[2:] == (32, 32)
    capped = masks.random_blocks(128, 128, 40, 0, count=(5, 5), size=(0.3, 0.6), max_coverage=0.3)
    ratio = masks.coverage(capped)
    assert ratio.max().item() <= 0.3
    assert ratio.min().item() >= 0.09  # the first block (>= 0.3^2 of the image) always fits


def test_free_form_stroke_geometry():
    # one stroke, one move: a capsule of width 20 px (at 256) and length <= diag / 4
    m = masks.free_form_strokes(256, 256, 30, 0, strokes=(1, 1), vertices=(1, 1), width_range=(20, 20))
    area = m.sum(dim=(1, 2, 3))
    max_len = math.hypot(256, 256) / 4
    assert area.max().item() <= (max_len + 2) * 21 + math.pi * 11**2
    assert area.min().item() >= math.pi * 9**2  # at least the round cap
    assert (masks.coverage(masks.free_form_strokes(64, 64, 4, 0)) > 0).all()


def test_box_mask_and_center_box_exact():
    m = masks.box_mask(10, 12, 2, top=2, left=3, box_height=4, box_width=5)
    expected = torch.zeros(10, 12)
    expected[2:6, 3:8] = 1
    assert torch.equal(m, expected.expand(2, 1, 10, 12))
    clipped = masks.box_mask(10, 12, 1, top=-2, left=9, box_height=4, box_width=10)
    assert clipped.sum().item() == 2 * 3 and torch.equal(clipped[0, 0, 0:2, 9:12], torch.ones(2, 3))
    centre = masks.center_box(128, 128, 1)
    assert centre.sum().item() == 64 * 64
    assert masks.bbox(centre) == [(32, 32, 64, 64)]
    assert masks.bbox(masks.center_box(100, 60, 1, 0.25, 0.5)) == [(15, 37, 30, 25)]
    with pytest.raises(ValueError, match="lies entirely outside the 10x12 image"):
        masks.box_mask(10, 12, 1, top=10, left=0, box_height=3, box_width=3)
    with pytest.raises(ValueError, match="box_width must be >= 1, got 0"):
        masks.box_mask(10, 12, 1, top=0, left=0, box_height=3, box_width=0)
    with pytest.raises(ValueError, match=r"fraction_h must lie in \(0, 1\], got 1.5"):
        masks.center_box(10, 12, 1, fraction_h=1.5)


def test_outpaint_border_exact_counts():
    m = masks.outpaint_border(50, 80, 2, left=10, top=5, right=0, bottom=7)
    assert m.shape == (2, 1, 50, 80)
    assert m.sum().item() == 2 * (50 * 80 - (50 - 5 - 7) * (80 - 10))
    assert set(torch.unique(m).tolist()) == {0.0, 1.0}
    assert m[0, 0, 5:43, 10:].sum().item() == 0
    assert m[0, 0, :5].min().item() == 1 and m[0, 0, :, :10].min().item() == 1
    assert masks.outpaint_border(8, 8, 1, 0, 0, 0, 0).sum().item() == 0


def test_outpaint_border_feather_ramp():
    f = 4
    m = masks.outpaint_border(40, 60, 1, left=10, top=0, right=0, bottom=0, feather=f)[0, 0]
    row = m[20]
    assert torch.equal(row[:10], torch.ones(10))  # the border band stays 1
    expected = torch.tensor([(f - d) / (f + 1) for d in range(f)])
    assert torch.allclose(row[10:10 + f], expected)
    assert torch.all(row[10:10 + f + 1].diff() < 0)  # strictly decreasing into the image
    assert torch.equal(row[10 + f:], torch.zeros(60 - 10 - f))
    assert torch.equal(m, m[20].expand(40, 60))  # no ramp from the unpadded sides
    assert m.min().item() >= 0 and m.max().item() <= 1


# ---------------------------------------------------------------------------------------------
# masks from images


def test_from_luma_uses_bt601():
    colours = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.float32)
    image = colours.T.reshape(1, 3, 1, 5)  # luma: 1, 0.299, 0.587, 0.114, 0
    assert masks.from_luma(image, 0.2).flatten().tolist() == [1, 1, 1, 0, 0]
    assert masks.from_luma(image, 0.3).flatten().tolist() == [1, 0, 1, 0, 0]
    assert masks.from_luma(image, 0.25).flatten().tolist() == [1, 1, 1, 0, 0]  # BT.709 red is 0.2126
    assert masks.from_luma(image, 0.3, invert=True).flatten().tolist() == [0, 1, 0, 1, 1]
    grey = torch.tensor([0.1, 0.5, 0.9]).reshape(1, 1, 1, 3)
    assert masks.from_luma(grey, 0.5).flatten().tolist() == [0, 1, 1]  # >= threshold is a hole
    with pytest.raises(ValueError, match=r"image must have 1 or 3 channels .*got shape \(1, 4, 1, 5\)"):
        masks.from_luma(torch.zeros(1, 4, 1, 5), 0.5)


def test_from_color_max_channel_distance():
    px = torch.tensor([[200, 10, 10], [208, 18, 18], [211, 10, 10], [200, 10, 10]], dtype=torch.float32) / 255
    image = px.T.reshape(1, 3, 2, 2)
    target = (200 / 255, 10 / 255, 10 / 255)
    assert masks.from_color(image, target, 0).flatten().tolist() == [1, 0, 0, 1]
    # (8, 8, 8) levels away: max-channel 8 <= 10 (Euclidean would be 13.9)
    assert masks.from_color(image, target, 10 / 255).flatten().tolist() == [1, 1, 0, 1]
    assert masks.from_color(image, target, 11 / 255).flatten().tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match=r"color_rgb must be 3 floats in \[0, 1\].*got \(255, 0, 0\)"):
        masks.from_color(image, (255, 0, 0), 0.1)
    with pytest.raises(ValueError, match="image must have 3 channels"):
        masks.from_color(torch.zeros(1, 1, 2, 2), target, 0.1)


def test_from_alpha_transparent_is_hole():
    rgba = torch.zeros(2, 4, 2, 2)
    rgba[:, 3] = torch.tensor([[1.0, 0.0], [0.25, 0.75]])
    soft = masks.from_alpha(rgba)
    assert soft.shape == (2, 1, 2, 2)
    assert soft[0, 0].flatten().tolist() == [0.0, 1.0, 0.75, 0.25]
    assert masks.from_alpha(rgba, threshold=0.5)[1, 0].flatten().tolist() == [0, 1, 1, 0]
    with pytest.raises(ValueError, match=r"image_rgba must have 4 channels .*got shape \(2, 3, 2, 2\)"):
        masks.from_alpha(rgba[:, :3])


def test_from_difference():
    a = torch.zeros(1, 3, 2, 3)
    b = a.clone()
    b[0, 1, 0, 0] = 0.2
    b[0, 2, 1, 2] = 0.05
    assert masks.from_difference(a, b, 0.1)[0, 0].tolist() == [[1, 0, 0], [0, 0, 0]]
    assert masks.from_difference(a, b, 0.0)[0, 0].tolist() == [[1, 0, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match=r"same shape, got \(1, 3, 2, 3\) and \(1, 3, 2, 2\)"):
        masks.from_difference(a, b[..., :2], 0.1)


# ---------------------------------------------------------------------------------------------
# mask maths


def test_binarize_jpeg_like_values():
    m = torch.tensor([0.98, 0.02, 0.5, 0.49, 1.0, 0.0]).reshape(1, 1, 2, 3)
    assert masks.binarize(m).flatten().tolist() == [1, 0, 1, 0, 1, 0]
    assert masks.binarize(m, 0.99).flatten().tolist() == [0, 0, 0, 0, 1, 0]


def test_grow_single_pixel_is_a_digital_disc():
    m = torch.zeros(1, 1, 21, 21)
    m[0, 0, 10, 10] = 1
    for r in (1, 3, 7):
        grown = masks.grow(m, r)[0, 0]
        expected = sum(1 for dy in range(-r, r + 1) for dx in range(-r, r + 1) if dx * dx + dy * dy <= r * r)
        assert grown.sum().item() == expected  # 5, 29, 149
        assert grown[10, 10 + r] == 1 and grown[10, 10 + r + 1] == 0
    assert masks.grow(m, 1).sum().item() == 5


def test_grow_and_shrink_square_exact():
    m = torch.zeros(1, 1, 40, 50)
    m[0, 0, 10:22, 15:27] = 1  # 12 x 12 square
    for r in (1, 2, 5):
        grown = masks.grow(m, r)[0, 0].bool().numpy()
        assert np.array_equal(grown, disc_reference(m[0, 0].bool().numpy(), r))
        assert masks.bbox(masks.grow(m, r)) == [(15 - r, 10 - r, 12 + 2 * r, 12 + 2 * r)]
        shrunk = masks.grow(m, -r)
        assert shrunk.sum().item() == (12 - 2 * r) ** 2
        assert masks.bbox(shrunk) == [(15 + r, 10 + r, 12 - 2 * r, 12 - 2 * r)]
    assert masks.grow(m, -6).sum().item() == 0
    assert torch.equal(masks.grow(m, 0), m)


def test_grow_borders_and_soft_masks():
    full = torch.ones(1, 1, 9, 9)
    assert torch.equal(masks.grow(full, -3), full)  # outside counts as hole when shrinking
    edge = torch.zeros(1, 1, 9, 9)
    edge[..., :, :2] = 1
    assert masks.grow(edge, -1)[0, 0, :, 0].min().item() == 1  # stays attached to the border
    assert masks.grow(edge, 2)[0, 0].sum().item() == 9 * 4
    rng = np.random.default_rng(0)
    binary = torch.from_numpy((rng.random((2, 1, 30, 30)) > 0.9).astype(np.float32))
    soft = masks.grow(binary * 0.5, 4)  # soft path (grey-level max) must agree with the 0/1 path
    assert torch.equal(soft, masks.grow(binary, 4) * 0.5)
    assert torch.equal(masks.grow(binary * 0.5 + 0.5, -3), masks.grow(binary, -3) * 0.5 + 0.5)
    ref = disc_reference(binary[1, 0].bool().numpy(), 4)
    assert np.array_equal(masks.grow(binary, 4)[1, 0].bool().numpy(), ref)


def test_feather_keeps_far_values_exact():
    m = torch.zeros(1, 1, 60, 60)
    m[0, 0, 20:40, 20:40] = 1
    r = 6
    f = masks.feather(m, r)[0, 0]
    assert f.min().item() >= 0 and f.max().item() <= 1
    assert torch.equal(f[20 + r:40 - r, 20 + r:40 - r], torch.ones(20 - 2 * r, 20 - 2 * r))
    far = torch.ones(60, 60, dtype=torch.bool)
    far[20 - r:40 + r, 20 - r:40 + r] = False
    assert (f[far] == 0).all()
    row = f[30]
    assert 0.4 < row[19].item() < 0.6 and 0.4 < row[20].item() < 0.6  # the edge sits at ~0.5
    assert torch.all(row[20 - r:21].diff() > 0)  # ramp rises across the edge
    assert torch.equal(masks.feather(m, 0), m)
    border = torch.zeros(1, 1, 30, 30)
    border[..., :, :10] = 1
    assert masks.feather(border, 4)[0, 0, :, 0].min().item() == 1  # replicate padding at the border


def test_refine_order_binarize_invert_grow_feather():
    m = torch.zeros(1, 1, 30, 30)
    m[0, 0, 10:20, 10:20] = 0.98  # a JPEG'd hole
    out = masks.refine(m, threshold=0.5, grow_pixels=2)
    assert torch.equal(out, masks.grow(masks.binarize(m), 2))
    inv = masks.refine(m, threshold=0.5, grow_pixels=2, invert=True)
    assert torch.equal(inv, masks.grow(1 - masks.binarize(m), 2))  # grow acts on the returned hole
    assert inv.sum().item() == 900 - 6 * 6
    fea = masks.refine(m, threshold=0.5, feather_radius=3)
    assert torch.equal(fea, masks.feather(masks.binarize(m), 3))
    assert torch.equal(masks.refine(m), m)


def test_bbox_values_padding_and_empty_error():
    m = torch.zeros(3, 1, 20, 30)
    m[0, 0, 5:8, 10:14] = 1
    m[1, 0, 0, 0] = 1
    m[1, 0, 19, 29] = 0.6
    m[2, 0, 3, 3] = 1
    assert masks.bbox(m) == [(10, 5, 4, 3), (0, 0, 30, 20), (3, 3, 1, 1)]
    assert masks.bbox(m, padding=2) == [(8, 3, 8, 7), (0, 0, 30, 20), (1, 1, 5, 5)]
    assert masks.bbox(m[2:], padding=10) == [(0, 0, 14, 14)]  # clipped to the image
    m[2, 0, 3, 3] = 0.5  # not > 0.5
    with pytest.raises(ValueError, match="mask item 2 is empty"):
        masks.bbox(m)


def test_coverage_values():
    m = torch.zeros(2, 1, 4, 5)
    m[0, 0, :2] = 1
    m[1, 0, 0, 0] = 0.5
    assert torch.allclose(masks.coverage(m), torch.tensor([0.5, 0.025]))


# ---------------------------------------------------------------------------------------------
# parameter and input errors


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: masks.random_blocks(-3, 64, 1, 0), r"height must be >= 1, got -3"),
        (lambda: masks.free_form_strokes(64, 0, 1, 0), r"width must be >= 1, got 0"),
        (lambda: masks.irregular(64, 64, 0, 0), r"batch must be >= 1, got 0"),
        (lambda: masks.random_blocks(64, 64, 1, -1), r"seed must be an integer >= 0, got -1"),
        (lambda: masks.random_blocks(64, 64, 1, 0, coverage=(0.2, 1.4)),
         r"coverage range must lie within \[0, 1\], got \(0.2, 1.4\)"),
        (lambda: masks.free_form_strokes(64, 64, 1, 0, coverage=(0.4, 0.2)),
         r"coverage range must have low <= high, got \(0.4, 0.2\)"),
        (lambda: masks.irregular(64, 64, 1, 0, coverage=(0.3, 0.3)), r"low < high"),
        (lambda: masks.random_blocks(64, 64, 1, 0, count=(3, 1)), r"count must have low <= high, got \(3, 1\)"),
        (lambda: masks.random_blocks(64, 64, 1, 0, size=(0.0, 0.5)),
         r"size range must lie within \(0, 1\], got \(0.0, 0.5\)"),
        (lambda: masks.random_blocks(64, 64, 1, 0, max_coverage=0), r"max_coverage must lie in \(0, 1\], got 0"),
        (lambda: masks.free_form_strokes(64, 64, 1, 0, width_range=(-3, 10)),
         r"width_range range must lie within \(0, inf\], got \(-3, 10\)"),
        (lambda: masks.free_form_strokes(64, 64, 1, 0, strokes=(0, 2)), r"strokes must lie within \[1, ...\]"),
        (lambda: masks.outpaint_border(64, 64, 1, 40, 0, 30, 0), r"leave no kept pixels on a 64x64 canvas"),
        (lambda: masks.outpaint_border(64, 64, 1, -1, 0, 0, 0), r"left must be >= 0, got -1"),
        (lambda: masks.from_luma(torch.zeros(1, 3, 0, 64), 0.5), r"image is empty: got shape \(1, 3, 0, 64\)"),
        (lambda: masks.from_luma(torch.full((1, 3, 2, 2), 1.5), 0.5),
         r"image values must lie in \[0, 1\], got min 1.5, max 1.5"),
        (lambda: masks.from_luma(torch.zeros(3, 2, 2), 0.5), r"4 dimensions \[B, C, H, W\], got shape \(3, 2, 2\)"),
        (lambda: masks.from_luma(torch.zeros(1, 3, 2, 2), 1.2), r"threshold must lie in \[0, 1\], got 1.2"),
        (lambda: masks.coverage(torch.full((1, 1, 2, 2), float("nan"))), r"mask contains NaN"),
        (lambda: masks.grow(torch.zeros(1, 3, 4, 4), 1), r"mask must have shape \[B, 1, H, W\], got shape"),
        (lambda: masks.grow(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 1), r"floating point .*torch.uint8"),
        (lambda: masks.grow(torch.zeros(1, 1, 4, 4), 1.5), r"pixels must be an integer, got 1.5"),
        (lambda: masks.feather(torch.zeros(1, 1, 4, 4), -2), r"radius must be >= 0, got -2"),
        (lambda: masks.binarize(torch.zeros(1, 1, 4, 4), 0), r"threshold must lie in \(0, 1\], got 0"),
        (lambda: masks.bbox(torch.ones(1, 1, 4, 4), padding=-1), r"padding must be >= 0, got -1"),
        (lambda: layout.validate_mask(torch.full((1, 1, 2, 2), 2.0)), r"mask values must lie in \[0, 1\]"),
        (lambda: layout.validate_image("x"), r"image must be a torch.Tensor, got str"),
    ],
)
def test_parameter_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_validators_return_valid_input():
    image, mask = torch.rand(2, 3, 4, 4), torch.rand(2, 1, 4, 4)
    assert layout.validate_image(image) is image
    assert layout.validate_mask(mask) is mask
    with pytest.raises(ValueError, match=r"image must have 4 channels"):
        layout.validate_image(image, channels=(4,))


# ------------------------------------------------------------------------------------------------
# overlay (node previews)

def test_overlay_without_image_is_grey_mask():
    mask = masks.center_box(8, 8, 2)
    preview = masks.overlay(mask)
    assert preview.shape == (2, 3, 8, 8)
    assert torch.equal(preview[:, 0], mask[:, 0]) and torch.equal(preview[:, 2], mask[:, 0])


def test_overlay_tints_only_the_hole_and_cycles_images():
    mask = masks.center_box(8, 8, 3)
    image = torch.stack([torch.full((3, 8, 8), 0.2), torch.full((3, 8, 8), 0.6)])
    preview = masks.overlay(mask, image)
    assert preview.shape == (3, 3, 8, 8)
    assert torch.allclose(preview[0, :, 0, 0], torch.tensor([0.2, 0.2, 0.2]))  # keep: unchanged
    assert torch.allclose(preview[0, :, 4, 4], torch.tensor([0.6, 0.1, 0.1]))  # hole: half red
    assert torch.allclose(preview[2, :, 0, 0], torch.tensor([0.2, 0.2, 0.2]))  # third item reuses image 0
    rgba = torch.cat([image, torch.ones(2, 1, 8, 8)], dim=1)
    assert torch.equal(masks.overlay(mask, rgba), preview)


def test_overlay_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"preview image is \(4, 4\).*mask is \(8, 8\)"):
        masks.overlay(masks.center_box(8, 8, 1), torch.zeros(1, 3, 4, 4))


def test_resize_keeps_the_hole_where_it_was():
    mask = masks.box_mask(64, 64, 2, 16, 16, 32, 32)
    big = masks.resize(mask, 128, 96)
    assert big.shape == (2, 1, 128, 96)
    assert float(big[0, 0, 64, 48]) == 1.0 and float(big[0, 0, 5, 5]) == 0.0
    assert masks.coverage(big)[0].item() == pytest.approx(0.25, abs=0.01)
    assert torch.equal(masks.resize(mask, 64, 64), mask)
    with pytest.raises(ValueError, match="height"):
        masks.resize(mask, 0, 10)


def test_box_in_units_converts_fractions_and_says_when_one_rounds_to_nothing():
    by_fraction = masks.box_in_units(40, 60, 1, units="fraction", centered=True, x=0, y=0, box_width=0.5,
                                     box_height=0.25)
    assert torch.equal(by_fraction, masks.box_mask(40, 60, 1, 15, 15, 10, 30))
    by_pixels = masks.box_in_units(40, 60, 2, units="pixels", centered=False, x=5, y=6, box_width=7, box_height=8)
    assert torch.equal(by_pixels, masks.box_mask(40, 60, 2, 6, 5, 8, 7))
    with pytest.raises(ValueError, match=r"^box_height 0.25 of a 1 px tall image is 0.25 px, which rounds to 0; a box "
                       r"needs at least 1 px"):
        masks.box_in_units(1, 64, 1, units="fraction", centered=True, x=0, y=0, box_width=0.5, box_height=0.25)
    with pytest.raises(ValueError, match="units must be one of"):
        masks.box_in_units(8, 8, 1, units="inches", centered=True, x=0, y=0, box_width=1, box_height=1)


def test_a_canvas_too_small_for_any_hole_says_so():
    with pytest.raises(ValueError, match=r"a 1x1 image is too small for a hole ratio of at most 0.5"):
        masks.irregular(1, 1, 1, 0)
