"""AdaIN: the reference encoder/decoder pair loads as one model and reproduces every saved tensor."""

import json

import pytest
import torch
from reference import FIXTURES
from safetensors.torch import load_file

from models import checkpoint, weights
from models.archs import adain

pytestmark = pytest.mark.unit

VGG, DECODER = FIXTURES / "adain_vgg.pth", FIXTURES / "adain_decoder.pth"


@pytest.fixture(scope="module")
def model():
    return weights.load_adain_pair(VGG, DECODER)


@pytest.fixture(scope="module")
def io():
    return load_file(FIXTURES / "adain_vgg_decoder.io.safetensors")


def test_features_adain_and_output_match_the_reference(model, io):
    m = model.module
    assert all(p.dtype == torch.float32 for p in m.parameters())  # the float16 files are upcast
    with torch.no_grad():
        content_feat, style_feat = m.encode(io["content"]), m.encode(io["style"])
        adain_feat = adain.adaptive_instance_norm(content_feat, *adain.mean_std(style_feat))
        decoded = m.decode([io["adain_feat"]])
        full = m(io["content"], io["style"], alpha=float(io["alpha"]))
    for name, got in [("content_feat", content_feat), ("style_feat", style_feat), ("adain_feat", adain_feat),
                      ("output", decoded), ("output", full)]:
        assert (got - io[name]).abs().max().item() <= 1e-4, name  # measured 0.0 on CPU


def test_convert_pair_writes_one_file_of_ours(tmp_path, io):
    path = weights.convert_adain_pair(VGG, DECODER, tmp_path / "adain.safetensors")
    loaded = weights.load(path)
    assert loaded.arch == "adain" and loaded.task == "stylize" and loaded.config == adain.AdaINConfig()
    assert loaded.provenance == {"converted_from": ["adain_vgg.pth", "adain_decoder.pth"]}
    assert {k.split(".")[0] for k in load_file(path)} == {"encoder", "decoder"}
    with torch.no_grad():
        assert (loaded.module(io["content"], io["style"]) - io["output"]).abs().max().item() <= 1e-4


def test_full_vgg_normalised_keys_past_relu4_1_are_ignored():
    vgg = checkpoint.read_foreign(VGG)
    listed = json.loads((FIXTURES / "adain_vgg_decoder.json").read_text())["real_checkpoint_extra_keys"]
    full = {**vgg, **{e["key"]: torch.zeros(e["shape"], dtype=torch.float16) for e in listed}}
    assert adain.is_vgg(full) and adain.detect(full)
    config, state = adain.pair_state(full, checkpoint.read_foreign(DECODER))
    assert config == adain.AdaINConfig()
    assert sorted(state) == sorted(adain.AdaIN(config).state_dict())


def test_one_file_with_both_parts_loads_through_the_generic_loader(tmp_path, model, io):
    path = tmp_path / "adain_both.pth"
    torch.save(model.module.state_dict(), path)
    loaded = weights.load(path)
    assert loaded.arch == "adain"
    with torch.no_grad():
        assert torch.equal(loaded.module(io["content"], io["style"]), model.module(io["content"], io["style"]))


@pytest.mark.parametrize("path, part", [(VGG, "VGG encoder"), (DECODER, "decoder")])
def test_a_lone_part_is_refused_with_a_pointer_to_convert_adain_pair(path, part):
    with pytest.raises(ValueError, match=f"only the AdaIN {part}.*convert_adain_pair"):
        weights.load(path)


def test_swapped_files_are_named():
    with pytest.raises(ValueError, match="encoder file is not .*swapped"):
        weights.load_adain_pair(DECODER, VGG)


def test_detect_refuses_a_wrong_shape_or_a_partial_vgg():
    vgg = {k.removeprefix("encoder."): v for k, v in adain.AdaIN(adain.AdaINConfig()).state_dict().items()
           if k.startswith("encoder.")}
    assert adain.is_vgg(vgg)
    assert not adain.detect({**vgg, "29.bias": torch.zeros(256)})
    assert not adain.detect({k: v for k, v in vgg.items() if not k.startswith("29.")})


def test_mean_std_uses_unbiased_variance_plus_eps():
    x = torch.rand(2, 4, 5, 3)
    mean, std = adain.mean_std(x)
    assert mean.shape == std.shape == (2, 4, 1, 1)
    expected = (x.flatten(2).var(dim=2, unbiased=True) + adain.EPS).sqrt()
    assert torch.allclose(std.flatten(2).squeeze(-1), expected)
