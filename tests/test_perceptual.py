"""ST-LPIPS (models.perceptual): equal to the stlpips-pytorch package, sensible values, clear errors."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn.functional as F

from models import perceptual, pretrained
from models.archs.vgg import VGG16Features
from models.checkpoint import read_foreign

pytestmark = pytest.mark.unit

needs_stlpips = pytest.mark.skipif(pretrained.stlpips_weights_path() is None, reason="stlpips-pytorch is not installed")

REQUIREMENT = f"pip install '{pretrained.STLPIPS_REQUIREMENT}'"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth(h: int, w: int, seed: int, factor: int = 8, batch: int = 1) -> torch.Tensor:
    """A smooth, natural-ish image [batch, 3, h, w] in [0, 1]: bicubic upsampled coarse noise."""
    coarse = torch.rand(batch, 3, h // factor + 2, w // factor + 2, generator=_gen(seed))
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _with_noise(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    return (x + sigma * torch.randn(x.shape, generator=_gen(seed))).clamp(0, 1)


def _structured_pairs(h: int, w: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    big = _smooth(h + 2, w + 2, seed=h + w)
    x = big[..., 1:-1, 1:-1]
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    ramp = torch.stack([xx, yy, (xx + yy) / 2])[None]
    checker = ((torch.arange(h)[:, None] // 4 + torch.arange(w)[None] // 4) % 2).float().expand(1, 3, h, w)
    return [
        ("shift 1 px", x, big[..., 1:-1, 2:]),
        ("shift 2 px diagonal", big[..., :-2, :-2], big[..., 2:, 2:]),
        ("noise", x, _with_noise(x, 0.08, seed=1)),
        ("blur", x, F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)),
        ("contrast", x, 0.5 + 0.6 * (x - 0.5)),
        ("ramp vs checker", ramp, 0.25 + 0.5 * checker),
        ("checker vs flipped", checker, checker.flip(-1)),
        ("colour swap", x, x[:, [2, 0, 1]]),
    ]


@pytest.fixture(scope="module")
def reference():
    """The package's own ST-LPIPS-VGG, imported with stubs for the modules it needs but never uses."""
    stubs = {"IPython": types.ModuleType("IPython"), "torchsummary": types.ModuleType("torchsummary")}
    stubs["IPython"].embed = lambda *args, **kwargs: None
    stubs["torchsummary"].summary = lambda *args, **kwargs: None
    before = set(sys.modules)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, module in stubs.items():
                if name not in sys.modules:
                    mp.setitem(sys.modules, name, module)
            from stlpips_pytorch.stlpips import LPIPS

            model = LPIPS(net="vgg", variant="shift_tolerant", verbose=False).eval()
    finally:
        for name in set(sys.modules) - before:
            if name.startswith("stlpips_pytorch"):
                del sys.modules[name]
    return model


def _reference_distance(model, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(a, b, normalize=True).flatten()


def _assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.dtype == torch.float32 and ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------------------------------
# Against the reference implementation


@needs_stlpips
def test_the_reference_really_holds_the_file_weights(reference):
    """LPIPS loads with strict=False: make sure every tensor it uses came from the file."""
    state = read_foreign(pretrained.stlpips_weights_path())
    # its heads show up twice, as lin0..lin4 and through the ModuleList lins.0..lins.4
    ref_state = {k.replace("lins.", "lin", 1): v for k, v in reference.state_dict().items()}
    assert {k for k in ref_state if k.startswith("lin")} == set(pretrained.STLPIPS_HEADS)
    assert sum(k.startswith("net.") for k in ref_state) == 30  # 13 convs (weight, bias) + 4 blur filters
    for key, value in ref_state.items():
        assert key in state, key
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)


@needs_stlpips
@pytest.mark.parametrize("size", [(64, 64), (96, 96), (64, 96), (18, 18)])
def test_random_pairs_equal_the_reference(reference, size):
    a = torch.rand(3, 3, *size, generator=_gen(sum(size)))
    b = torch.rand(3, 3, *size, generator=_gen(sum(size) + 1))
    _assert_close(perceptual.stlpips(a, b), _reference_distance(reference, a, b))


@needs_stlpips
@pytest.mark.parametrize("size", [(64, 64), (96, 96), (96, 64)])
def test_structured_pairs_equal_the_reference(reference, size):
    pairs = _structured_pairs(*size)
    a = torch.cat([p[1] for p in pairs])
    b = torch.cat([p[2] for p in pairs])
    ours, ref = perceptual.stlpips(a, b), _reference_distance(reference, a, b)
    assert (ref > 1e-3).all(), dict(zip([p[0] for p in pairs], ref.tolist(), strict=True))  # none is trivially 0
    _assert_close(ours, ref)


@needs_stlpips
def test_the_trunk_gives_the_reference_features(reference):
    x = _smooth(64, 80, seed=5)
    ours = perceptual.load_stlpips().trunk.features(x, perceptual.STLPIPS_LAYERS)
    with torch.no_grad():
        ref = reference.net(reference.scaling_layer(2 * x - 1))
    assert list(ref._fields) == list(perceptual.STLPIPS_LAYERS)
    for name, value in zip(perceptual.STLPIPS_LAYERS, ref, strict=True):
        torch.testing.assert_close(ours[name], value, rtol=1e-4, atol=1e-4, msg=name)


# --------------------------------------------------------------------------------------------------
# Values


@needs_stlpips
def test_identical_images_are_at_distance_zero():
    x = torch.cat([_smooth(64, 64, seed=2), torch.rand(1, 3, 64, 64, generator=_gen(3))])
    d = perceptual.stlpips(x, x.clone())
    assert d.shape == (2,) and d.dtype == torch.float32 and d.tolist() == [0.0, 0.0]


@needs_stlpips
def test_more_noise_is_further():
    x = _smooth(96, 96, seed=4)
    d = perceptual.stlpips(x.expand(3, -1, -1, -1), torch.cat([_with_noise(x, s, seed=9) for s in (0.02, 0.05, 0.1)]))
    assert 0 < d[0] < d[1] < d[2], d.tolist()


@needs_stlpips
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_one_pixel_shift_costs_far_less_than_noise_of_the_same_psnr(seed):
    big = _smooth(96, 97, seed=seed)
    a, shifted = big[..., :-1], big[..., 1:]
    mse = (a - shifted).square().mean()
    noise = torch.randn(a.shape, generator=_gen(50 + seed))
    noisy = a + noise * (mse / noise.square().mean()).sqrt()  # exactly the shift's MSE (not clamped)
    torch.testing.assert_close((a - noisy).square().mean(), mse)
    d_shift, d_noise = perceptual.stlpips(torch.cat([a, a]), torch.cat([shifted, noisy])).tolist()
    assert 0 < d_shift < 0.25 * d_noise, (d_shift, d_noise)


@needs_stlpips
def test_batch_items_are_independent():
    a = torch.cat([_smooth(64, 64, seed=s) for s in range(3)])
    b = torch.cat([_with_noise(a[i : i + 1], 0.03 * (i + 1), seed=i) for i in range(3)])
    together = perceptual.stlpips(a, b)
    alone = torch.cat([perceptual.stlpips(a[i : i + 1], b[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-8)
    changed = b.clone()
    changed[1] = torch.rand(3, 64, 64, generator=_gen(7))
    again = perceptual.stlpips(a, changed)
    torch.testing.assert_close(again[[0, 2]], together[[0, 2]], rtol=1e-5, atol=1e-8)
    assert again[1] > together[1]


@needs_stlpips
def test_the_network_is_cached_frozen_and_no_grad():
    model = perceptual.load_stlpips()
    assert perceptual.load_stlpips() is model
    assert perceptual.load_stlpips(pretrained.stlpips_weights_path()) is model
    assert not any(p.requires_grad for p in model.parameters())
    a = torch.rand(1, 3, 32, 32, generator=_gen(1), requires_grad=True)
    d = perceptual.stlpips(a, torch.rand(1, 3, 32, 32, generator=_gen(2)))
    assert not d.requires_grad


@needs_stlpips
def test_bad_inputs_are_refused_clearly():
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="one shape"):
        perceptual.stlpips(x, torch.rand(1, 3, 32, 33))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        perceptual.stlpips(x[:, :1], x[:, :1])
    small = torch.rand(1, 3, perceptual.MIN_SIDE - 1, 40)
    with pytest.raises(ValueError, match=f"at least {perceptual.MIN_SIDE}"):
        perceptual.stlpips(small, small)


@needs_stlpips
def test_the_metric_needs_the_anti_aliased_trunk():
    model = perceptual.load_stlpips()
    plain = VGG16Features("max", "relu5_3")
    with pytest.raises(ValueError, match="blur"):
        perceptual.STLPIPS(plain, model.heads())
    with pytest.raises(ValueError, match="heads"):
        perceptual.STLPIPS(model.trunk, model.heads()[::-1])


# --------------------------------------------------------------------------------------------------
# Missing or wrong weights


def test_no_stlpips_file_names_the_pip_install(monkeypatch):
    monkeypatch.setattr(pretrained, "stlpips_weights_path", lambda: None)
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(FileNotFoundError) as info:
        perceptual.stlpips(x, x)
    assert REQUIREMENT in str(info.value)
    with pytest.raises(FileNotFoundError, match="stlpips-pytorch==0.0.2"):
        perceptual.load_stlpips()


def test_a_missing_or_foreign_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        perceptual.load_stlpips(tmp_path / "nope.pth")
    assert "nope.pth" in str(info.value) and REQUIREMENT in str(info.value)
    foreign = tmp_path / "vgg16-torchvision.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, foreign)
    with pytest.raises(ValueError) as info:
        pretrained.read_stlpips_state(foreign)
    assert "not the stlpips VGG file" in str(info.value) and REQUIREMENT in str(info.value)
