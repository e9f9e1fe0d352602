"""Fast neural style TransformerNet: the public checkpoints (current and pre-0.4) load and reproduce."""


import pytest
import torch
from reference import FIXTURES
from safetensors.torch import load_file

from models import checkpoint, weights
from models.archs import transformer_net
from models.archs.transformer_net import TransformerNet, TransformerNetConfig

pytestmark = pytest.mark.unit

FILES = ("fast_style_transformernet.pth", "fast_style_transformernet_legacy.pth")
# Outputs are on the 0..255 scale: the tolerance is the [-1, 1] fixtures' 1e-5 per 2 units scaled to
# 255 (float32 sums in another order on another CPU: 0.0 on the AVX-512 machine that made the
# fixture, 6.6e-4 on an AVX2-only one).
TOLERANCE = 255 * 0.5e-5


@pytest.mark.parametrize("name", FILES)
def test_public_checkpoint_reproduces_reference_output(name):
    io = load_file(FIXTURES / "fast_style_transformernet.io.safetensors")
    loaded = weights.load(FIXTURES / name)
    assert loaded.arch == "transformer_net" and loaded.task == "stylize"
    assert loaded.config == TransformerNetConfig()
    with torch.no_grad():
        out = loaded.module(io["input"])
    assert (out - io["output"]).abs().max().item() <= TOLERANCE


def test_legacy_running_stats_are_dropped_and_stay_off():
    legacy = checkpoint.read_foreign(FIXTURES / "fast_style_transformernet_legacy.pth")
    current = checkpoint.read_foreign(FIXTURES / "fast_style_transformernet.pth")
    assert len(legacy) - len(current) == 30
    _, converted = transformer_net.convert(legacy)
    assert sorted(converted) == sorted(current)
    assert all(torch.equal(converted[k], current[k]) for k in current)
    module = weights.load(FIXTURES / "fast_style_transformernet_legacy.pth").module
    norms = [m for m in module.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(norms) == 15
    assert all(m.affine and not m.track_running_stats and m.running_mean is None for m in norms)


def test_converted_file_gives_the_same_output(tmp_path):
    io = load_file(FIXTURES / "fast_style_transformernet.io.safetensors")
    path = weights.convert(FIXTURES / "fast_style_transformernet_legacy.pth", tmp_path / "style.safetensors")
    loaded = weights.load(path)
    assert loaded.arch == "transformer_net"
    assert loaded.provenance == {"converted_from": "fast_style_transformernet_legacy.pth"}
    with torch.no_grad():
        assert (loaded.module(io["input"]) - io["output"]).abs().max().item() <= TOLERANCE


def test_detect_reads_a_smaller_variant_from_shapes():
    config = TransformerNetConfig(widths=(4, 6, 8), residual_blocks=3)
    state = TransformerNet(config).state_dict()
    assert transformer_net.detect(state)
    assert transformer_net.convert(state)[0] == config


def test_detect_refuses_near_misses():
    state = TransformerNet(TransformerNetConfig(widths=(4, 6, 8), residual_blocks=2)).state_dict()
    missing = {k: v for k, v in state.items() if k != "res2.in2.bias"}
    extra = {**state, "res1.in1.num_batches_tracked": torch.tensor(0)}
    wrong = {**state, "in2.weight": torch.zeros(7)}
    for bad in (missing, extra, wrong, {"conv1.conv2d.weight": torch.zeros(4, 3, 9, 9)}):
        assert not transformer_net.detect(bad)


def test_output_keeps_size_for_multiples_of_four():
    module = TransformerNet(TransformerNetConfig(widths=(4, 6, 8), residual_blocks=1)).eval()
    with torch.no_grad():
        assert module(torch.rand(1, 3, 20, 36) * 255).shape == (1, 3, 20, 36)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="widths must be three ints"):
        TransformerNetConfig(widths=(4, 8))
    with pytest.raises(ValueError, match="residual_blocks must be an int >= 1"):
        TransformerNetConfig(residual_blocks=0)
