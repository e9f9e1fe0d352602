"""VGG-16 loss network: torchvision and stlpips weight layouts, anti-aliased pooling, clear errors."""

import pytest
import torch
import torch.nn.functional as F

from models import pretrained
from models.archs import vgg
from nodes.harness.env import pack_requirements, repo_root

pytestmark = pytest.mark.unit

needs_stlpips = pytest.mark.skipif(pretrained.stlpips_weights_path() is None, reason="stlpips-pytorch is not installed")


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _torchvision_state(seed=0):
    """A random state dict in torchvision's vgg16 layout (features + a classifier that must be ignored)."""
    g = torch.Generator().manual_seed(seed)
    state, cin, index = {}, 3, 0
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(v, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        state[f"features.{index}.bias"] = torch.randn(v, generator=g) * 0.01
        cin, index = v, index + 2
    state["classifier.0.weight"] = torch.zeros(4, 7)
    return state


def test_layer_names_follow_vgg16():
    assert vgg.LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert len(vgg.CONVS) == 13 and vgg.LAYERS[-1] == "relu5_3" and "pool5" not in vgg.LAYERS
    assert len(vgg.VGG16Features(last="relu4_1")) == vgg.LAYERS.index("relu4_1") + 1


def test_torchvision_layout_reproduces_a_hand_written_forward():
    state = _torchvision_state()
    net = vgg.VGG16Features("max", last="relu2_2")
    net.load_state_dict(vgg.state_from_torchvision(state, "relu2_2"))
    x = _rand(1, 3, 20, 22)
    h = (x - torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
    for i in (0, 2):
        h = F.relu(F.conv2d(h, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1))
    relu1_2 = h
    h = F.max_pool2d(h, 2)
    for i in (5, 7):
        h = F.relu(F.conv2d(h, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1))
    with torch.no_grad():
        got = net.features(x, ["relu2_2", "relu1_2"])
        assert torch.allclose(got["relu1_2"], relu1_2, atol=1e-5)
        assert torch.allclose(got["relu2_2"], h, atol=1e-5)
        assert torch.allclose(net(x), h, atol=1e-5)


def test_blur_pooling_sizes_and_filter():
    assert torch.equal(vgg.binomial_filter(2)[1, 0], torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0)
    pool = vgg.BlurMaxPool(1)
    assert pool(torch.zeros(1, 1, 17, 16)).shape[-2:] == (9, 9)  # floor(n / 2) + 1
    constant = torch.full((1, 1, 8, 8), 0.7)
    assert torch.allclose(pool(constant), torch.full((1, 1, 5, 5), 0.7))  # the blur sums to 1
    net = vgg.VGG16Features("blur", last="relu4_3")
    out = net.features(torch.zeros(1, 3, 64, 64), ["relu2_2", "relu4_3"])
    assert out["relu2_2"].shape == (1, 128, 33, 33) and out["relu4_3"].shape == (1, 512, 9, 9)
    assert not any(k.endswith("filt") for k in net.state_dict())  # rebuilt, never stored


def test_load_vgg16_reads_a_torchvision_file(tmp_path):
    path = tmp_path / "vgg16-test.pth"
    torch.save(_torchvision_state(seed=1), path)
    net = pretrained.load_vgg16(path, last="relu3_3")
    assert net.pooling == "max" and not net.training
    assert not any(p.requires_grad for p in net.parameters())
    assert torch.equal(net.conv3_3.weight, _torchvision_state(seed=1)["features.14.weight"])
    assert pretrained.load_vgg16(path, last="relu3_3") is net  # cached


def test_bad_files_and_layers_are_explained(tmp_path, monkeypatch):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, path)
    with pytest.raises(ValueError, match="not a VGG-16 file: expected torchvision keys"):
        pretrained.read_vgg16_state(path)
    state = _torchvision_state()
    state["features.5.weight"] = torch.zeros(128, 32, 3, 3)
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match=r"conv2_1.weight: expected shape \(128, 64, 3, 3\)"):
        pretrained.read_vgg16_state(tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="unknown or cut-off VGG-16 layers"):
        vgg.VGG16Features(last="relu2_2").features(torch.zeros(1, 3, 8, 8), ["relu3_1"])
    with pytest.raises(ValueError, match="pooling must be one of"):
        vgg.VGG16Features("avg")


def test_no_vgg_available_names_both_options(monkeypatch):
    monkeypatch.setattr(pretrained, "stlpips_weights_path", lambda: None)
    with pytest.raises(FileNotFoundError) as info:
        pretrained.read_vgg16_state(None)
    assert "stlpips-pytorch==0.0.2" in str(info.value) and "--vgg PATH" in str(info.value)
    assert "vgg16-" in str(info.value)


def test_the_train_extra_carries_stlpips_and_the_harness_installs_it():
    requirements = pack_requirements(repo_root() / "pyproject.toml")
    assert pretrained.STLPIPS_REQUIREMENT in requirements


@needs_stlpips
def test_real_stlpips_vgg16_is_anti_aliased_and_shift_tolerant():
    net = pretrained.load_vgg16()
    assert net.pooling == "blur"
    assert len([m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]) == 13
    assert len([m for m in net.modules() if isinstance(m, vgg.BlurMaxPool)]) == 4
    assert sum(p.numel() for p in net.parameters()) == 14_714_688  # VGG-16's conv parameters
    # The point of the anti-aliased network: deep features change less under a 1 px shift than the
    # same weights with plain max pooling give.
    plain = vgg.VGG16Features("max", "relu5_3")
    plain.load_state_dict(net.state_dict())
    x = _rand(1, 3, 97, 97, seed=3)
    x = F.avg_pool2d(F.interpolate(x, scale_factor=4, mode="bilinear"), 4)  # natural-ish smooth image
    a, b = x[..., :96, :96], x[..., 1:, 1:]

    def change(model):
        with torch.no_grad():
            fa, fb = model(a).flatten(), model(b).flatten()
        return 1 - F.cosine_similarity(fa, fb, dim=0).item()

    assert change(net) < change(plain)
