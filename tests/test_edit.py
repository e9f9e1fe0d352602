"""The edit architecture, the pair synthesis and the edit task function (archs/edit.py, edit_pairs.py, edit.py)."""

import math
import sys

import pytest
import torch

from models import masks, weights
from models.archs.edit import INSTRUCTIONS, EditConfig, EditGenerator, condition_vector, network_input
from models.edit import edit, parse_colour, paste
from models.edit import pairs as edit_pairs
from models.edit.evaluate import BASELINES, make_eval_pairs, rgb_to_hsv

pytestmark = pytest.mark.unit

TINY = EditConfig(base_channels=4, downsamplings=2, blocks=2, embed_dim=4)


def _perturbed(config=TINY, seed=0):
    """A generator whose FiLM and head are not at their (neutral) initial values."""
    torch.manual_seed(seed)
    module = EditGenerator(config)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return module.eval()


def _model(config=TINY, seed=0):
    return weights.LoadedModel(_perturbed(config, seed), "edit", config, "edit")


def _photo(h=48, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([x, y, 1 - x * y])[None]
    return (0.7 * base + 0.3 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


# --------------------------------------------------------------------------------------------------
# architecture


def test_generator_shapes_and_config_checks():
    module = _perturbed()
    x = network_input(TINY, torch.rand(2, 3, 32, 48) * 2 - 1, torch.zeros(2, 1, 32, 48),
                      condition_vector(TINY, ["remove", "relight"]), ["remove", "relight"])
    assert x.shape == (2, TINY.in_channels, 32, 48) and TINY.in_channels == 4 + len(INSTRUCTIONS) + 4
    assert module(x).shape == (2, 3, 32, 48)
    with pytest.raises(ValueError, match="multiples of 4, got 30x48"):
        module(x[..., :30, :])
    with pytest.raises(ValueError, match=r"expects \[B, 13, H, W\]"):
        module(x[:, :5])
    with pytest.raises(ValueError, match="instructions must be"):
        EditConfig(instructions=("remove", "sharpen"))
    with pytest.raises(ValueError, match="trained for \\['relight'\\], not 'remove'"):
        EditConfig(instructions=("relight",)).index("remove")


def test_film_conditions_the_output_on_the_instruction_colour_and_amount():
    module = _perturbed()
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1

    def run(name, colour=None, amount=0.0):
        cond = condition_vector(TINY, [name], colour, torch.tensor([amount]))
        with torch.no_grad():
            return module(network_input(TINY, image, mask, cond, [name]))

    outs = {name: run(name) for name in ("recolour", "relight", "harmonise_paste")}
    assert (outs["recolour"] - outs["relight"]).abs().mean() > 1e-3
    assert (outs["relight"] - outs["harmonise_paste"]).abs().mean() > 1e-3
    red, blue = run("recolour", torch.tensor([[1.0, 0, 0]])), run("recolour", torch.tensor([[0, 0, 1.0]]))
    assert (red - blue).abs().mean() > 1e-3
    assert (run("relight", amount=0.8) - run("relight", amount=-0.8)).abs().mean() > 1e-3
    # and the FiLM path alone (not only the first conv) carries the instruction
    x = network_input(TINY, image, mask, condition_vector(TINY, ["relight"]), ["relight"])
    with torch.no_grad():
        film_a = module.film(torch.cat([module.embed(x[:, 4:9].mean((-2, -1))), x[:, 9:].mean((-2, -1))], 1))
        x2 = network_input(TINY, image, mask, condition_vector(TINY, ["remove"]), ["remove"])
        film_b = module.film(torch.cat([module.embed(x2[:, 4:9].mean((-2, -1))), x2[:, 9:].mean((-2, -1))], 1))
    assert (film_a - film_b).abs().max() > 1e-3


def test_untrained_film_is_neutral_and_head_is_residual():
    torch.manual_seed(0)
    module = EditGenerator(TINY).eval()
    assert all(float(p.detach().abs().max()) == 0 for p in module.film[-1].parameters())
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    x = network_input(TINY, image, torch.zeros(1, 1, 16, 16), condition_vector(TINY, ["relight"]), ["relight"])
    with torch.no_grad():
        assert (module(x) - image).abs().mean() < 0.1  # the image plus a small initial change


def test_remove_blanks_the_region_in_the_network_input():
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    x = network_input(TINY, image, mask, condition_vector(TINY, ["remove", "relight"]), ["remove", "relight"])
    assert torch.equal(x[0, :3, 2:6, 2:6], torch.zeros(3, 4, 4))
    assert torch.equal(x[1, :3], image[1]) and torch.equal(x[0, :3, 0], image[0, :, 0])


# --------------------------------------------------------------------------------------------------
# pair synthesis


def _pair(name, seed=3, kind="blobs"):
    g = torch.Generator().manual_seed(seed)
    mask = edit_pairs.draw_masks(1, 64, (kind,), g)
    return edit_pairs.make_pair(name, _photo(64, 64), mask, g)


@pytest.mark.parametrize("name", INSTRUCTIONS)
def test_pairs_are_deterministic_and_touch_only_their_side_of_the_mask(name):
    a, b, c = _pair(name), _pair(name), _pair(name, seed=4)
    assert torch.equal(a.input, b.input) and torch.equal(a.target, b.target) and a.amount == b.amount
    assert not torch.equal(a.target, c.target) or not torch.equal(a.mask, c.mask)
    outside = (a.mask == 0).expand_as(a.input)
    inside = (a.mask == 1).expand_as(a.input)
    assert bool(inside.any()) and bool(outside.any())
    if name == "blur_background":
        assert torch.equal(a.input[inside], a.target[inside])
        assert (a.input[outside] - a.target[outside]).abs().mean() > 0.005
    else:
        assert torch.equal(a.input[outside], a.target[outside])
        assert (a.input[inside] - a.target[inside]).abs().mean() > 0.005


def test_recolour_target_takes_the_requested_hue_and_keeps_shading():
    image = _photo(64, 64)
    image[..., 16:48, 16:48] = torch.tensor([0.8, 0.3, 0.2]).view(1, 3, 1, 1) * torch.linspace(0.6, 1, 32)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 12:52, 12:52] = 1  # rough: a band of background inside the mask too
    blue = torch.tensor([[0.15, 0.35, 0.85]])
    out = edit_pairs.recolour_transform(image, mask, blue)
    hue = rgb_to_hsv(out)[0, 0, 20:44, 20:44]
    want = float(rgb_to_hsv(blue.view(1, 3, 1, 1))[0, 0, 0, 0])
    assert (hue - want).abs().max() < 0.03
    lab_in, lab_out = edit_pairs.rgb_to_oklab(image), edit_pairs.rgb_to_oklab(out)
    shading_in = lab_in[0, 0, 20:44, 40] - lab_in[0, 0, 20:44, 20]
    shading_out = lab_out[0, 0, 20:44, 40] - lab_out[0, 0, 20:44, 20]
    assert bool((shading_out > 0.7 * shading_in).all()) and bool((shading_out < 1.3 * shading_in).all())
    # the differently coloured background inside the rough mask stays (almost) as it was
    assert (out[..., 12:15, 12:52] - image[..., 12:15, 12:52]).abs().mean() < 0.01
    assert torch.equal(out[..., :12, :], image[..., :12, :])


def test_relight_brightens_and_darkens_with_a_soft_falloff():
    image = torch.full((1, 3, 64, 64), 0.4)
    mask = masks.box_mask(64, 64, 1, 8, 8, 48, 48)
    up, down = edit_pairs.relight_transform(image, mask, 0.8), edit_pairs.relight_transform(image, mask, -0.8)
    assert float(up[0, 0, 32, 32]) > 0.5 and float(down[0, 0, 32, 32]) < 0.3
    assert abs(float(up[0, 0, 8, 32]) - 0.4) < 0.2 * abs(float(up[0, 0, 32, 32]) - 0.4)  # soft at the edge
    assert torch.equal(up[..., :8, :], image[..., :8, :])
    assert float(edit_pairs.relight_transform(torch.ones(1, 3, 64, 64), mask, 1.0).max()) <= 1.0


def test_blur_background_has_no_subject_halo():
    image = torch.zeros(1, 3, 64, 64)
    image[..., 24:40, 24:40] = 1.0  # a white subject on black
    mask = masks.box_mask(64, 64, 1, 24, 24, 16, 16)
    out = edit_pairs.blur_background_transform(image, mask, 1.0)
    assert torch.equal(out[..., 24:40, 24:40], image[..., 24:40, 24:40])
    assert float(out[..., :, :16].max()) < 1e-3  # the black background stays black: no white halo
    naive = BASELINES["blur_background"][1](edit_pairs.EditPair("blur_background", image, image, mask, None, 1.0))
    assert float(naive[..., 16:24, 24:40].mean()) > 0.02  # a plain blur bleeds the subject


def test_eval_pairs_do_not_depend_on_the_number_of_images():
    images = [(_photo(70, 90, seed=i) * 255).byte()[0] for i in range(3)]
    a = make_eval_pairs(images, "relight", size=32)
    b = make_eval_pairs(images[:2], "relight", size=32)
    assert torch.equal(a[1].target, b[1].target) and a[1].amount == b[1].amount


# --------------------------------------------------------------------------------------------------
# models/edit.py


@pytest.mark.parametrize("name", INSTRUCTIONS)
def test_edit_keeps_the_untouched_side_bit_exact(name):
    model = _model()
    image = _photo(50, 70)
    mask = masks.box_mask(50, 70, 1, 10, 20, 20, 25)
    out = edit(model, image, mask, name, colour="#2050E0", amount=0.6)
    assert out.shape == image.shape and out.dtype == torch.float32
    inside = (mask == 1).expand_as(image)
    if name == "blur_background":
        assert torch.equal(out[inside], image[inside]) and not torch.equal(out[~inside], image[~inside])
    else:
        assert torch.equal(out[~inside], image[~inside]) and not torch.equal(out[inside], image[inside])
    assert torch.equal(edit(model, image, mask, name, colour="#2050E0", amount=0.6, strength=0.0), image)


def test_strength_and_soft_masks_blend_linearly():
    model = _model()
    image = _photo(32, 32)
    mask = masks.box_mask(32, 32, 1, 8, 8, 16, 16)
    full = edit(model, image, mask, "relight", amount=0.5)
    half = edit(model, image, mask, "relight", amount=0.5, strength=0.5)
    assert torch.allclose(half, 0.5 * (full + image), atol=1e-6)


def test_remove_with_an_inpainter_is_that_inpainters_fill_blended_by_mask_and_strength():
    from models import inpaint
    from models.archs.context_encoder import AnyMaskConfig, AnyMaskContextEncoder

    config = AnyMaskConfig(base_channels=4, downsamplings=2, bottleneck_blocks=1)
    torch.manual_seed(1)
    inpainter = weights.LoadedModel(AnyMaskContextEncoder(config).eval(), "context_encoder_anymask", config, "inpaint")
    image, mask = _photo(), torch.zeros(1, 1, 48, 64)
    mask[..., 10:30, 20:44] = 1.0
    mask[..., 30:34, 20:44] = 0.5  # a soft edge
    filled = inpaint.inpaint(inpainter, image, mask, context=0.3, working_size=32)
    out = edit(_model(), image, mask, "remove", inpainter=inpainter, context=0.3, working_size=32)
    assert torch.equal(out, filled)
    half = edit(_model(), image, mask, "remove", inpainter=inpainter, context=0.3, working_size=32, strength=0.5)
    assert torch.allclose(half, image + 0.5 * (filled - image), atol=1e-6)
    assert torch.equal(half[..., :10, :], image[..., :10, :])
    # without an inpainter the edit network fills the region: a different result
    assert not torch.allclose(edit(_model(), image, mask, "remove", context=0.3, working_size=32), filled, atol=1e-3)


def test_match_to_ring_moves_the_region_onto_its_context_statistics():
    from models.colour import match_to_ring

    image = _photo(64, 64)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 20:40, 16:44] = 1.0
    perturbed = image * (1 - mask) + (image * 0.6 + 0.3) * mask
    out = match_to_ring(perturbed, mask)
    assert torch.equal(out[..., :16, :], perturbed[..., :16, :])  # outside the region: untouched
    ring = masks.grow(mask, 4) - mask
    region_mean = (out * mask).sum(dim=(-2, -1)) / mask.sum()
    ring_mean = (perturbed * ring).sum(dim=(-2, -1)) / ring.sum()
    assert torch.allclose(region_mean, ring_mean, atol=0.02)
    assert torch.equal(match_to_ring(image, torch.zeros_like(mask)), image)  # no region: nothing to do


def test_harmonise_transfer_models_see_the_transferred_region():
    from models.colour import match_to_ring

    config = EditConfig(base_channels=4, downsamplings=2, blocks=1, embed_dim=4, harmonise_transfer=True)
    model = weights.LoadedModel(_perturbed(TINY).eval(), "edit", config, "edit")  # the same tensors
    plain = weights.LoadedModel(model.module, "edit", TINY, "edit")
    image, mask = _photo(64, 64), torch.zeros(1, 1, 64, 64)
    mask[..., 20:40, 16:44] = 1.0
    pasted = image * (1 - mask) + (image * 0.5 + 0.4) * mask
    # the transfer happens before the network: the transferring model on the pasted image is the plain one on
    # the image whose region was transferred (the window holds the whole ring, so the statistics agree)
    want = edit(plain, match_to_ring(pasted, mask), mask, "harmonise_paste", working_size=None)
    got = edit(model, pasted, mask, "harmonise_paste", working_size=None)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(edit(plain, pasted, mask, "harmonise_paste", working_size=None), want, atol=1e-3)


def test_evaluation_scores_st_lpips_over_the_region_box():
    from models.edit.evaluate import evaluate_edits, untouched

    seen = []

    def distance(a, b):  # records what it is given; the real one is models.perceptual.stlpips
        seen.append(a.shape[-2:])
        return (a - b).abs().mean(dim=(1, 2, 3))

    images = [(_photo(64, 64)[0] * 255).to(torch.uint8)] * 2
    rows = evaluate_edits({"harmonise_paste": {"input": untouched, "mean/std": BASELINES["harmonise_paste"][1]},
                           "blur_background": {"input": untouched}}, images, size=64, perceptual=distance)
    assert [r.method for r in rows] == ["input", "mean/std", "input"]
    assert all(r.stlpips_region is not None for r in rows)
    assert rows[1].stlpips_region < rows[0].stlpips_region
    assert all(32 <= min(s) and max(s) <= 64 for s in seen[:4]) and all(tuple(s) == (64, 64) for s in seen[-2:])


def test_large_images_are_processed_at_the_working_size_but_keep_their_detail():
    model = _model()
    image = _photo(200, 260)
    mask = masks.box_mask(200, 260, 1, 20, 20, 150, 200)
    out = edit(model, image, mask, "relight", amount=0.5, working_size=64)
    native = edit(model, image, mask, "relight", amount=0.5, working_size=None)
    assert out.shape == image.shape and torch.equal(out[..., :20, :], image[..., :20, :])
    # detail is kept: the high frequencies of the input survive in the edited region
    def detail(t):
        return (t[..., 40:150, 40:200] - torch.nn.functional.avg_pool2d(t, 3, 1, 1)[..., 40:150, 40:200]).abs().mean()
    assert detail(out) > 0.6 * detail(image)
    assert (out - native).abs().mean() < 0.2


def test_edit_errors_say_what_is_wrong():
    model = _model(EditConfig(base_channels=4, downsamplings=2, blocks=1, embed_dim=2, instructions=("relight",)))
    image, mask = _photo(32, 32), torch.ones(1, 1, 32, 32)
    with pytest.raises(ValueError, match="trained for \\['relight'\\], not 'remove'"):
        edit(model, image, mask, "remove")
    with pytest.raises(ValueError, match="unknown instruction 'sharpen'"):
        edit(model, image, mask, "sharpen")
    with pytest.raises(ValueError, match=r"mask size must equal the image size \(32, 32\).*\(16, 16\)"):
        edit(model, image, torch.ones(1, 1, 16, 16), "relight")
    with pytest.raises(ValueError, match="amount for relight must be in \\[-1, 1\\]"):
        edit(model, image, mask, "relight", amount=2.0)
    with pytest.raises(ValueError, match="recolour needs a target colour"):
        edit(_model(), image, mask, "recolour")
    with pytest.raises(ValueError, match="hex string"):
        parse_colour("#12345")
    assert torch.allclose(parse_colour("#FF8000"), torch.tensor([1.0, 128 / 255, 0.0]))
    assert torch.allclose(parse_colour("f80"), torch.tensor([1.0, 136 / 255, 0.0]))


def test_harmonise_paste_puts_the_reference_into_the_region():
    image = torch.zeros(1, 3, 40, 40)
    mask = masks.box_mask(40, 40, 1, 10, 10, 20, 20)
    reference = torch.ones(1, 3, 20, 20)
    pasted, region = paste(image, mask, reference)
    assert torch.equal(pasted[..., 10:30, 10:30], torch.ones(1, 3, 20, 20)) and torch.equal(region, mask)
    ref_mask = masks.box_mask(20, 20, 1, 5, 5, 10, 10)
    reference = torch.zeros(1, 3, 20, 20)
    reference[..., 5:15, 5:15] = 0.5
    pasted, region = paste(image, mask, reference, ref_mask)
    assert torch.allclose(pasted[..., 12:28, 12:28], torch.full((1, 3, 16, 16), 0.5), atol=1e-5)
    assert float(region.sum()) > 0.8 * 400 and torch.equal(pasted[..., :10, :], image[..., :10, :])
    out = edit(_model(), image, mask, "harmonise_paste", reference=torch.ones(1, 3, 20, 20), strength=0.0)
    assert torch.equal(out[..., 10:30, 10:30], torch.ones(1, 3, 20, 20))  # strength 0 = the plain paste
    assert torch.equal(out[..., :10, :], image[..., :10, :])


def test_round_trip_through_save_and_load(tmp_path):
    module = _perturbed()
    path = weights.save(module, tmp_path / "e.safetensors", "edit", TINY, "edit", {"made_by": "test"})
    loaded = weights.load(path)
    assert loaded.config == TINY and loaded.config.instructions == INSTRUCTIONS
    image, mask = _photo(32, 32), masks.box_mask(32, 32, 1, 8, 8, 12, 12)
    a = edit(loaded, image, mask, "recolour", colour=(0.1, 0.9, 0.2))
    b = edit(weights.LoadedModel(module, "edit", TINY, "edit"), image, mask, "recolour", colour=(0.1, 0.9, 0.2))
    assert torch.equal(a, b) and not math.isnan(float(a.sum()))


def test_baselines_move_towards_the_target_and_telea_needs_opencv(monkeypatch):
    for name in ("recolour", "relight", "harmonise_paste", "remove"):
        pair = _pair(name)
        label, method = BASELINES[name]
        out = method(pair)
        outside = (pair.mask == 0).expand_as(out)
        assert torch.equal(out[outside], pair.input[outside]), label
        if name == "recolour":  # the hue of every coloured pixel in the region is the colour's
            hsv = rgb_to_hsv(out)
            coloured = (pair.mask[:, 0] > 0) & (hsv[:, 1] > 0.1)
            want = float(rgb_to_hsv(pair.colour.view(1, 3, 1, 1))[0, 0, 0, 0])
            assert (hsv[:, 0][coloured] - want).abs().max() < 0.01
        else:
            assert (out - pair.target).abs().mean() < (pair.input - pair.target).abs().mean(), label
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now fails as if OpenCV were missing
    with pytest.raises(RuntimeError, match="pip install opencv-python-headless"):
        BASELINES["remove"][1](_pair("remove"))


def test_parameters_an_instruction_does_not_use_are_ignored():
    """The edit node passes every widget; amount, colour and reference matter only where they are used."""
    model, image = _model(), _photo()
    mask = torch.zeros(1, 1, 48, 64)
    mask[..., 10:30, 20:40] = 1
    plain = edit(model, image, mask, "recolour", colour="#ff8000")
    noisy = edit(model, image, mask, "recolour", colour="#ff8000", amount=-5.0, reference=torch.rand(1, 3, 9, 9))
    assert torch.equal(plain, noisy)
    assert torch.equal(edit(model, image, mask, "remove", colour="#zzz"), edit(model, image, mask, "remove"))
    with pytest.raises(ValueError, match=r"amount for blur_background must be in \[0, 1\]"):
        edit(model, image, mask, "blur_background", amount=-0.5)
