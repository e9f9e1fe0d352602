"""Fast neural style training: the perceptual loss learns, and the export is what GAN Stylize loads."""

import json

import pytest
import torch
from gradients import gradient_folder
from PIL import Image

from models import stylize, weights
from models.archs.transformer_net import TransformerNet, TransformerNetConfig
from models.archs.vgg import IMAGENET_MEAN, VGG16Features
from models.train.data import load_images
from models.train.engine import RunOptions, Trainer
from models.train.style import (
    OUTPUT_GAIN,
    StyleSettings,
    StyleTask,
    channel_stats,
    gram,
    init_output,
    lowpass,
    shrink,
    total_variation,
)
from nodes.train.cli import main as train_cli

pytestmark = pytest.mark.unit

TINY = TransformerNetConfig(widths=(4, 8, 8), residual_blocks=1)


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return gradient_folder(tmp_path_factory.mktemp("photos"), count=4, size=(40, 48))


@pytest.fixture(scope="module")
def loss_net():
    """A randomly initialised VGG-16 (the real weights are not needed to test the mechanics)."""
    torch.manual_seed(0)
    return VGG16Features("max", last="relu4_3").requires_grad_(False).eval()


def _stripes(size=48):
    """A strongly textured style: red/blue diagonal stripes."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    on = (((x + y) // 4) % 2).float()
    return torch.stack([on, 0.2 * torch.ones_like(on), 1 - on])[None]


def test_gram_and_total_variation_values():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    assert torch.allclose(gram(f), torch.tensor([[[30.0 / 4]]]))
    two = torch.stack([torch.ones(2, 2), torch.zeros(2, 2)])[None]
    assert torch.allclose(gram(two), torch.tensor([[[0.5, 0.0], [0.0, 0.0]]]))  # 4 / (C * H * W = 8)
    assert total_variation(torch.ones(1, 3, 5, 5)).item() == 0.0
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2
    assert total_variation(checker.float()[None, None]).item() == pytest.approx(2.0)


def test_training_starts_from_the_mean_colour_not_black(photos, loss_net):
    """The default init outputs ~0 (black) with a sub-grey-level spread: short runs then stay dark and striped."""
    task = StyleTask(StyleSettings(crop=32), load_images(photos, min_side=16), _stripes(), loss_net)
    torch.manual_seed(0)
    net = task.networks()["G"]
    torch.manual_seed(0)
    plain = TransformerNet(task.settings.net)
    photo = _rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        out, ref = net(photo), plain(photo)
    assert ref.abs().mean() < 2.0  # what an uninitialised output layer gives: black
    means = out.mean(dim=(0, 2, 3))
    assert torch.allclose(means, torch.tensor(IMAGENET_MEAN) * 255, atol=4.0), means
    assert 3.0 < out.std().item() < 40.0  # a visible spread of grey levels, not noise over the whole range
    assert torch.allclose(out - out.mean(dim=(0, 2, 3), keepdim=True),
                          OUTPUT_GAIN * (ref - ref.mean(dim=(0, 2, 3), keepdim=True)), atol=1e-2)
    assert init_output(plain) is plain and plain.deconv3.conv2d.bias.tolist() == pytest.approx(
        [m * 255 for m in IMAGENET_MEAN])


def test_loss_decreases_on_a_fixed_batch(photos, loss_net):
    settings = StyleSettings(batch_size=2, crop=32, lr=5e-2, net=TINY)
    task = StyleTask(settings, load_images(photos, min_side=16), _stripes(), loss_net)
    torch.manual_seed(0)
    net = task.networks()["G"]
    optimizer = task.optimizers({"G": net})["G"]
    batch = task.make_batch(torch.Generator().manual_seed(1))
    totals = []
    for _ in range(12):
        terms = task.losses(net, batch)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        totals.append(terms["total"].item())
    assert totals[-1] < 0.7 * totals[0], totals
    assert set(terms) == {"content", "style", "tv", "lowpass", "total"} and terms["tv"].item() > 0.0
    assert terms["total"].item() == pytest.approx(sum(v.item() for k, v in terms.items() if k != "total"), rel=1e-5)


def test_training_exports_a_model_fast_style_runs(tmp_path, photos, loss_net):
    settings = StyleSettings(batch_size=2, crop=32, net=TINY, tv_weight=1.0)
    task = StyleTask(settings, load_images(photos, min_side=16), _stripes(), loss_net, style_name="stripes.png")
    options = RunOptions(out=tmp_path / "s.safetensors", steps=3, log_every=1, checkpoint_every=3,
                         preview_every=3, progress=False)
    out = Trainer(task, options).run()
    loaded = weights.load(out)
    assert (loaded.arch, loaded.task, loaded.config) == ("transformer_net", "stylize", TINY)
    assert loaded.provenance["task_settings"]["style"] == {"name": "stripes.png", "size": [48, 48]}
    rows = [json.loads(line) for line in (tmp_path / "s.metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["tv"] > 0 for r in rows)
    image = _rand(1, 3, 30, 42)
    styled = stylize.fast_style(loaded, image)
    assert styled.shape == image.shape and 0 <= styled.min() and styled.max() <= 1
    assert (tmp_path / "s.previews" / "step_0000003.png").is_file()


def _bias_free_vgg():
    """A random VGG-16 without biases: scaling conv1_1's weights by k scales every feature by k."""
    torch.manual_seed(0)
    net = VGG16Features("max", last="relu4_3").requires_grad_(False).eval()
    for name, module in net.named_children():
        if name.startswith("conv"):
            module.bias.zero_()
    return net


@pytest.mark.parametrize("style_loss", ["gram", "meanstd"])
def test_relative_terms_do_not_depend_on_the_loss_networks_feature_scale(photos, style_loss):
    data = load_images(photos, min_side=16)
    batch = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    net = TransformerNet(TINY)
    results = {}
    for relative in (False, True):
        for scale in (1.0, 10.0):
            vgg = _bias_free_vgg()
            vgg.conv1_1.weight.mul_(scale)
            settings = StyleSettings(crop=32, net=TINY, style_loss=style_loss, relative=relative)
            terms = StyleTask(settings, data, _stripes(), vgg).losses(net, batch)
            results[relative, scale] = (terms["content"].item(), terms["style"].item())
    for i in range(2):  # relative: the same numbers; absolute: content x 100, style x 1e4 (Gram) or x 100 (stats)
        assert results[True, 10.0][i] == pytest.approx(results[True, 1.0][i], rel=1e-3)
    assert results[False, 10.0][0] == pytest.approx(100 * results[False, 1.0][0], rel=1e-3)
    power = 1e4 if style_loss == "gram" else 1e2
    assert results[False, 10.0][1] == pytest.approx(power * results[False, 1.0][1], rel=1e-3)


def test_meanstd_statistics_layer_weights_and_lowpass_anchor(photos, loss_net):
    f = torch.tensor([[1.0, 3.0], [5.0, 7.0]]).view(1, 1, 2, 2)
    assert torch.allclose(channel_stats(f), torch.tensor([[4.0, f.std().item()]]))
    data = load_images(photos, min_side=16)
    batch = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    net = TransformerNet(TINY)
    only_deep = StyleTask(StyleSettings(crop=32, net=TINY, layer_weights=(0, 0, 0, 1)), data, _stripes(), loss_net)
    all_layers = StyleTask(StyleSettings(crop=32, net=TINY), data, _stripes(), loss_net)
    deep, every = only_deep.losses(net, batch)["style"].item(), all_layers.losses(net, batch)["style"].item()
    assert 0 < deep < every
    anchored = StyleTask(StyleSettings(crop=32, net=TINY, lowpass_weight=2.0, relative=False), data, _stripes(),
                         loss_net)
    terms = anchored.losses(net, batch)
    with torch.no_grad():
        out = net(batch * 255) / 255
    expected = 2.0 * torch.nn.functional.mse_loss(lowpass(out), lowpass(batch))
    assert terms["lowpass"].item() == pytest.approx(expected.item(), rel=1e-4)
    assert terms["total"].item() == pytest.approx(sum(v.item() for k, v in terms.items() if k != "total"), rel=1e-5)
    assert lowpass(torch.ones(1, 3, 20, 20)).allclose(torch.ones(1, 3, 20, 20))  # flat stays flat
    checker = ((torch.arange(20)[:, None] + torch.arange(20)[None, :]) % 2).float().expand(1, 3, 20, 20)
    assert lowpass(checker)[..., 8:12, 8:12].std() < 0.01  # a pixel checkerboard is gone


def test_transpose_turns_a_random_half_of_the_crops(photos, loss_net):
    data = load_images(photos, min_side=16)
    plain = StyleTask(StyleSettings(crop=32, batch_size=8, transpose=False), data, _stripes(), loss_net)
    turned = StyleTask(StyleSettings(crop=32, batch_size=8, transpose=True), data, _stripes(), loss_net)
    a, b = plain.make_batch(torch.Generator().manual_seed(5)), turned.make_batch(torch.Generator().manual_seed(5))
    same = [torch.equal(x, y) for x, y in zip(a, b, strict=True)]
    swapped = [torch.equal(x.transpose(-1, -2), y) for x, y in zip(a, b, strict=True)]
    assert all(s or t for s, t in zip(same, swapped, strict=True))
    assert 0 < sum(swapped) < 8 and 0 < sum(same) < 8


def test_downsampled_style_term_does_not_reward_pixel_scale_patterns(photos, loss_net):
    """A pixel checkerboard over the output moves the full-size style term a lot, the shrunk one hardly."""
    data = load_images(photos, min_side=16)
    crops = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(6)) * 0.5 + 0.25
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2).float() * 0.4 - 0.2
    change = {}
    for factor in (1, 2):
        settings = StyleSettings(crop=64, style_loss="meanstd", relative=True, style_downsample=factor)
        task = StyleTask(settings, data, _stripes(64), loss_net)
        plain = task.losses(lambda x: x, crops)["style"].item()
        patterned = task.losses(lambda x: x + checker * 255.0, crops)["style"].item()
        change[factor] = abs(patterned - plain) / plain
    assert change[2] < 0.1 * change[1], change
    assert shrink(torch.ones(1, 3, 20, 20), 2).shape == (1, 3, 10, 10) and shrink(crops, 1) is crops


def test_symmetric_style_term_scores_both_orientations_alike(photos, loss_net):
    """With `symmetric`, against a style image equal to its transpose, an output and its transpose score the same
    style term; without it the loss network's own orientation bias tells them apart (what lets streaks of one
    orientation win)."""
    data = load_images(photos, min_side=16)
    generator = torch.Generator().manual_seed(8)
    base = _stripes(64) * 0.5 + torch.rand(1, 3, 64, 64, generator=generator) * 0.5
    style = (base + base.transpose(-1, -2)) / 2
    crops = torch.rand(2, 3, 64, 64, generator=generator)
    streaks = (torch.arange(64) % 6 < 3).float().view(1, 1, 64, 1) * 0.6 + 0.2  # horizontal bands
    out = (crops * 0.3 + streaks).clamp(0, 1)
    scores = {}
    for symmetric in (False, True):
        settings = StyleSettings(crop=64, style_loss="meanstd", symmetric=symmetric)
        task = StyleTask(settings, data, style, loss_net)
        assert task.views() == ((False, True) if symmetric else (False,))
        along, across = (task.losses(lambda _, y=y: y * 255.0, crops)["style"].item()
                         for y in (out, out.transpose(-1, -2)))
        scores[symmetric] = (along, across)
    assert scores[True][0] == pytest.approx(scores[True][1], rel=1e-4)
    assert abs(scores[False][0] - scores[False][1]) > 1e-3 * scores[False][0]
    assert scores[True][0] == pytest.approx(sum(scores[False]) / 2, rel=1e-4)  # each orientation at half weight


def test_equivariance_term_is_zero_only_for_a_network_without_a_preferred_orientation(photos, loss_net):
    data = load_images(photos, min_side=16)
    task = StyleTask(StyleSettings(crop=64, equivariance=2.0), data, _stripes(64), loss_net)
    crops = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    bands = (torch.arange(64) % 4 < 2).float().view(1, 1, 64, 1) * 40.0  # horizontal streaks, whatever the input
    assert task.losses(lambda x: x, crops)["equivariance"].item() == 0.0
    streaky = task.losses(lambda x: (x + bands).clamp(0, 255), crops)["equivariance"].item()
    assert streaky > 0.1, streaky
    assert "equivariance" not in StyleTask(StyleSettings(crop=64), data, _stripes(64), loss_net).losses(
        lambda x: x, crops)
    with pytest.raises(ValueError, match="loss weights"):
        StyleSettings(equivariance=-1.0)


def test_init_starts_from_a_trained_file_of_the_same_network(tmp_path, photos, loss_net):
    data = load_images(photos, min_side=16)
    torch.manual_seed(4)
    trained = TransformerNet(TINY)
    path = tmp_path / "start.safetensors"
    weights.save(trained, path, "transformer_net", TINY, "stylize", {})
    task = StyleTask(StyleSettings(crop=32, net=TINY, init=str(path)), data, _stripes(), loss_net)
    net = task.networks()["G"]
    for name, tensor in trained.state_dict().items():
        assert torch.equal(net.state_dict()[name], tensor), name
    assert task.describe()["settings"]["init"] == "start.safetensors"  # no machine path in the provenance
    other = TransformerNetConfig(widths=(4, 8, 16), residual_blocks=1)
    with pytest.raises(ValueError, match="--init"):
        StyleTask(StyleSettings(crop=32, net=other, init=str(path)), data, _stripes(), loss_net).networks()

def test_bad_settings_and_style_images(photos, loss_net):
    data = load_images(photos, min_side=16)
    with pytest.raises(ValueError, match="crop must be a multiple of 4"):
        StyleSettings(crop=30)
    with pytest.raises(ValueError, match="style_loss must be one of"):
        StyleSettings(style_loss="patch")
    with pytest.raises(ValueError, match="layer_weights must be 4 numbers"):
        StyleSettings(layer_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="loss weights >= 0"):
        StyleSettings(lowpass_weight=-1.0)
    with pytest.raises(ValueError, match="style_downsample must be"):
        StyleSettings(crop=32, style_downsample=4)
    with pytest.raises(ValueError, match=r"style image must be \[1, 3, H, W\]"):
        StyleTask(StyleSettings(), data, _stripes()[:, :1], loss_net)  # grayscale
    with pytest.raises(ValueError, match=r"style image must be \[1, 3, H, W\] with H, W >= 16"):
        StyleTask(StyleSettings(), data, _rand(1, 3, 8, 8), loss_net)
    with pytest.raises(ValueError, match=r"style image must be \[1, 3, H, W\]"):
        StyleTask(StyleSettings(), data, _rand(2, 3, 32, 32), loss_net)
    with pytest.raises(ValueError, match="must be in"):
        StyleTask(StyleSettings(), data, _rand(1, 3, 32, 32) * 255, loss_net)
    with pytest.raises(ValueError, match="lacks layers"):
        StyleTask(StyleSettings(), data, _stripes(), VGG16Features("max", last="relu3_3"))


def test_cli_trains_with_a_torchvision_vgg_file(tmp_path, photos):
    vgg_file = tmp_path / "vgg16-test.pth"
    torch.manual_seed(0)
    full = VGG16Features("max").state_dict()  # torchvision's layout: features.<index>.weight
    torch.save({f"features.{_TV[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in full.items()}, vgg_file)
    style = tmp_path / "style.png"
    Image.fromarray((_stripes(64)[0].permute(1, 2, 0) * 255).byte().numpy()).save(style)
    out = tmp_path / "cli.safetensors"
    code = train_cli(["style", "--content", str(photos), "--style", str(style), "--vgg", str(vgg_file),
                      "--out", str(out), "--steps", "2", "--crop", "32", "--batch-size", "1", "--widths", "4,8,8",
                      "--residual-blocks", "1", "--style-size", "40", "--no-progress"])
    assert code == 0
    loaded = weights.load(out)
    assert loaded.config == TINY and loaded.provenance["task_settings"]["loss_network"]["pooling"] == "max"
    tuned = tmp_path / "tuned.safetensors"  # a fine-tune takes the file's network, whatever --widths says
    assert train_cli(["style", "--content", str(photos), "--style", str(style), "--vgg", str(vgg_file),
                      "--out", str(tuned), "--steps", "1", "--crop", "32", "--batch-size", "1", "--init", str(out),
                      "--symmetric", "--equivariance", "1", "--style-size", "40", "--no-progress"]) == 0
    settings = weights.load(tuned).provenance["task_settings"]["settings"]
    assert weights.load(tuned).config == TINY and settings["init"] == "cli.safetensors"
    assert settings["symmetric"] is True and settings["equivariance"] == 1.0
    assert train_cli(["style", "--content", str(photos), "--style", str(tmp_path / "none.png"), "--out", str(out),
                      "--vgg", str(vgg_file), "--no-progress"]) == 2


_TV = {"conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7, "conv3_1": 10, "conv3_2": 12, "conv3_3": 14,
       "conv4_1": 17, "conv4_2": 19, "conv4_3": 21, "conv5_1": 24, "conv5_2": 26, "conv5_3": 28}
