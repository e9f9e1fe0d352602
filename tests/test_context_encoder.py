"""Context Encoder architectures: public-port fixtures, detection, the any-mask variant's shapes."""


import pytest
import torch
from reference import FIXTURES
from safetensors.torch import load_file

from models import checkpoint, weights
from models.archs.context_encoder import (
    AnyMaskConfig,
    AnyMaskContextEncoder,
    ContextEncoder,
    ContextEncoderConfig,
    ContextEncoderDConfig,
)
from models.inpaint import classical
from models.registry import ARCHITECTURES

pytestmark = pytest.mark.unit


# Default any-mask config: documented as "about 1.5 M parameters" in the module docstring.
ANYMASK_PARAMS = (1_400_000, 1_600_000)


@pytest.mark.parametrize(
    "name, arch_id, config",
    [
        ("context_encoder_netG", "context_encoder", ContextEncoderConfig(nc=3, nef=8, ngf=8, bottleneck=64)),
        ("context_encoder_netlocalD", "context_encoder_d", ContextEncoderDConfig(nc=3, ndf=8, patch_size=64)),
    ],
)
def test_public_checkpoint_reproduces_reference_output(tmp_path, name, arch_id, config):
    io = load_file(FIXTURES / f"{name}.io.safetensors")
    loaded = weights.load(FIXTURES / f"{name}.pth")
    assert (loaded.arch, loaded.config) == (arch_id, config)
    with torch.no_grad():
        out = loaded.module(io["input"])
    assert out.shape == io["output"].shape
    assert (out - io["output"]).abs().max().item() <= 1e-5
    ours = weights.convert(FIXTURES / f"{name}.pth", tmp_path / f"{name}.safetensors")
    again = weights.load(ours)
    assert (again.arch, again.config) == (arch_id, config)
    with torch.no_grad():
        assert (again.module(io["input"]) - io["output"]).abs().max().item() <= 1e-5


def test_checkpoint_without_batchnorm_counters_still_converts():
    """Files saved before torch 0.4 have no num_batches_tracked; the converter adds them."""
    state = checkpoint.read_foreign(FIXTURES / "context_encoder_netG.pth")
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(old) < len(state)
    arch = ARCHITECTURES.detect(old)
    assert arch.id == "context_encoder"
    config, converted = arch.convert(old)
    module = arch.build(config).eval()
    module.load_state_dict(converted, strict=True)
    io = load_file(FIXTURES / "context_encoder_netG.io.safetensors")
    with torch.no_grad():
        assert (module(io["input"]) - io["output"]).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    "name, arch_id",
    [
        ("context_encoder_netG", "context_encoder"),
        ("context_encoder_netlocalD", "context_encoder_d"),
        ("patchgan_basic_n3_batch", "patchgan"),
    ],
)
def test_detect_claims_exactly_the_right_fixture(name, arch_id):
    state = checkpoint.read_foreign(FIXTURES / f"{name}.pth")
    claimed = [a.id for a in ARCHITECTURES if a.detect is not None and a.detect(state)]
    assert claimed == [arch_id]


def test_detect_reads_the_paper_bottleneck_and_rejects_damaged_dicts():
    arch = ARCHITECTURES.get("context_encoder")
    state = ContextEncoder(ContextEncoderConfig(nef=4, ngf=6, bottleneck=4000)).state_dict()
    assert arch.detect(state)
    assert arch.convert(state)[0] == ContextEncoderConfig(nc=3, nef=4, ngf=6, bottleneck=4000, image_size=128)
    missing = {k: v for k, v in state.items() if k != "main.18.running_var"}
    assert not arch.detect(missing)
    wrong = dict(state, **{"main.20.weight": torch.zeros(48, 25, 4, 4)})
    assert not arch.detect(wrong)
    assert not ARCHITECTURES.get("context_encoder_d").detect(state)


def test_our_anymask_state_dict_is_not_a_foreign_checkpoint():
    state = AnyMaskContextEncoder(AnyMaskConfig(base_channels=4)).state_dict()
    with pytest.raises(ValueError, match="no known architecture matches"):
        ARCHITECTURES.detect(state)


def test_paper_generator_refuses_other_sizes():
    module = ContextEncoder(ContextEncoderConfig(nef=4, ngf=4, bottleneck=8))
    with pytest.raises(ValueError, match=r"expects \[B, 3, 128, 128\].*got shape \(1, 3, 96, 128\)"):
        module(torch.zeros(1, 3, 96, 128))


@pytest.mark.parametrize("size", [(64, 96), (128, 128), (32, 256)])
def test_anymask_model_keeps_the_size(size):
    torch.manual_seed(0)
    module = AnyMaskContextEncoder(AnyMaskConfig(base_channels=8)).eval()
    with torch.no_grad():
        out = module(torch.rand(2, 4, *size) * 2 - 1)
    assert out.shape == (2, 3, *size)
    assert out.abs().max().item() < 1.0 and out.std().item() > 0


def test_anymask_model_names_the_size_it_needs():
    module = AnyMaskContextEncoder(AnyMaskConfig(base_channels=4, downsamplings=3))
    with pytest.raises(ValueError, match="multiples of 8, got 100x96; pad to 104x96"):
        module(torch.zeros(1, 4, 100, 96))
    with pytest.raises(ValueError, match=r"expects \[B, 4, H, W\].*got shape \(1, 3, 64, 64\)"):
        module(torch.zeros(1, 3, 64, 64))


def test_anymask_default_parameter_count():
    n = sum(p.numel() for p in AnyMaskContextEncoder(AnyMaskConfig()).parameters())
    print(f"any-mask default config: {n:,} parameters")
    assert ANYMASK_PARAMS[0] < n < ANYMASK_PARAMS[1]


def test_anymask_receptive_field_reaches_about_170_px_each_way():
    """The dilated bottleneck is what lets the hole's centre see context: ~340 px receptive field."""
    torch.manual_seed(0)
    module = AnyMaskContextEncoder(AnyMaskConfig(base_channels=8)).eval()
    x = torch.zeros(1, 4, 384, 384, requires_grad=True)
    module(x)[0, :, 192, 192].sum().backward()
    reach = x.grad[0].abs().sum(dim=(0, 1))  # influence per input column
    assert reach[192 - 150] > 0 and reach[192 + 150] > 0
    assert reach[: 192 - 175].abs().sum() == 0 and reach[192 + 175 :].abs().sum() == 0


def test_untrained_harmonic_prefill_model_returns_the_harmonic_fill():
    """Zero-initialised last conv: before training the model is exactly the classical fill it corrects."""
    torch.manual_seed(0)
    module = AnyMaskContextEncoder(AnyMaskConfig(base_channels=8, prefill="harmonic")).eval()
    image = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 64, 96), 5, 1, 2)
    mask = torch.zeros(2, 1, 64, 96)
    mask[0, :, 10:40, 20:60] = 1
    mask[1] = 1  # nothing known: the item stays grey instead of failing
    with torch.no_grad():
        out = module(torch.cat([(image * 2 - 1) * (1 - mask), mask], 1))
    expected = classical.fill(image[:1], mask[:1], "harmonic") * 2 - 1
    assert (out[:1] - expected).abs().max().item() < 1e-4
    assert out[1].abs().max().item() == 0.0
    assert module.decoder[-1].weight.abs().sum() == 0 and not isinstance(module.decoder[-1], torch.nn.Tanh)


def test_harmonic_prefill_model_learns_a_correction_inside_the_hole():
    torch.manual_seed(0)
    module = AnyMaskContextEncoder(AnyMaskConfig(base_channels=4, downsamplings=2, bottleneck_blocks=1,
                                                 prefill="harmonic"))
    image = torch.rand(4, 3, 32, 32) * 2 - 1
    mask = torch.zeros(4, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    x = torch.cat([image * (1 - mask), mask], 1)
    optimiser = torch.optim.Adam(module.parameters(), 1e-2)
    errors = []
    for _ in range(40):
        error = ((module(x) - image).abs() * mask).mean()
        optimiser.zero_grad()
        error.backward()
        optimiser.step()
        errors.append(error.item())
    assert errors[-1] < 0.8 * errors[0]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: AnyMaskConfig(norm="group"), "norm must be one of"),
        (lambda: AnyMaskConfig(prefill="telea"), "prefill must be one of"),
        (lambda: AnyMaskConfig(downsamplings=0), "downsamplings must be in 1..6"),
        (lambda: ContextEncoderConfig(image_size=100), "image_size must be a power of two >= 64"),
        (lambda: ContextEncoderConfig(bottleneck=0), "bottleneck must be >= 1"),
        (lambda: ContextEncoderDConfig(patch_size=48), "patch_size must be a power of two"),
    ],
)
def test_bad_configs_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
