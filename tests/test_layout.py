import pytest
import torch

from models import layout

pytestmark = pytest.mark.unit


def test_image_round_trip_keeps_values_and_moves_channels():
    image = torch.rand(2, 5, 7, 3)
    core = layout.image_to_bchw(image)
    assert core.shape == (2, 3, 5, 7)
    assert torch.equal(core[1, 2], image[1, :, :, 2])
    assert torch.equal(layout.bchw_to_image(core), image)


def test_single_image_without_batch_gets_one():
    assert layout.image_to_bchw(torch.rand(4, 6, 3)).shape == (1, 3, 4, 6)


def test_mask_round_trip_and_2d_mask():
    mask = (torch.rand(3, 4, 5) > 0.5).float()
    core = layout.mask_to_b1hw(mask)
    assert core.shape == (3, 1, 4, 5)
    assert torch.equal(layout.b1hw_to_mask(core), mask)
    assert layout.mask_to_b1hw(torch.ones(4, 5)).shape == (1, 1, 4, 5)


def test_signed_range_round_trip():
    x = torch.linspace(0, 1, 11)
    assert torch.equal(layout.to_signed(x)[[0, 5, 10]], torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(layout.from_signed(layout.to_signed(x)), x)
    assert torch.equal(layout.from_signed(torch.tensor([-3.0, 3.0])), torch.tensor([0.0, 1.0]))


def test_mask_preview_is_grey_rgb():
    m = torch.zeros(1, 1, 2, 2)
    m[0, 0, 0, 0] = 1
    img = layout.mask_to_image(m)
    assert img.shape == (1, 3, 2, 2) and torch.equal(img[0, :, 0, 0], torch.ones(3))


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(1, 4, 4, 2), r"C in \(1, 3, 4\).*\(1, 4, 4, 2\)"),
        (torch.rand(4, 4), r"\[B,H,W,C\].*\(4, 4\)"),
        (torch.rand(1, 0, 4, 3), "IMAGE is empty"),
    ],
)
def test_bad_images_say_what_arrived(bad, match):
    with pytest.raises(ValueError, match=match):
        layout.image_to_bchw(bad)


def test_bad_masks_say_what_arrived():
    with pytest.raises(ValueError, match=r"\[B,H,W\].*\(1, 1, 4, 4\)"):
        layout.mask_to_b1hw(torch.rand(1, 1, 4, 4))
    with pytest.raises(TypeError, match="MASK tensor"):
        layout.mask_to_b1hw([[0.0]])


def test_reflect_indices_mirror_like_reflect_padding_at_any_distance():
    idx = layout.reflect_indices(-3, 10, 4, "cpu")
    assert idx.tolist() == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    padded = torch.nn.functional.pad(torch.arange(5.0).view(1, 1, 5), (2, 2), mode="reflect")[0, 0]
    assert layout.reflect_indices(-2, 9, 5, "cpu").tolist() == padded.long().tolist()
    assert layout.reflect_indices(0, 3, 1, "cpu").tolist() == [0, 0, 0]


def test_validate_mask_for_checks_the_mask_against_its_image():
    image = torch.rand(2, 3, 8, 12)
    for mask in (torch.zeros(1, 1, 8, 12), torch.ones(2, 1, 8, 12)):
        assert layout.validate_mask_for(image, mask) is mask
    with pytest.raises(ValueError, match=r"mask batch must be 1 or equal the image batch 2, got mask shape \(3, "):
        layout.validate_mask_for(image, torch.zeros(3, 1, 8, 12))
    with pytest.raises(ValueError, match=r"mask size must equal the image size \(8, 12\) \(H, W\), got \(8, 8\)"):
        layout.validate_mask_for(image, torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="reference_mask contains NaN"):
        layout.validate_mask_for(image, torch.full((1, 1, 8, 12), float("nan")), name="reference_mask")


def test_ranges_check_values_and_name_them():
    from models.ranges import CONTEXT, WORKING_SIZE

    assert CONTEXT.check("context", 0.5) == 0.5 and WORKING_SIZE.check("working_size", 32) == 32
    for bad in (-0.1, 4.5, True, "1", float("nan")):
        with pytest.raises(ValueError, match=r"context must be in \[0, 4\] \(fraction\), got"):
            CONTEXT.check("context", bad, " (fraction)")


def test_clipped_share_counts_pure_white_colour_values():
    image = torch.zeros(1, 4, 2, 2)
    image[:, :3, 0] = 1.0
    image[:, 3] = 1.0  # alpha does not count
    assert layout.clipped_share(image) == 0.5
    assert layout.clipped_share(torch.full((2, 3, 4, 4), 0.999)) == 0.0


def test_u8_arrays_round_trip_and_round_to_the_nearest_level() -> None:
    import numpy as np

    image = torch.tensor([0.0, 0.5, 1.0, 0.2 / 255, 0.6 / 255, 1.2]).view(1, 1, 2, 3).expand(1, 3, 2, 3)
    array = layout.to_u8(image)
    assert array.shape == (2, 3, 3) and array.dtype == np.uint8
    assert array[..., 0].tolist() == [[0, 128, 255], [0, 1, 255]]  # rounded, clamped
    assert torch.equal(layout.from_u8(array), torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255)
    with pytest.raises(ValueError, match=r"\[1,C,H,W\]"):
        layout.to_u8(torch.zeros(2, 3, 4, 4))
