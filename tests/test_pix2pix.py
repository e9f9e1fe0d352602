"""pix2pix / CycleGAN networks: the public checkpoints reproduce the reference, detection, conversion."""


import pytest
import torch
from reference import FIXTURES
from safetensors.torch import load_file

from models import checkpoint, weights
from models.archs import pix2pix
from models.archs.pix2pix import (
    PixelDiscriminator,
    PixelDiscriminatorConfig,
    ResnetGenerator,
    ResnetGeneratorConfig,
    UnetGenerator,
    UnetGeneratorConfig,
)
from models.registry import ARCHITECTURES

pytestmark = pytest.mark.unit


# name -> (architecture id, the config the reference json describes)
GENERATORS = {
    "cyclegan_resnet9_instance_nodropout": (
        "pix2pix_resnet", ResnetGeneratorConfig(ngf=8, n_blocks=9, norm="instance", use_dropout=False)
    ),
    "cyclegan_resnet6_instance_dropout": (
        "pix2pix_resnet", ResnetGeneratorConfig(ngf=8, n_blocks=6, norm="instance", use_dropout=True)
    ),
    # Dropout leaves no trace in U-Net keys: conversion says True, pix2pix's default.
    "pix2pix_unet256_batch_dropout": ("pix2pix_unet", UnetGeneratorConfig(ngf=8, num_downs=8, norm="batch")),
    "pix2pix_unet128_instance": ("pix2pix_unet", UnetGeneratorConfig(ngf=8, num_downs=7, norm="instance")),
}
OURS = {"pix2pix_resnet", "pix2pix_unet", "pixel_discriminator"}
# Fixtures of the families implemented before this one.
OTHERS = {
    "patchgan_basic_n3_batch": "patchgan",
    "context_encoder_netG": "context_encoder",
    "context_encoder_netlocalD": "context_encoder_d",
}


def _max_error(module: torch.nn.Module, io: dict[str, torch.Tensor], key: str = "output") -> float:
    with torch.no_grad():
        return (module(io["input"]) - io[key]).abs().max().item()


def _legacy(state: dict[str, torch.Tensor], module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What old checkpoints hold: running stats for every InstanceNorm (affine=False, so no weight)."""
    old = dict(state)
    for name, sub in module.named_modules():
        if isinstance(sub, torch.nn.InstanceNorm2d):
            old[f"{name}.running_mean"] = torch.zeros(sub.num_features)
            old[f"{name}.running_var"] = torch.ones(sub.num_features)
            old[f"{name}.num_batches_tracked"] = torch.tensor(0)
    return old


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_public_checkpoint_reproduces_the_reference(name, tmp_path):
    arch, config = GENERATORS[name]
    io = load_file(FIXTURES / f"{name}.io.safetensors")
    loaded = weights.load(FIXTURES / f"{name}.pth")
    assert (loaded.arch, loaded.config, loaded.task) == (arch, config, "translate")
    assert _max_error(loaded.module, io) <= 1e-5
    ours = weights.convert(FIXTURES / f"{name}.pth", tmp_path / "g.safetensors")
    again = weights.load(ours)
    assert (again.arch, again.config, again.task) == (arch, config, "translate")
    assert _max_error(again.module, io) <= 1e-5


def test_unet_train_mode_output_with_dropout_off():
    io = load_file(FIXTURES / "pix2pix_unet256_batch_dropout.io.safetensors")
    module = weights.load(FIXTURES / "pix2pix_unet256_batch_dropout.pth").module.train()
    for sub in module.modules():
        if isinstance(sub, torch.nn.Dropout):
            sub.p = 0.0
    assert _max_error(module, io, "output_train_mode") <= 1e-5


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.pth")) if FIXTURES.is_dir() else [], ids=lambda p: p.stem)
def test_every_fixture_is_detected_as_exactly_its_architecture(path):
    state = checkpoint.read_foreign(path)
    expected = {**{k: v[0] for k, v in GENERATORS.items()}, **OTHERS}.get(path.stem)
    if expected is not None:
        assert ARCHITECTURES.detect(state).id == expected
        return
    # Families implemented elsewhere (or not yet): never claimed by ours; unknown ones are refused.
    assert not any(ARCHITECTURES.get(a).detect(state) for a in OURS)
    try:
        assert ARCHITECTURES.detect(state).id not in OURS
    except ValueError as exc:
        assert "no known architecture" in str(exc)


@pytest.mark.parametrize(
    "build, config",
    [
        (ResnetGenerator, ResnetGeneratorConfig(ngf=4, n_blocks=3, norm="instance", use_dropout=True)),
        (ResnetGenerator, ResnetGeneratorConfig(ngf=4, n_blocks=2, norm="batch")),
        (ResnetGenerator, ResnetGeneratorConfig(input_nc=1, ngf=2, n_blocks=1, norm="none", padding="zero")),
        (ResnetGenerator, ResnetGeneratorConfig(output_nc=1, ngf=2, n_blocks=0, norm="instance")),
        (UnetGenerator, UnetGeneratorConfig(ngf=2, num_downs=6, norm="batch")),
        (UnetGenerator, UnetGeneratorConfig(input_nc=1, output_nc=2, ngf=2, num_downs=5, norm="instance")),
        (UnetGenerator, UnetGeneratorConfig(ngf=2, num_downs=9, norm="none")),
        (PixelDiscriminator, PixelDiscriminatorConfig(input_nc=6, ndf=4, norm="batch")),
        (PixelDiscriminator, PixelDiscriminatorConfig(input_nc=3, ndf=2, norm="instance")),
        (PixelDiscriminator, PixelDiscriminatorConfig(input_nc=2, ndf=2, norm="none")),
    ],
    ids=lambda v: getattr(v, "__name__", "") or "",
)
def test_config_is_inferred_from_keys_and_shapes(build, config):
    state = build(config).state_dict()
    arch = ARCHITECTURES.detect(state)
    inferred, converted = arch.convert(state)
    if isinstance(config, UnetGeneratorConfig):  # dropout is invisible in U-Net keys
        inferred = UnetGeneratorConfig(**{**inferred.__dict__, "use_dropout": config.use_dropout})
    assert inferred == config
    assert set(converted) == set(state)


@pytest.mark.parametrize("name", ["cyclegan_resnet9_instance_nodropout", "pix2pix_unet128_instance"])
def test_legacy_instance_norm_running_stats_are_dropped(name, tmp_path):
    state = checkpoint.read_foreign(FIXTURES / f"{name}.pth")
    module = ARCHITECTURES.detect(state).build(ARCHITECTURES.detect(state).convert(state)[0])
    old = _legacy(state, module)
    assert len(old) > len(state)
    arch = ARCHITECTURES.detect(old)
    _, converted = arch.convert(old)
    assert set(converted) == set(state)
    torch.save(old, tmp_path / "old.pth")
    io = load_file(FIXTURES / f"{name}.io.safetensors")
    assert _max_error(weights.load(tmp_path / "old.pth").module, io) <= 1e-5


def test_batch_norm_counters_missing_from_pre_0_4_files_are_added():
    state = UnetGenerator(UnetGeneratorConfig(ngf=2, num_downs=5)).state_dict()
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    _, converted = ARCHITECTURES.get("pix2pix_unet").convert(old)
    assert set(converted) == set(state)


def test_resnet_dropout_moves_the_second_conv():
    keys = set(ResnetGenerator(ResnetGeneratorConfig(ngf=2, n_blocks=1, use_dropout=True)).state_dict())
    assert "model.10.conv_block.6.weight" in keys and "model.10.conv_block.5.weight" not in keys
    keys = set(ResnetGenerator(ResnetGeneratorConfig(ngf=2, n_blocks=1, use_dropout=False)).state_dict())
    assert "model.10.conv_block.5.weight" in keys and "model.11.weight" in keys


def test_state_dicts_that_cannot_be_understood_say_why():
    resnet = ResnetGenerator(ResnetGeneratorConfig(ngf=2, n_blocks=3)).state_dict()
    broken = {k: v for k, v in resnet.items() if not k.startswith("model.11.")}
    with pytest.raises(ValueError, match=r"residual blocks at model.\[10, 12\]"):
        pix2pix.convert_resnet(broken)
    wrong = {**resnet, "model.4.weight": torch.zeros(8, 2, 3, 3)}
    with pytest.raises(ValueError, match=r"not a ResnetGenerator state dict of the inferred config.*model.4.weight"):
        pix2pix.convert_resnet(wrong)
    with pytest.raises(ValueError, match="every key must start with 'model.model.'"):
        pix2pix.convert_unet(resnet)
    unet = UnetGenerator(UnetGeneratorConfig(ngf=2, num_downs=5)).state_dict()
    with pytest.raises(ValueError, match="unexpected.*model.model.9.weight"):
        pix2pix.convert_unet({**unet, "model.model.9.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="expected a 4-D tensor at 'net.0.weight'"):
        pix2pix.convert_pixel({"net.2.weight": torch.zeros(4, 2, 1, 1)})
    assert not any(ARCHITECTURES.get(a).detect(broken) for a in OURS)
    with pytest.raises(ValueError, match="no known architecture"):
        ARCHITECTURES.detect(broken)


def test_invalid_configs_are_refused():
    with pytest.raises(ValueError, match="num_downs must be an int in 5..12"):
        UnetGeneratorConfig(num_downs=4)
    with pytest.raises(ValueError, match="norm must be one of"):
        ResnetGeneratorConfig(norm="group")
    with pytest.raises(ValueError, match="n_blocks must be an int >= 0"):
        ResnetGeneratorConfig(n_blocks=-1)
    with pytest.raises(ValueError, match="padding must be one of"):
        ResnetGeneratorConfig(padding="circular")
    with pytest.raises(ValueError, match="ngf must be an int >= 1"):
        UnetGeneratorConfig(ngf=0)


def test_wrong_input_sizes_are_clear_errors():
    unet = UnetGenerator(UnetGeneratorConfig(ngf=2, num_downs=5)).eval()
    with pytest.raises(ValueError, match=r"multiples of 32 and at least 32, got 40x64; pad to 64x64"):
        unet(torch.zeros(1, 3, 40, 64))
    resnet = ResnetGenerator(ResnetGeneratorConfig(ngf=2, n_blocks=1)).eval()
    with pytest.raises(ValueError, match=r"expects \[B, 3, H, W\]"):
        resnet(torch.zeros(1, 4, 16, 16))
