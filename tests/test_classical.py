"""Classical fills (`models.inpaint.classical`) and colour transfer (`models.colour.match_colours`)."""

from __future__ import annotations

import pytest
import torch

from models import colour, masks
from models.inpaint import classical

pytestmark = pytest.mark.unit


def ramp(h: int = 48, w: int = 64) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([0.1 + 0.8 * x, 0.2 + 0.6 * y, 0.5 + 0.2 * x - 0.3 * y])[None]


def noisy(b: int = 1, h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def box(h: int = 48, w: int = 64, top: int = 10, left: int = 14, bh: int = 24, bw: int = 30) -> torch.Tensor:
    return masks.box_mask(h, w, 1, top, left, bh, bw)


def test_harmonic_fill_reproduces_a_linear_ramp() -> None:
    image, mask = ramp(), box()
    out = classical.fill(image, mask, "harmonic")
    hole = mask.expand_as(image) > 0.5
    assert float((out - image)[hole].abs().max()) < 1e-3
    assert float((classical.fill(image, mask, "mean") - image)[hole].abs().max()) > 0.1  # a ramp is not its mean


@pytest.mark.parametrize("size", [512, 1024])
def test_harmonic_fill_converges_on_a_box_whose_edges_fall_on_every_coarse_grid(size: int) -> None:
    # A hole from size/4 to 3 size/4 lines up with the cells of every coarse level (a speck at the
    # corner makes the solve's box the whole image); plain V-cycles over-correct there and diverge.
    # x^2 - y^2 (plus ramps) is harmonic for the 5-point stencil too: the exact fill is the image.
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    saddle = 0.5 + 0.2 * (x * x - y * y)
    image = torch.stack([saddle, 0.5 + 0.3 * x, 0.5 - 0.1 * (x * x - y * y) + 0.2 * y])[None]
    mask = masks.box_mask(size, size, 1, size // 4, size // 4, size // 2, size // 2)
    mask = torch.maximum(mask, masks.box_mask(size, size, 1, 1, 1, 2, 2))
    out = classical.fill(image, mask, "harmonic")
    assert float((out - image).abs().max()) < 2e-3


def test_harmonic_fill_of_a_hole_on_the_border_reflects_there() -> None:
    image = ramp()[:, :, :1].expand(-1, -1, 48, -1).clone()  # varies along x only
    image[:, 1] = 1.0 - image[:, 0]
    mask = box(top=0, left=20, bh=30, bw=20)  # touches the top edge: no value there, a mirror instead
    out = classical.fill(image, mask, "harmonic")
    assert float((out - image).abs().max()) < 1e-3


def test_mean_fill_is_the_mean_of_the_known_pixels() -> None:
    image, mask = noisy(), box()
    out = classical.fill(image, mask, "mean")
    known = (mask <= 0.5).expand_as(image)
    expected = image[known].view(3, -1).mean(dim=1)
    hole = ~known
    assert torch.allclose(out[hole].view(3, -1), expected[:, None].expand(3, int(hole.sum()) // 3), atol=1e-6)


def test_blur_fill_is_bounded_and_smooth() -> None:
    image, mask = noisy(), box()
    out = classical.fill(image, mask, "blur")
    hole = mask[0, 0] > 0.5
    inside = out[0][:, hole]
    assert inside.min() >= 0 and inside.max() <= 1
    # much smoother inside than the noise it is filled from: neighbour steps far below the noise's
    core = out[0, :, 14:30, 18:40]
    step = (core[:, 1:] - core[:, :-1]).abs().mean()
    noise_step = (image[0, :, 1:] - image[0, :, :-1]).abs().mean()
    assert step < 0.1 * noise_step


def test_a_big_hole_fills_and_the_rest_is_kept_bit_for_bit() -> None:
    image = noisy(h=96, w=96)
    mask = masks.box_mask(96, 96, 1, 2, 2, 92, 90)
    for method in classical.METHODS:
        out = classical.fill(image, mask, method)
        keep = (mask <= 0.5).expand_as(image)
        assert torch.equal(out[keep], image[keep]), method
        assert bool(torch.isfinite(out).all()) and out.min() >= 0 and out.max() <= 1


def checkerboard_texture(h: int = 96, w: int = 96, period: int = 8) -> torch.Tensor:
    """A two-colour pattern that repeats every `period` px: a hole in it has one right answer."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    on = (((y // (period // 2)) + (x // (period // 2))) % 2).float()
    return torch.stack([0.2 + 0.6 * on, 0.7 - 0.5 * on, 0.4 + 0.1 * on])[None]


def test_patch_fill_continues_a_repeating_texture_that_diffusion_blurs() -> None:
    image = checkerboard_texture()
    mask = masks.box_mask(96, 96, 1, 32, 28, 30, 36)
    hole = mask.expand_as(image) > 0.5
    patch = classical.fill(image, mask, "patch")
    harmonic = classical.fill(image, mask, "harmonic")
    patch_error = (patch - image)[hole].abs().mean()
    harmonic_error = (harmonic - image)[hole].abs().mean()
    assert patch_error < 0.05 < harmonic_error  # the copy is the pattern (up to its phase at a few pixels)
    assert torch.equal(classical.fill(image, mask, "patch"), patch)  # deterministic


def test_patch_fill_of_a_huge_hole_and_a_tiny_image_still_fills() -> None:
    small = noisy(h=20, w=24)
    mask = masks.box_mask(20, 24, 1, 1, 1, 18, 22)  # a 1 px known frame: no fully known patch at all
    out = classical.fill(small, mask, "patch")
    keep = (mask <= 0.5).expand_as(small)
    assert torch.equal(out[keep], small[keep]) and bool(torch.isfinite(out).all())
    assert not torch.equal(out, small)


def test_soft_mask_values_up_to_one_half_are_kept_and_above_are_filled() -> None:
    image, mask = noisy(), box() * 0.5  # 0.5 everywhere in the box: nothing is a hole
    assert torch.equal(classical.fill(image, mask, "harmonic"), image)
    soft = box() * 0.6
    out = classical.fill(image, soft, "mean")
    assert torch.equal(out, classical.fill(image, box(), "mean"))


def test_batch_one_mask_is_used_for_every_image_and_empty_items_come_back_unchanged() -> None:
    images = noisy(b=3)
    out = classical.fill(images, box(), "blur")
    for i in range(3):
        assert torch.equal(out[i : i + 1], classical.fill(images[i : i + 1], box(), "blur"))
    per_item = torch.cat([box(), torch.zeros_like(box()), box()])
    out = classical.fill(images, per_item, "harmonic")
    assert torch.equal(out[1], images[1]) and not torch.equal(out[0], images[0])


def test_fill_errors_name_what_was_expected() -> None:
    image = noisy()
    with pytest.raises(ValueError, match="mask item 1 covers the whole image"):
        classical.fill(noisy(b=2), torch.cat([box(), torch.ones_like(box())]), "mean")
    with pytest.raises(ValueError, match=r"method must be one of mean, blur, harmonic, patch, got 'telea'"):
        classical.fill(image, box(), "telea")
    with pytest.raises(ValueError, match=r"mask size must equal the image size \(48, 64\)"):
        classical.fill(image, box(32, 32, 1, 1, 4, 4), "mean")
    with pytest.raises(ValueError, match="image must have 3 channels"):
        classical.fill(image[:, :1], box(), "mean")


# --------------------------------------------------------------------------------------------
# colour transfer


def stats(t: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    x = t[0].flatten(1)
    if keep is not None:
        x = x[:, keep[0, 0].flatten()]
    return x.mean(dim=1), x.std(dim=1, unbiased=False)


def test_mean_std_takes_the_references_statistics_over_the_kept_pixels() -> None:
    image = 0.3 + 0.3 * noisy()
    reference = 0.2 + 0.4 * noisy(h=30, w=40, seed=1)
    exclude = box()
    out = colour.match_colours(image, reference, "mean_std", exclude=exclude)
    mean, std = stats(out, exclude <= 0.5)
    ref_mean, ref_std = stats(reference)
    assert torch.allclose(mean, ref_mean, atol=1e-5) and torch.allclose(std, ref_std, atol=1e-5)


def test_excluded_pixels_do_not_change_the_result_elsewhere() -> None:
    image, reference, exclude = noisy(), noisy(seed=1), box()
    changed = image.clone()
    changed[..., 10:34, 14:44] = 1.0  # the excluded box
    keep = (exclude <= 0.5).expand_as(image)
    for method in colour.TRANSFER_METHODS:
        a = colour.match_colours(image, reference, method, exclude=exclude)
        b = colour.match_colours(changed, reference, method, exclude=exclude)
        assert torch.allclose(a[keep], b[keep], atol=1e-6), method
        assert not torch.allclose(a, colour.match_colours(changed, reference, method), atol=1e-3), method
    ref_changed = reference.clone()
    ref_changed[..., 10:34, 14:44] = 0.0
    a = colour.match_colours(image, reference, "histogram", reference_exclude=exclude)
    assert torch.equal(a, colour.match_colours(image, ref_changed, "histogram", reference_exclude=exclude))


def test_histogram_matching_gives_the_references_quantiles() -> None:
    image = noisy() ** 2
    reference = 0.25 + 0.5 * noisy(seed=3)  # same pixel count: the sorted values must match exactly
    out = colour.match_colours(image, reference, "histogram")
    got = out[0].flatten(1).sort(dim=1).values
    want = reference[0].flatten(1).sort(dim=1).values
    assert torch.allclose(got, want, atol=1e-6)
    small = 0.25 + 0.5 * noisy(h=20, w=20, seed=4)
    out = colour.match_colours(image, small, "histogram")
    q = torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(out[0].flatten(1).quantile(q, dim=1), small[0].flatten(1).quantile(q, dim=1), atol=0.01)


def test_reinhard_matches_the_lab_statistics() -> None:
    image = 0.3 + 0.4 * noisy()
    reference = 0.25 + 0.3 * noisy(seed=5) * torch.tensor([1.0, 0.6, 0.3]).view(1, 3, 1, 1)
    out = colour.match_colours(image, reference, "reinhard")
    assert out.min() > 0 and out.max() < 1  # nothing clamped, so the statistics are exact
    mean, std = stats(colour.rgb_to_lab_reinhard(out))
    ref_mean, ref_std = stats(colour.rgb_to_lab_reinhard(reference))
    assert torch.allclose(mean, ref_mean, atol=1e-4) and torch.allclose(std, ref_std, atol=1e-4)
    assert torch.allclose(colour.lab_reinhard_to_rgb(colour.rgb_to_lab_reinhard(image)), image, atol=1e-5)


def test_strength_zero_is_the_identity_and_strength_blends() -> None:
    image, reference = noisy(b=2), noisy(seed=1)
    assert torch.equal(colour.match_colours(image, reference, "histogram", strength=0.0), image)
    full = colour.match_colours(image, reference, "mean_std")
    half = colour.match_colours(image, reference, "mean_std", strength=0.5)
    assert torch.allclose(half, (image + full) / 2, atol=1e-6)


def test_reference_batch_one_or_b_and_clamped_results() -> None:
    images = noisy(b=2)
    refs = torch.cat([noisy(seed=1) * 0.2, 0.8 + 0.2 * noisy(seed=2)])
    out = colour.match_colours(images, refs, "mean_std")
    assert out[0].mean() < 0.2 and out[1].mean() > 0.8 and out.min() >= 0 and out.max() <= 1
    one = colour.match_colours(images, refs[1:], "mean_std")
    assert torch.allclose(one[1], out[1]) and one[0].mean() > 0.8


def test_colour_transfer_errors_name_what_was_expected() -> None:
    image = noisy(b=2)
    with pytest.raises(ValueError, match=r"reference batch must be 1 or equal the image batch 2, got reference shape "
                       r"\(3, 3, 48, 64\)"):
        colour.match_colours(image, noisy(b=3), "mean_std")
    with pytest.raises(ValueError, match="method must be one of mean_std, histogram, reinhard, got 'lab'"):
        colour.match_colours(image, noisy(), "lab")
    with pytest.raises(ValueError, match=r"exclude size must equal the image size \(48, 64\)"):
        colour.match_colours(image, noisy(), "mean_std", exclude=box(32, 32, 1, 1, 4, 4))
    with pytest.raises(ValueError, match="exclude item 0 covers the whole image"):
        colour.match_colours(image, noisy(), "mean_std", exclude=torch.ones(1, 1, 48, 64))
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        colour.match_colours(image, noisy(), "mean_std", strength=1.5)
    with pytest.raises(ValueError, match="reference values must lie in"):
        colour.match_colours(image, noisy() * 2, "mean_std")
