"""The inpainting task function: compositing, range conversion, per-item crops, input checks."""


import pytest
import torch
from reference import FIXTURES
from safetensors.torch import load_file

from models import masks, weights
from models.archs.context_encoder import AnyMaskConfig, AnyMaskContextEncoder
from models.inpaint import inpaint
from models.weights import LoadedModel

pytestmark = pytest.mark.unit


TINY = AnyMaskConfig(base_channels=4, downsamplings=2, bottleneck_blocks=1, norm="batch")


def _anymask(seed: int = 0, config: AnyMaskConfig = TINY) -> LoadedModel:
    torch.manual_seed(seed)
    return LoadedModel(AnyMaskContextEncoder(config).eval(), "context_encoder_anymask", config, "inpaint")


def _constant_model(rgb: tuple[float, float, float]) -> LoadedModel:
    """An any-mask model whose output is exactly tanh(atanh(2c - 1)) = 2c - 1 everywhere."""
    model = _anymask()
    last = model.module.decoder[-2]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.atanh(torch.tensor(rgb) * 2 - 1))
    return model


def _paper() -> LoadedModel:
    return weights.load(FIXTURES / "context_encoder_netG.pth")


def _image(b: int = 1, h: int = 64, w: int = 80, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_pixels_outside_the_mask_are_exactly_kept():
    image = _image(2, 72, 90)
    mask = masks.irregular(72, 90, 2, seed=3)
    out = inpaint(_anymask(), image, mask)
    keep = (mask == 0).expand_as(image)
    assert torch.equal(out[keep], image[keep])
    hole = (mask == 1).expand_as(image)
    assert (out[hole] - image[hole]).abs().mean() > 0.05


def test_output_shape_range_and_dtype():
    image = _image(3, 40, 56)
    out = inpaint(_anymask(), image, masks.box_mask(40, 56, 3, 5, 7, 20, 30))
    assert out.shape == image.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


def test_constant_model_fills_exactly_its_colour_inside_the_hole():
    rgb = (0.2, 0.55, 0.9)
    image = _image(1, 64, 64)
    mask = masks.box_mask(64, 64, 1, 10, 20, 17, 23)
    out = inpaint(_constant_model(rgb), image, mask)
    inside = out[0][:, mask[0, 0] == 1]
    expected = torch.tensor(rgb).view(3, 1).expand_as(inside)
    assert torch.allclose(inside, expected, atol=1e-6)
    assert torch.equal(out[0][:, mask[0, 0] == 0], image[0][:, mask[0, 0] == 0])


def test_a_single_mask_is_used_for_every_image():
    image = _image(3, 48, 48)
    mask = masks.box_mask(48, 48, 1, 8, 8, 20, 16)
    model = _anymask()
    out = inpaint(model, image, mask)
    for i in range(3):
        assert torch.equal(out[i : i + 1], inpaint(model, image[i : i + 1], mask))
    assert not torch.equal(out[0], image[0]) and not torch.equal(out[2], image[2])


def test_an_empty_mask_item_returns_its_image_unchanged():
    image = _image(2, 48, 48)
    mask = torch.zeros(2, 1, 48, 48)
    mask[1, :, 10:20, 10:30] = 1
    calls = []
    out = inpaint(_anymask(), image, mask, progress=lambda i, n: calls.append((i, n)))
    assert torch.equal(out[0], image[0])
    assert not torch.equal(out[1], image[1])
    assert calls == [(1, 2), (2, 2)]
    assert torch.equal(inpaint(_anymask(), image, torch.zeros(1, 1, 48, 48)), image)


def test_what_is_under_the_hole_does_not_matter():
    image = _image(1, 48, 64)
    mask = masks.box_mask(48, 64, 1, 10, 12, 20, 30)
    scribbled = torch.where(mask.bool(), torch.rand_like(image), image)
    assert not torch.equal(scribbled, image)
    model = _anymask()
    assert torch.equal(inpaint(model, scribbled, mask), inpaint(model, image, mask))


def test_full_mask_works_for_the_anymask_model():
    rgb = (0.7, 0.1, 0.4)
    out = inpaint(_constant_model(rgb), _image(1, 40, 24), torch.ones(1, 1, 40, 24))
    assert torch.allclose(out, torch.tensor(rgb).view(1, 3, 1, 1).expand_as(out), atol=1e-6)


def test_full_mask_is_refused_for_the_paper_model():
    mask = torch.ones(2, 1, 64, 64)
    mask[0, :, :4, :4] = 0  # item 0 has a little context, item 1 none
    calls = []
    with pytest.raises(ValueError, match="mask item 1 covers the whole image.*context_encoder_anymask"):
        inpaint(_paper(), _image(2, 64, 64), mask, progress=lambda i, n: calls.append(i))
    assert calls == []  # refused before any work


def _bad(image: torch.Tensor, mask: torch.Tensor) -> None:
    inpaint(_anymask(), image, mask)


@pytest.mark.parametrize(
    "image, mask, message",
    [
        (_image(1, 32, 32), torch.zeros(1, 1, 32, 40), r"mask size must equal the image size \(32, 32\).*\(32, 40\)"),
        (_image(3, 32, 32), torch.zeros(2, 1, 32, 32), r"mask batch must be 1 or equal the image batch 3.*\(2, 1, 32"),
        (_image(1, 32, 32) * float("nan"), torch.zeros(1, 1, 32, 32), "image contains NaN or infinite values"),
        (_image(1, 32, 32) + 1, torch.zeros(1, 1, 32, 32), r"image values must lie in \[0, 1\], got min 1"),
        (_image(1, 32, 32), torch.zeros(32, 32), r"mask must have shape \[B, 1, H, W\], got shape \(32, 32\)"),
        (_image(1, 32, 32), torch.full((1, 1, 32, 32), 2.0), r"mask values must lie in \[0, 1\], got min 2, max 2"),
        (torch.rand(1, 4, 32, 32), torch.zeros(1, 1, 32, 32), r"image must have 3 channels.*\(1, 4, 32, 32\)"),
    ],
    ids=["size", "batch", "nan", "above-1", "2d-mask", "mask-range", "rgba"],
)
def test_bad_inputs_say_what_was_expected(image, mask, message):
    with pytest.raises(ValueError, match=message):
        _bad(image, mask)


def test_bad_options_and_wrong_model_are_refused():
    image, mask = _image(1, 32, 32), torch.zeros(1, 1, 32, 32)
    with pytest.raises(ValueError, match="feather must be an int >= 0"):
        inpaint(_anymask(), image, mask, feather=-1)
    with pytest.raises(ValueError, match=r"context must be in \[0, 4\]"):
        inpaint(_anymask(), image, mask, context=10.0)
    wrong = LoadedModel(torch.nn.Conv2d(6, 1, 4), "patchgan", None, "discriminate")
    with pytest.raises(ValueError, match="needs a 'context_encoder', 'context_encoder_anymask' or public "
                       "inpainting model.*'patchgan'"):
        inpaint(wrong, image, mask)


def test_feather_blends_a_band_outside_and_replaces_the_hole():
    rgb = (0.0, 1.0, 0.5)
    image = torch.zeros(1, 3, 64, 64)
    mask = masks.box_mask(64, 64, 1, 24, 24, 16, 16)
    out = inpaint(_constant_model(rgb), image, mask, feather=4)
    colour = torch.tensor(rgb).view(3, 1, 1)
    assert torch.allclose(out[0, :, 24:40, 24:40], colour.expand(3, 16, 16), atol=1e-6)
    assert 0 < out[0, 1, 22, 30] < 1  # 2 px outside: blended
    assert torch.equal(out[0, :, :19, :], image[0, :, :19, :])  # more than 4 px away: untouched
    assert torch.equal(out[0, :, 45:, :], image[0, :, 45:, :])


def test_dtype_and_mode_are_only_for_the_computation():
    model = _anymask()
    model.module.train()
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    image, mask = _image(1, 32, 32), masks.box_mask(32, 32, 1, 8, 8, 12, 12)
    ref = inpaint(model, image, mask)
    out = inpaint(model, image, mask, dtype=torch.bfloat16, device="cpu")
    assert out.dtype == torch.float32 and out.device == image.device
    assert (out - ref).abs().max() < 0.1
    assert model.module.training
    after = model.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no cast, and no BatchNorm stat updates


def test_paper_model_reproduces_the_ports_centre_fill():
    """A 54 px hole centred in a 128 image maps the window 1:1 onto the port's 128 input."""
    io = load_file(FIXTURES / "context_encoder_netG.io.safetensors")
    image = (io["input"] + 1) / 2  # the fixture input: the mean colour sits in [36:92]
    mask = masks.box_mask(128, 128, 1, 37, 37, 54, 54)
    image[:, :, 37:91, 37:91] = torch.rand(1, 3, 54, 54)  # what is under the hole must not matter
    out = inpaint(_paper(), image, mask)
    expected = ((io["output"] + 1) / 2).clamp(0, 1)[:, :, 5:59, 5:59]
    assert (out[:, :, 37:91, 37:91] - expected).abs().max().item() <= 1e-5
    keep = (mask == 0).expand_as(image)
    assert torch.equal(out[keep], image[keep])


def test_paper_model_hole_at_the_border_changes_only_the_hole():
    image = _image(2, 100, 140)
    mask = torch.zeros(2, 1, 100, 140)
    mask[0, :, 0:25, 2:40] = 1  # top-left corner: the window reaches far outside the image
    mask[1, :, 70:100, 120:140] = 1  # bottom-right, touching two borders
    out = inpaint(_paper(), image, mask)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    keep = (mask == 0).expand_as(image)
    assert torch.equal(out[keep], image[keep])
    hole = (mask == 1).expand_as(image)
    assert (out[hole] - image[hole]).abs().mean() > 0.05


def test_colour_match_moves_the_fill_onto_the_surrounding_colour():
    image = torch.full((1, 3, 64, 64), 0.3)
    image[:, 1] = 0.6
    mask = masks.box_mask(64, 64, 1, 20, 20, 24, 24)
    plain = inpaint(_constant_model((0.8, 0.1, 0.5)), image, mask)
    matched = inpaint(_constant_model((0.8, 0.1, 0.5)), image, mask, colour_match=True)
    hole = mask[0, 0] == 1
    assert torch.allclose(plain[0][:, hole].mean(1), torch.tensor([0.8, 0.1, 0.5]), atol=1e-5)
    assert torch.allclose(matched[0][:, hole].mean(1), torch.tensor([0.3, 0.6, 0.3]), atol=1e-5)
    assert torch.equal(matched[0][:, ~hole], image[0][:, ~hole])


def test_working_size_downscales_big_crops_but_keeps_known_pixels():
    image = _image(1, 160, 160)
    mask = masks.box_mask(160, 160, 1, 40, 40, 80, 80)
    model = _anymask()
    calls = []
    model.module.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape[-2:])))
    small = inpaint(model, image, mask, working_size=64)
    full = inpaint(model, image, mask, working_size=None)
    assert max(calls[0]) <= 64 and calls[1] == (160, 160)
    keep = (mask == 0).expand_as(image)
    assert torch.equal(small[keep], image[keep]) and not torch.equal(small, full)
    with pytest.raises(ValueError, match=r"working_size must be in \[32, 8192\] px"):
        inpaint(model, image, mask, working_size=8)


def _striped(h: int = 96, w: int = 96) -> torch.Tensor:
    """Vertical stripes, 2 px on / 2 px off: all of the picture's detail is fine detail."""
    on = ((torch.arange(w) // 2) % 2).float().expand(h, w)
    return torch.stack([0.2 + 0.6 * on, 0.5 + 0.3 * on, 0.7 - 0.4 * on])[None]


def test_texture_adds_the_copied_fine_detail_inside_the_hole_only():
    image = _striped()
    mask = masks.box_mask(96, 96, 1, 30, 30, 36, 36)
    flat = _constant_model((0.5, 0.5, 0.5))
    plain = inpaint(flat, image, mask)
    assert torch.equal(inpaint(flat, image, mask, texture=0.0), plain)
    textured = inpaint(flat, image, mask, texture=1.0)
    keep = (mask == 0).expand_as(image)
    assert torch.equal(textured[keep], image[keep])
    hole = (mask == 1)[0, 0]

    def stripes(x):  # mean absolute horizontal step inside the hole
        return (x[0, :, :, 1:] - x[0, :, :, :-1]).abs()[:, hole[:, 1:] & hole[:, :-1]].mean()

    assert stripes(plain) < 1e-6 < 0.5 * stripes(image) < stripes(textured)
    half = inpaint(flat, image, mask, texture=0.5)
    assert float(stripes(plain)) < float(stripes(half)) < float(stripes(textured))


def test_texture_with_a_mask_over_everything_keeps_the_models_fill():
    image, mask = _image(1, 48, 48), torch.ones(1, 1, 48, 48)
    model = _anymask()
    assert torch.equal(inpaint(model, image, mask, texture=1.0), inpaint(model, image, mask))
    with pytest.raises(ValueError, match="texture"):
        inpaint(model, image, mask, texture=1.5)
