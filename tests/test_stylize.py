"""Style transfer task functions: fast_style (TransformerNet) and adain_style (AdaIN)."""

from types import SimpleNamespace

import pytest
import torch
from reference import FIXTURES
from safetensors.torch import load_file
from torch import nn

from models import checkpoint, stylize, weights
from models.archs import adain
from models.registry import ARCHITECTURES

pytestmark = pytest.mark.unit

MINE = {"transformer_net", "adain"}


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _ycbcr(rgb):
    """BT.601 full-range YCbCr (JPEG), written out independently of the code under test."""
    m = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    return torch.einsum("ij,bjhw->bihw", m, rgb) + torch.tensor([0.0, 0.5, 0.5]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def style_net():
    return weights.load(FIXTURES / "fast_style_transformernet.pth")


@pytest.fixture(scope="module")
def adain_model():
    return weights.load_adain_pair(FIXTURES / "adain_vgg.pth", FIXTURES / "adain_decoder.pth")


@pytest.fixture(scope="module")
def io():
    return load_file(FIXTURES / "adain_vgg_decoder.io.safetensors")


# --------------------------------------------------------------------------------------------------
# detection across every public fixture


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.pth")) if FIXTURES.is_dir() else [], ids=lambda p: p.name)
def test_each_fixture_is_claimed_by_the_right_family_or_refused(path):
    state = checkpoint.read_foreign(path)
    families = {"fast_style": "transformer_net", "adain": "adain"}
    expected = next((arch for prefix, arch in families.items() if path.name.startswith(prefix)), None)
    try:
        found = ARCHITECTURES.detect(state).id
    except ValueError:
        found = None
    if expected is None:
        assert found not in MINE
    else:
        assert found == expected


# --------------------------------------------------------------------------------------------------
# fast_style


def test_fast_style_reproduces_the_reference_on_the_0_255_scale(style_net):
    io = load_file(FIXTURES / "fast_style_transformernet.io.safetensors")
    out = stylize.fast_style(style_net, io["input"] / 255.0)
    assert out.shape == (1, 3, 64, 64) and out.dtype == torch.float32
    assert (out * 255.0 - io["output"].clamp(0, 255)).abs().max().item() <= 1e-4 * 255  # measured 7.6e-6


def test_fast_style_any_size_and_grayscale(style_net):
    out = stylize.fast_style(style_net, _rand(2, 1, 30, 21))
    assert out.shape == (2, 3, 30, 21) and 0.0 <= out.min() and out.max() <= 1.0
    gray = _rand(1, 1, 24, 24)
    assert torch.equal(stylize.fast_style(style_net, gray), stylize.fast_style(style_net, gray.expand(-1, 3, -1, -1)))


def test_fast_style_tiles_blend_back_to_the_untiled_result_for_a_pointwise_net():
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * 0.5)
        conv.bias.fill_(40.0)
    model = SimpleNamespace(module=conv, arch="transformer_net", config=None)
    image = _rand(2, 3, 70, 101)
    calls = []
    tiled = stylize.fast_style(model, image, tile=32, overlap=8, progress=lambda i, n: calls.append((i, n)))
    assert torch.allclose(tiled, stylize.fast_style(model, image), atol=1e-6)
    assert calls[-1] == (2 * 3 * 4, 2 * 3 * 4) and len(calls) == 24


def test_fast_style_tile_larger_than_the_image_is_one_pass(style_net):
    image = _rand(1, 3, 40, 40)
    assert torch.equal(stylize.fast_style(style_net, image, tile=64), stylize.fast_style(style_net, image))


def test_fast_style_bad_inputs():
    model = SimpleNamespace(module=nn.Conv2d(3, 3, 1), arch="transformer_net", config=None)
    with pytest.raises(ValueError, match="image is 7x40 px; this model needs at least 8x8"):
        stylize.fast_style(model, _rand(1, 3, 7, 40))
    with pytest.raises(ValueError, match="overlap must be an int in \\[0, tile // 2 = 16\\]"):
        stylize.fast_style(model, _rand(1, 3, 64, 64), tile=32, overlap=20)
    with pytest.raises(ValueError, match="tile must be None .* or an int >= 16"):
        stylize.fast_style(model, _rand(1, 3, 64, 64), tile=8)
    with pytest.raises(ValueError, match="must have 1 or 3 channels"):
        stylize.fast_style(model, _rand(1, 4, 64, 64))
    with pytest.raises(ValueError, match=r"values must lie in \[0, 1\]"):
        stylize.fast_style(model, _rand(1, 3, 64, 64) * 255)
    with pytest.raises(ValueError, match="fast_style needs a 'transformer_net' model, got architecture 'adain'"):
        stylize.fast_style(SimpleNamespace(module=model.module, arch="adain", config=None), _rand(1, 3, 64, 64))


# --------------------------------------------------------------------------------------------------
# adain_style


def test_adain_style_is_the_reference_output_clamped(adain_model, io):
    out = stylize.adain_style(adain_model, io["content"], [io["style"]], alpha=float(io["alpha"]))
    assert (out - io["output"].clamp(0, 1)).abs().max().item() <= 1e-4  # measured 0.0


def test_alpha_zero_is_the_decoders_reconstruction_of_the_content(adain_model, io, record_property):
    out = stylize.adain_style(adain_model, io["content"], [io["style"]], alpha=0.0)
    with torch.no_grad():
        reconstruction = adain_model.module.decode(adain_model.module.decoder_inputs(io["content"])).clamp(0, 1)
    assert torch.allclose(out, reconstruction, atol=1e-6)
    # The fixture's decoder is untrained, so its reconstruction is far from the content (max ~0.96,
    # mean ~0.37): alpha 0 means "no style", not "identity".
    record_property("reconstruction_max_abs_error", (out - io["content"]).abs().max().item())


def test_preserve_colour_keeps_the_content_chroma(adain_model, io):
    content = io["content"]
    kept = stylize.adain_style(adain_model, content, [io["style"]], preserve_colour=True)
    free = stylize.adain_style(adain_model, content, [io["style"]])
    unclamped = ((kept > 0) & (kept < 1)).all(dim=1, keepdim=True).expand(-1, 2, -1, -1)
    assert unclamped.float().mean() > 0.5
    chroma_error = (_ycbcr(kept)[:, 1:] - _ycbcr(content)[:, 1:]).abs()
    assert chroma_error[unclamped].max().item() < 1e-5
    assert (_ycbcr(free)[:, 1:] - _ycbcr(content)[:, 1:]).abs()[unclamped].max().item() > 0.05
    assert torch.allclose(_ycbcr(kept)[:, :1][unclamped[:, :1]], _ycbcr(free)[:, :1][unclamped[:, :1]], atol=1e-5)


def test_mask_confines_the_change(adain_model, io):
    content = io["content"]
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 10:40, 20:50] = 1.0
    mask[..., 40:44, 20:50] = 0.5
    out = stylize.adain_style(adain_model, content, [io["style"]], mask=mask)
    full = stylize.adain_style(adain_model, content, [io["style"]])
    outside = (mask == 0).expand_as(content)
    assert torch.equal(out[outside], content[outside])
    inside = (mask == 1).expand_as(content)
    assert torch.equal(out[inside], full[inside])
    assert torch.allclose(out[..., 40:44, 20:50], 0.5 * (content + full)[..., 40:44, 20:50], atol=1e-6)


def test_style_weights_interpolate(adain_model, io):
    content, style = io["content"], io["style"]
    other = _rand(1, 3, 48, 80, seed=3)
    single = stylize.adain_style(adain_model, content, [style])
    assert torch.equal(stylize.adain_style(adain_model, content, [style, other], [1.0, 0.0]), single)
    assert torch.equal(
        stylize.adain_style(adain_model, content, [style, other], [2, 2]),
        stylize.adain_style(adain_model, content, [style, other]),
    )
    mixed = stylize.adain_style(adain_model, content, [style, other], [0.5, 0.5])
    assert (mixed - single).abs().max() > 0.01


def test_batches_broadcast_a_single_style_and_pair_a_full_one(adain_model, io):
    contents = torch.cat([io["content"], _rand(1, 3, 64, 64, seed=5)])
    styles = torch.cat([io["style"], _rand(1, 3, 64, 64, seed=6)])
    calls = []
    out = stylize.adain_style(adain_model, contents, [styles], progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert torch.allclose(out[1:], stylize.adain_style(adain_model, contents[1:], [styles[1:]]), atol=1e-6)
    broadcast = stylize.adain_style(adain_model, contents, [styles[:1]])
    assert torch.allclose(broadcast[1:], stylize.adain_style(adain_model, contents[1:], [styles[:1]]), atol=1e-6)


def test_odd_sizes_and_grayscale(adain_model, io):
    out = stylize.adain_style(adain_model, _rand(1, 1, 37, 45), [_rand(1, 3, 20, 33), io["style"]])
    assert out.shape == (1, 3, 37, 45)
    gray = _rand(1, 1, 32, 32, seed=2)
    assert torch.equal(
        stylize.adain_style(adain_model, gray, [io["style"]]),
        stylize.adain_style(adain_model, gray.expand(-1, 3, -1, -1), [io["style"]]),
    )


def test_adain_style_bad_inputs():
    model = SimpleNamespace(module=adain.AdaIN(adain.AdaINConfig()), arch="adain", config=adain.AdaINConfig())
    content, style = _rand(2, 3, 32, 32), _rand(1, 3, 32, 32)
    cases = [
        (dict(styles=style), "wrap a single style image in a list"),
        (dict(styles=[]), "styles must be a non-empty list"),
        (dict(styles=[_rand(3, 3, 32, 32)]), r"styles\[0\] has batch 3; a style batch must be 1 .* content batch 2"),
        (dict(styles=[style], weights=[1, 2]), "got 2 style weights for 1 styles"),
        (dict(styles=[style, style], weights=[1, -1]), "style weights must be finite numbers >= 0"),
        (dict(styles=[style, style], weights=[0, 0]), "style weights must not all be 0"),
        (dict(styles=[style], alpha=1.5), r"alpha must be a number in \[0, 1\]"),
        (dict(styles=[_rand(1, 3, 8, 8)]), r"styles\[0\] is 8x8 px; this model needs at least 16x16"),
        (dict(styles=[style], mask=torch.ones(1, 1, 16, 16)), r"mask size must equal the content size \(32, 32\)"),
        (dict(styles=[style], mask=torch.ones(3, 1, 32, 32)), "mask batch must be 1 or equal the content batch 2"),
        (dict(styles=[_rand(1, 4, 32, 32)]), r"styles\[0\] must have 1 or 3 channels"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            stylize.adain_style(model, content, **kwargs)
    with pytest.raises(ValueError, match="content is 8x8 px; this model needs at least 16x16"):
        stylize.adain_style(model, _rand(1, 3, 8, 8), [style])
    with pytest.raises(ValueError, match="adain_style needs a 'adain' model, got architecture 'transformer_net'"):
        stylize.adain_style(SimpleNamespace(module=model.module, arch="transformer_net", config=None), content, [style])


def test_one_style_runs_each_kind_of_one_style_network_and_blends(style_net):
    from models.archs.pix2pix import ResnetGenerator, ResnetGeneratorConfig
    from models.translate import translate

    image = _rand(1, 3, 20, 28)
    assert torch.equal(stylize.one_style(style_net, image), stylize.fast_style(style_net, image))
    assert torch.equal(stylize.one_style(style_net, image, strength=0.0), image)
    assert torch.equal(stylize.one_style(style_net, image, tile=0), stylize.fast_style(style_net, image, tile=None))
    torch.manual_seed(0)
    config = ResnetGeneratorConfig(input_nc=1, output_nc=1, ngf=2, n_blocks=1)
    grey = weights.LoadedModel(ResnetGenerator(config).eval(), "pix2pix_resnet", config, "translate")
    out = stylize.one_style(grey, image[:, :1], strength=0.5)  # one channel in and out: shown as grey RGB
    assert out.shape == (1, 3, 20, 28) and torch.equal(out[:, 0], out[:, 2])
    expected = stylize.blend(image[:, :1], translate(grey, image[:, :1]), 0.5)
    assert torch.equal(out, expected.expand(-1, 3, -1, -1)) and not torch.equal(out[:, :1], image[:, :1])
    adain_like = SimpleNamespace(arch="adain", module=nn.Identity(), config=None)
    with pytest.raises(ValueError, match="one_style needs one of 'transformer_net', 'pix2pix_resnet'"):
        stylize.one_style(adain_like, image)


def test_adain_style_names_the_styles_in_its_messages(adain_model, io):
    with pytest.raises(ValueError, match="style_2 has batch 3; a style batch must be 1"):
        stylize.adain_style(adain_model, io["content"], [io["style"], _rand(3, 3, 32, 32)], names=["style", "style_2"])
