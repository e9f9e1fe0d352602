"""The enhance generator and its tiled inference: shapes, identity start, tiles, strength, mask, errors."""

import dataclasses

import pytest
import torch
from torch import nn

from models import enhance as en
from models.archs.enhance import ARCHITECTURE, EnhanceConfig, EnhanceNet
from models.weights import LoadedModel

pytestmark = pytest.mark.unit


def _model(config: EnhanceConfig | None = None, *, trained_like: bool = True, seed: int = 0) -> LoadedModel:
    """A model whose output really depends on the neighbourhood (the zero-initialised heads are randomised)."""
    config = config or EnhanceConfig(base_channels=8, levels=2, blocks=1, context_size=32, curve_knots=8)
    torch.manual_seed(seed)
    module = EnhanceNet(config).eval()
    if trained_like:
        heads = [module.context.colour, module.context.film, module.context.curve] if module.context else []
        for head in [module.tail, *(h for h in heads if h is not None)]:
            nn.init.normal_(head.weight, std=0.05)
            nn.init.normal_(head.bias, std=0.02)
    return LoadedModel(module=module, arch=ARCHITECTURE.id, config=config, task="enhance")


def _photo(batch=1, h=96, w=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([x, y, (1 - x) * y]).expand(batch, -1, -1, -1)
    return (0.8 * base + 0.2 * torch.rand(batch, 3, h, w, generator=g)).clamp(0, 1)


def test_a_fresh_network_is_the_identity_and_any_multiple_of_the_size_step_works():
    config = EnhanceConfig(base_channels=8, levels=2, blocks=1, context_size=32)
    net = EnhanceNet(config).eval()
    x = torch.rand(2, 3, 24, 40) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(net(x), x, atol=1e-6)
    assert config.size_multiple == 8
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 3, 20, 40))


def test_the_context_branch_is_global_a_tile_gets_the_whole_images_correction():
    model = _model()
    net = model.module
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        whole = net.global_context(x)
        crop = x[..., :32, :32]
        with_own = net(crop)
        with_whole = net(crop, whole)
    assert not torch.allclose(with_own, with_whole, atol=1e-4)  # the context changes the result
    assert torch.allclose(net.global_context(x).matrix, whole.matrix)  # and it is deterministic


def test_tiled_result_matches_one_pass_within_tolerance():
    model = _model()
    image = _photo(h=200, w=264)
    whole = en.enhance(model, image, tile=512)
    tiled = en.enhance(model, image, tile=96, overlap=24)
    assert en.tile_count(200, 264, 96, 24) > 4
    diff = (whole - tiled).abs()
    assert float(diff.mean()) < 2e-3, float(diff.mean())
    assert float(diff.max()) < 0.05, float(diff.max())
    assert float((whole - image).abs().mean()) > 5 * float(diff.mean())  # the model does change the image


def test_tile_starts_cover_the_image_with_the_overlap():
    for size, tile, overlap in [(1000, 256, 32), (257, 256, 32), (256, 256, 32), (100, 64, 16)]:
        starts = en.tile_starts(size, tile, overlap)
        assert starts[0] == 0 and starts[-1] + min(tile, size) == size
        for a, b in zip(starts, starts[1:], strict=False):
            assert a + tile - b >= overlap


def test_strength_zero_returns_the_input_exactly_and_strength_blends_linearly():
    model = _model()
    image = _photo()
    assert torch.equal(en.enhance(model, image, strength=0.0), image)
    full = en.enhance(model, image, strength=1.0)
    half = en.enhance(model, image, strength=0.5)
    assert torch.allclose(half, (image + full) / 2, atol=1e-6)


def test_masked_enhancement_leaves_unmasked_pixels_bit_exact():
    model = _model()
    image = _photo(batch=2)
    mask = torch.zeros(1, 1, 96, 128)
    mask[..., 20:60, 30:90] = 1.0
    mask[..., 60:70, 30:90] = 0.5
    out = en.enhance(model, image, mask=mask)
    outside = (mask == 0).expand(2, 3, -1, -1)
    assert torch.equal(out[outside], image[outside])
    inside = (mask == 1).expand(2, 3, -1, -1)
    assert float((out[inside] - image[inside]).abs().mean()) > 1e-3


def test_batch_items_are_independent_and_alpha_passes_through():
    model = _model()
    image = _photo(batch=3, seed=1)
    batch = en.enhance(model, image)
    single = en.enhance(model, image[1:2])
    assert torch.allclose(batch[1:2], single, atol=1e-6)
    rgba = torch.cat([image, torch.rand(3, 1, 96, 128)], dim=1)
    out = en.enhance(model, rgba)
    assert out.shape == rgba.shape and torch.equal(out[:, 3:], rgba[:, 3:])
    assert torch.allclose(out[:, :3], batch, atol=1e-6)


def test_progress_counts_tiles_over_the_batch():
    model = _model()
    calls = []
    en.enhance(model, _photo(batch=2, h=100, w=100), tile=64, overlap=16, progress=lambda d, t: calls.append((d, t)))
    per_item = en.tile_count(100, 100, 64, 16)
    assert calls == [(i, 2 * per_item) for i in range(1, 2 * per_item + 1)]


class _OutOfMemoryAbove(nn.Module):
    """Wraps a network and raises like CUDA does when a tile is larger than `limit` pixels a side."""

    def __init__(self, inner: EnhanceNet, limit: int) -> None:
        super().__init__()
        self.inner, self.config, self.limit, self.sizes = inner, inner.config, limit, []

    def global_context(self, x):
        return self.inner.global_context(x)

    def forward(self, x, context=None):
        self.sizes.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.inner(x, context)


def test_out_of_memory_halves_the_tile_until_it_fits():
    model = _model()
    wrapped = _OutOfMemoryAbove(model.module, limit=128)
    image = _photo(h=300, w=300)
    out = en.enhance(LoadedModel(wrapped, model.arch, model.config, "enhance"), image, tile=512, overlap=16)
    assert wrapped.sizes[:2] == [304, 256] and max(wrapped.sizes[2:]) <= 128  # 512 -> 256 -> 128
    reference = en.enhance(model, image, tile=128, overlap=16)
    assert torch.allclose(out, reference, atol=1e-6)
    with pytest.raises(torch.OutOfMemoryError):
        en.enhance(LoadedModel(_OutOfMemoryAbove(model.module, 10), model.arch, model.config, "enhance"),
                   image, tile=512, overlap=16)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strength": 1.5}, "strength must be in"),
        ({"tile": 32}, "tile must be an int >= 64"),
        ({"overlap": 200, "tile": 256}, "overlap must be"),
        ({"mask": torch.ones(1, 1, 10, 10)}, "mask size must equal"),
        ({"mask": torch.ones(3, 1, 96, 128)}, "mask batch must be 1 or equal"),
    ],
)
def test_bad_arguments_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        en.enhance(_model(), _photo(batch=2), **kwargs)


def test_bad_images_and_models_are_refused_clearly():
    model = _model()
    nan = _photo()
    nan[0, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        en.enhance(model, nan)
    with pytest.raises(ValueError, match="empty"):
        en.enhance(model, torch.zeros(0, 3, 16, 16))
    with pytest.raises(ValueError, match="3 or 4 channels"):
        en.enhance(model, torch.zeros(1, 2, 16, 16))
    other = LoadedModel(model.module, "context_encoder_anymask", model.config, "inpaint")
    with pytest.raises(ValueError, match="enhance needs an 'enhance_unet' model"):
        en.enhance(other, _photo())


def test_tiny_images_are_mirrored_up_to_the_size_step():
    model = _model()
    image = torch.rand(1, 3, 5, 7)
    out = en.enhance(model, image)
    assert out.shape == image.shape and torch.isfinite(out).all()


def test_bfloat16_inference_stays_close_to_float32():
    model = _model()
    image = _photo(h=64, w=96)
    a = en.enhance(model, image)
    b = en.enhance(model, image, dtype=torch.bfloat16)
    assert b.dtype == torch.float32 and float((a - b).abs().mean()) < 3e-3


def test_tone_curve_starts_straight_is_monotone_and_can_brighten_shadows():
    from models.archs.enhance import apply_curve

    x = torch.linspace(-1, 1, 101).view(1, 1, 1, 101).expand(1, 3, 1, 101)
    flat = torch.full((1, 3, 8), 1 / 8)
    assert torch.allclose(apply_curve(x, flat), x, atol=1e-6)
    lifted = torch.tensor([0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05]).expand(1, 3, 8)
    y = apply_curve(x, lifted)
    assert bool((y[..., 1:] >= y[..., :-1]).all())
    assert float(y[0, 0, 0, 25]) > float(x[0, 0, 0, 25]) + 0.3  # a quarter of the way up maps far higher
    assert float(y[0, 0, 0, 0]) == pytest.approx(-1.0) and float(y[0, 0, 0, -1]) == pytest.approx(1.0)


def test_a_grey_image_is_enhanced_as_rgb():
    model, grey = _model(), _photo()[:, :1]
    out = en.enhance(model, grey, tile=512, overlap=16)
    assert out.shape == (1, 3, 96, 128)
    assert torch.equal(out, en.enhance(model, grey.expand(-1, 3, -1, -1), tile=512, overlap=16))


def _textured(size: int) -> torch.Tensor:
    """Fine random texture over three quarters of the picture, the top-left quarter flat."""
    texture = 0.3 + 0.4 * torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(3))
    texture[..., : size // 2, : size // 2] = 0.5
    return texture


def test_noise_level_estimators_read_pure_noise_and_blocks_is_less_fooled_by_texture():
    from models.archs.enhance import noise_level

    g = torch.Generator().manual_seed(1)
    noise = torch.randn(2, 3, 256, 256, generator=g) * torch.tensor([0.02, 0.1])[:, None, None, None]
    for estimator in ("mad", "blocks"):
        assert torch.allclose(noise_level(noise, estimator), torch.tensor([0.02, 0.1]), rtol=0.05), estimator
    # a clean picture: fine texture over three quarters, a flat quarter (sky)
    texture = _textured(256)
    assert noise_level(texture, "mad") > 0.04  # most pixels are texture: the median reads it as noise
    assert noise_level(texture, "blocks") < 1e-6  # the quietest squares are flat
    with pytest.raises(ValueError, match="estimator"):
        noise_level(noise, "max")
    with pytest.raises(ValueError, match="noise_estimator"):
        EnhanceConfig(guide=True, noise_estimator="max")


def test_the_noise_estimator_changes_the_guides_not_the_weights():
    from models.archs.enhance import noise_level

    config = EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32, guide=True)
    first = _model(config).module
    second = EnhanceNet(EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32, guide=True,
                                      noise_estimator="blocks")).eval()
    second.load_state_dict(first.state_dict())
    x = _textured(64) * 2 - 1
    with torch.no_grad():
        mad, blocks = first.global_context(x).noise, second.global_context(x).noise
        assert torch.equal(mad, noise_level(x, "mad")) and torch.equal(blocks, noise_level(x, "blocks"))
        assert mad > 1.2 * blocks
        assert (first(x) - second(x)).abs().max() > 1e-3


def test_a_tone_stage_starts_as_the_identity_corrects_first_and_is_global():
    from models.archs.enhance import noise_level

    base = EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32, guide=True, noise_estimator="blocks")
    restorer = _model(base).module
    toned = EnhanceNet(dataclasses.replace(base, tone_knots=8)).eval()
    loaded = toned.load_state_dict(restorer.state_dict(), strict=False)
    assert not loaded.unexpected_keys and all(k.startswith("tone.") for k in loaded.missing_keys)
    x = _photo(h=64, w=64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(toned(x, tone_params=True).apply(x), x)  # a fresh tone stage changes nothing
        assert torch.allclose(toned(x), restorer(x), atol=1e-6)
        nn.init.normal_(toned.tone.out.weight, std=0.05)  # now it corrects: darker, bluer, ...
        context = toned.global_context(x)
        corrected = context.tone.apply(x)
        assert (corrected - x).abs().mean() > 0.01
        assert torch.equal(toned(x, tone_params=True).apply(x), corrected)
        # the restorer behind it sees the corrected image: its noise level is measured after the correction
        assert torch.allclose(context.noise, noise_level(corrected, "blocks"))
        assert torch.allclose(toned(x), restorer(corrected), atol=1e-5)
        # a tile gets the whole image's tone correction
        tile = toned(x[..., :32, :32], context)
        untoned = dataclasses.replace(context, tone=None)
        assert torch.allclose(tile, restorer(corrected[..., :32, :32], untoned), atol=1e-5)
    with pytest.raises(ValueError, match="tone stage"):
        restorer(x, tone_params=True)
    with pytest.raises(ValueError, match="tone_knots"):
        EnhanceConfig(context=False, tone_knots=4)
    with pytest.raises(ValueError, match="tone_knots"):
        EnhanceConfig(tone_knots=65)


def test_a_tone_gate_starts_open_passes_through_exactly_when_closed_and_learns_through_its_clamp():
    base = EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32, tone_knots=8)
    ungated = EnhanceNet(base).eval()
    nn.init.normal_(ungated.tone.out.weight, std=0.05)
    gated = EnhanceNet(dataclasses.replace(base, tone_gate=True)).eval()
    loaded = gated.load_state_dict(ungated.state_dict(), strict=False)
    assert not loaded.unexpected_keys and set(loaded.missing_keys) == {"tone.gate.weight", "tone.gate.bias"}
    x = _photo(h=64, w=64) * 2 - 1
    with torch.no_grad():
        corrected = ungated(x, tone_params=True).apply(x)
        assert (corrected - x).abs().mean() > 0.01
        assert torch.equal(gated.tone(x).gate, torch.ones(1))  # open: the stage it was added to is kept
        assert torch.allclose(gated(x, tone_params=True).apply(x), corrected, atol=1e-6)
        gated.tone.gate.bias.fill_(-0.5)  # closed: the photo passes through bit for bit
        assert torch.equal(gated(x, tone_params=True).apply(x), x)
        plain = EnhanceNet(dataclasses.replace(base, tone_knots=0)).eval()
        plain.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.startswith("tone.")})
        assert torch.equal(gated(x), plain(x))  # and so does the restorer's input
        gated.tone.gate.bias.fill_(0.25)  # between: a quarter of the correction
        assert torch.allclose(gated(x, tone_params=True).apply(x), x + 0.25 * (corrected - x), atol=1e-5)
    for bias, flows in ((-0.5, True), (1.5, True), (-1.5, False), (2.5, False)):
        with torch.no_grad():
            gated.tone.gate.bias.fill_(bias)
        gated.zero_grad()
        gate = gated.tone(x).gate
        assert gate.item() == min(max(bias, 0.0), 1.0)
        gate.sum().backward()  # straight through inside TONE_GATE_SPAN, so a closed gate can reopen; none beyond
        assert (gated.tone.gate.bias.grad.item() == 1.0) == flows
    with pytest.raises(ValueError, match="tone_gate"):
        EnhanceConfig(tone_gate=True)


def test_the_blocking_level_reads_jpeg_blocks_not_texture_or_noise():
    from models.archs.enhance import blocking_level
    from models.enhance import degrade

    photo = _photo(h=256, w=256)
    noisy = (photo + 0.03 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    jpeg = degrade.jpeg(photo, 20)
    levels = [float(blocking_level(x * 2 - 1)) * 255 / 2 for x in (photo, noisy, jpeg)]
    assert levels[0] < 0.5 and levels[1] < 0.5 and levels[2] > 4, levels  # levels of 255
    shifted = float(blocking_level(jpeg[..., 3:, 3:] * 2 - 1)) * 255 / 2  # the grid no longer starts at 0
    assert shifted < 0.25 * levels[2]
    # a large image is measured on a centre square cut on the block grid
    big = degrade.jpeg(_photo(h=1200, w=1100), 20)
    assert float(blocking_level(big * 2 - 1)) * 255 / 2 > 4


def test_a_block_guide_added_to_a_trained_network_leaves_clean_photos_and_deblocks_jpegs():
    from models.archs.enhance import MIX_PRIOR, add_block_guide, bilateral, blocking_level
    from models.enhance import degrade

    base = EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32, guide=True, noise_estimator="blocks")
    trained = _model(base).module
    with torch.no_grad():
        trained.tail.bias[12:16] = MIX_PRIOR  # as trained restorers keep it: the mix leans on the input
    config = dataclasses.replace(base, block_guide=True)
    assert (base.mixed, config.mixed) == (3, 4)
    wide = EnhanceNet(config).eval()
    wide.load_state_dict(add_block_guide(trained.state_dict(), config))
    clean = _photo(h=64, w=64) * 2 - 1
    x = degrade.jpeg(_photo(h=64, w=64), 10) * 2 - 1
    with torch.no_grad():
        assert float(blocking_level(clean)) * 255 / 2 < 0.5  # levels of 255: without JPEG the guide is the input
        unchanged = (wide(clean) - trained(clean)).abs().mean()
        context = wide.global_context(x)
        assert torch.equal(context.blocking, blocking_level(x)) and context.blocking > 0
        expected = context.recolour(bilateral(x, context.blocking[:, None])[:, 0])
        before, after = trained(x), wide(x)
        # the guide takes most of the input's share of the mix: the output moves most of the way from the input
        # towards the filter
        step = expected - context.recolour(x)
        moved = ((after - before) * step).sum() / step.square().sum()
        assert 0.5 < float(moved) < 1
        assert unchanged < 0.35 * (after - before).abs().mean(), float(unchanged)  # measured 0.22
        # all of the mix on the new guide: the output is the bilateral filter of the measured blocking's range
        wide.tail.weight.zero_()
        wide.tail.bias.zero_()
        wide.tail.bias[-4:] = 50.0
        assert torch.allclose(wide(x), expected, atol=1e-5)
        assert (expected - context.recolour(x)).abs().mean() > 1e-3  # and that filter is not the input
    with torch.no_grad():  # a photo without blocking gets the input as its block guide, alone or in a batch
        both = wide(torch.cat([clean, x]))
        assert torch.allclose(both[:1], wide(clean), atol=1e-5) and torch.allclose(both[1:], wide(x), atol=1e-5)
        wide.tail.bias[-4:] = 50.0
        assert torch.allclose(wide(clean), wide.global_context(clean).recolour(clean), atol=1e-5)
    with pytest.raises(ValueError, match="block_guide"):
        EnhanceConfig(block_guide=True)  # needs the guides
    with pytest.raises(ValueError, match="block_guide=True"):
        add_block_guide(trained.state_dict(), base)
