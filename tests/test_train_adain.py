"""AdaIN decoder training: either encoder, the losses learn, and the export is what GAN Style Transfer loads."""

import pytest
import torch
from PIL import Image

from models import stylize, weights
from models.archs import adain
from models.archs.vgg import VGG16Features
from models.train.adain import AdaINSettings, AdaINTask, encoder_weights, style_loss
from models.train.data import load_images
from models.train.engine import RunOptions, Trainer
from nodes.train.cli import main as train_cli

pytestmark = pytest.mark.unit


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _folder(root, kind):
    root.mkdir()
    for i in range(3):
        y, x = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 56), indexing="ij")
        if kind == "photos":
            rgb = torch.stack([x, y, (x + y) / 2 * (i / 2)])
        else:  # stripes in a different colour per painting
            on = ((torch.arange(56)[None, :] + torch.arange(48)[:, None]) // (3 + i) % 2).float()
            rgb = torch.stack([on, 0.3 * on + 0.2 * i, 1 - on])
        Image.fromarray((rgb.permute(1, 2, 0) * 255).byte().numpy()).save(root / f"{kind}{i}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("adain")
    return load_images(_folder(base / "photos", "photos"), min_side=16), load_images(
        _folder(base / "paintings", "paintings"), min_side=16)


def _vgg16_state(pooling="max"):
    torch.manual_seed(0)
    return VGG16Features(pooling, last="relu4_1").state_dict()


def test_style_loss_is_zero_for_equal_statistics_and_positive_otherwise():
    feats = [_rand(2, 4, 8, 8, seed=i) for i in range(4)]
    assert style_loss(feats, feats).item() == 0.0
    shifted = [f + 0.5 for f in feats]  # same std, means differ by 0.5: 4 layers x 0.25
    assert style_loss(shifted, feats).item() == pytest.approx(1.0, rel=1e-5)


def _fit_decoder(task, batch, steps):
    """A fresh decoder (seed 0) trained `steps` Adam steps on one batch; returns it and each step's loss terms."""
    torch.manual_seed(0)
    decoder = task.networks()["decoder"]
    optimizer = task.optimizers({"decoder": decoder})["decoder"]
    history = []
    for _ in range(steps):
        terms = task.losses(decoder, batch["content"], batch["style"])
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        history.append(terms)
    return decoder, history


@pytest.mark.parametrize("encoder,decoder", [("vgg16_blurpool", "reference"), ("vgg16", "reference"),
                                             ("vgg16_blurpool", "skip"), ("vgg16", "skip")])
def test_loss_decreases_on_a_fixed_batch(data, encoder, decoder):
    pooling = "blur" if encoder == "vgg16_blurpool" else "max"
    settings = AdaINSettings(batch_size=2, crop=32, lr=3e-4, encoder=encoder, decoder=decoder)
    task = AdaINTask(settings, *data, _vgg16_state(pooling))
    batch = task.make_batch(torch.Generator().manual_seed(2))
    _, steps = _fit_decoder(task, batch, 10 if decoder == "reference" else 15)
    totals = [terms["total"].item() for terms in steps]
    assert totals[-1] < 0.7 * totals[0], totals
    assert all(p.grad is None for p in task.encoder(torch.device("cpu")).parameters())  # the encoder stays fixed


def test_training_exports_an_adain_model_that_stylises_any_size(tmp_path, data):
    state = _vgg16_state("blur")
    task = AdaINTask(AdaINSettings(batch_size=2, crop=32, encoder="vgg16_blurpool"), *data, state, "test.pth")
    options = RunOptions(out=tmp_path / "a.safetensors", steps=2, log_every=1, checkpoint_every=2,
                         preview_every=2, progress=False)
    out = Trainer(task, options).run()
    loaded = weights.load(out)
    expected = ("adain", "stylize", adain.AdaINConfig("vgg16_blurpool", "skip"))
    assert (loaded.arch, loaded.task, loaded.config) == expected
    assert torch.equal(loaded.module.encoder.conv4_1.weight, state["conv4_1.weight"])  # the encoder is untouched
    assert loaded.provenance["task_settings"]["encoder_weights"] == "test.pth"
    assert "encoder" not in torch.load(tmp_path / "a.ckpt.pt", weights_only=True)["nets"]  # only the decoder trains
    content, style = _rand(2, 3, 37, 45), _rand(1, 1, 20, 33, seed=1)
    out = stylize.adain_style(loaded, content, [style], alpha=0.5)
    assert out.shape == (2, 3, 37, 45) and 0 <= out.min() and out.max() <= 1
    with torch.no_grad():  # the module's forward crops the anti-aliased encoder's larger output back
        assert loaded.module(content, style.expand(-1, 3, -1, -1)).shape == (2, 3, 37, 45)
    assert (tmp_path / "a.previews" / "step_0000002.png").is_file()


def test_the_reference_vgg19_encoder_trains_too(tmp_path, data):
    torch.manual_seed(1)
    reference = adain.AdaIN(adain.AdaINConfig()).encoder.state_dict()
    full = {**reference, "32.weight": torch.zeros(512, 512, 3, 3), "32.bias": torch.zeros(512)}
    for key in [k for k in full if int(k.split(".")[0]) > 30]:
        full.pop(key)
    path = tmp_path / "vgg_normalised.pth"
    torch.save(full, path)
    name, state, source = encoder_weights(str(path))
    assert (name, source) == ("vgg19_normalised", "vgg_normalised.pth")
    assert [f.shape[1] for f in adain.AdaIN(adain.AdaINConfig()).encode_levels(_rand(1, 3, 32, 32))] == [
        64, 128, 256, 512]
    task = AdaINTask(AdaINSettings(batch_size=1, crop=32, encoder=name, decoder="reference"), *data, state, source)
    out = Trainer(task, RunOptions(out=tmp_path / "v19.safetensors", steps=1, progress=False)).run()
    assert weights.load(out).config == adain.AdaINConfig("vgg19_normalised")


def test_bad_encoder_files_and_settings(tmp_path, data):
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not an AdaIN vgg_normalised state dict"):
        encoder_weights(str(tmp_path / "other.pth"))
    with pytest.raises(ValueError, match="not both"):
        encoder_weights(str(tmp_path / "other.pth"), str(tmp_path / "other.pth"))
    with pytest.raises(ValueError, match="do not fit encoder 'vgg19_normalised'"):
        AdaINTask(AdaINSettings(encoder="vgg19_normalised", decoder="reference"), *data, _vgg16_state())
    with pytest.raises(ValueError, match="encoder must be one of"):
        AdaINSettings(encoder="resnet")
    with pytest.raises(ValueError, match="crop must be a multiple of 8"):
        AdaINSettings(crop=36)
    with pytest.raises(ValueError, match="decoder must be one of"):
        AdaINSettings(decoder="unet")
    with pytest.raises(ValueError, match="skip decoder needs a VGG-16 encoder"):
        AdaINSettings(encoder="vgg19_normalised", decoder="skip")


def _torchvision_vgg16_file(path):
    """Random VGG-16 features under torchvision's key names."""
    torch.manual_seed(0)
    full = VGG16Features("max").state_dict()
    index = {"conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7, "conv3_1": 10, "conv3_2": 12, "conv3_3": 14,
             "conv4_1": 17, "conv4_2": 19, "conv4_3": 21, "conv5_1": 24, "conv5_2": 26, "conv5_3": 28}
    torch.save({f"features.{index[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in full.items()}, path)
    return path


def test_cli_trains_with_a_vgg16_file(tmp_path, data):
    _torchvision_vgg16_file(tmp_path / "vgg16-x.pth")
    content, style = data[0].root, data[1].root
    out = tmp_path / "cli.safetensors"
    args = ["adain", "--content", str(content), "--style", str(style), "--vgg", str(tmp_path / "vgg16-x.pth"),
            "--out", str(out), "--steps", "1", "--crop", "32", "--batch-size", "1", "--no-progress"]
    assert train_cli(args) == 0
    assert weights.load(out).config == adain.AdaINConfig("vgg16", "skip")  # the default decoder for a VGG-16
    assert train_cli([*args[:5], "--vgg", str(tmp_path / "missing.pth"), *args[7:]]) == 2  # a clear error
    assert train_cli([*args, "--decoder", "reference"]) == 0
    assert weights.load(out).config == adain.AdaINConfig("vgg16", "reference")


def test_cli_holds_out_whole_content_sources(tmp_path, data, caplog, capsys):
    _torchvision_vgg16_file(tmp_path / "vgg16.pth")
    content = tmp_path / "content"
    content.mkdir()
    _folder(content / "seen", "photos")
    _folder(content / "unseen", "photos")
    args = ["adain", "--content", str(content), "--style", str(data[1].root), "--vgg", str(tmp_path / "vgg16.pth"),
            "--out", str(tmp_path / "h.safetensors"), "--steps", "1", "--crop", "32", "--batch-size", "1",
            "--no-progress"]
    with caplog.at_level("INFO", logger="nodes.train.adain"):
        assert train_cli([*args, "--holdout-sources", "unseen"]) == 0
    assert "training on 3 content images" in caplog.text  # the 3 of seen/, none of unseen/
    assert train_cli([*args, "--holdout-sources", "elsewhere"]) == 2
    assert "held-out sources ['elsewhere']" in capsys.readouterr().err


def test_identity_term_reconstructs_the_content_and_is_off_by_default(data):
    state = _vgg16_state("blur")
    plain = AdaINTask(AdaINSettings(batch_size=2, crop=32, decoder="reference"), *data, state)
    torch.manual_seed(0)
    batch = plain.make_batch(torch.Generator().manual_seed(3))
    assert "identity" not in plain.losses(plain.networks()["decoder"], batch["content"], batch["style"])
    task = AdaINTask(AdaINSettings(batch_size=2, crop=32, lr=3e-4, identity_weight=1.0, decoder="reference"),
                     *data, state)
    decoder, steps = _fit_decoder(task, batch, 15)
    identity, terms = [t["identity"].item() for t in steps], steps[-1]
    assert terms["total"].item() == pytest.approx(sum(terms[k].item() for k in ("content", "style", "identity")))
    assert identity[-1] < 0.7 * identity[0], identity
    # the identity term is the L1 error of alpha 0 (decoder of the content's own features)
    model = task.model(decoder)
    with torch.no_grad():
        recon = model.decode(model.decoder_inputs(batch["content"]))[..., :32, :32]
    assert (recon - batch["content"]).abs().mean().item() == pytest.approx(identity[-1], rel=0.5)
    with pytest.raises(ValueError, match="loss weights >= 0"):
        AdaINSettings(identity_weight=-1)


def test_anti_aliased_encoder_is_scaled_and_its_decoder_output_realigned():
    torch.manual_seed(0)
    model = adain.AdaIN(adain.AdaINConfig("vgg16_blurpool")).eval()
    x = _rand(1, 3, 64, 64)
    with torch.no_grad():
        raw = model.encoder(x)
        assert torch.allclose(model.encode(x), 20.0 * raw)
        assert torch.allclose(model.encode_levels(x)[-1], model.encode(x))
        assert raw.shape[-1] == 9  # 64 -> 33 -> 17 -> 9: floor(n / 2) + 1 per pooling
        assert model.decoder(raw).shape[-1] == 72 and model.decode([raw]).shape[-1] == 72 - 7
    reference = adain.AdaIN(adain.AdaINConfig())
    assert reference.feature_scale == 1.0 and reference.decode_offset == 0  # the public layout is untouched


@pytest.mark.parametrize("encoder", ["vgg16_blurpool", "vgg16"])
def test_skip_decoder_reads_three_levels_and_covers_any_input(encoder):
    torch.manual_seed(0)
    model = adain.AdaIN(adain.AdaINConfig(encoder, "skip")).eval()
    assert sum(p.numel() for p in model.decoder.parameters()) == 1383811
    for size in (32, 40, 72):
        x = _rand(1, 3, size, size + 16)
        with torch.no_grad():
            levels = model.decoder_inputs(x)
            assert [f.shape[1] for f in levels] == [128, 256, 512]
            out = model.decode(levels)
            assert out.shape[-2] >= size and out.shape[-1] >= size + 16
            assert model(x, x).shape == x.shape


def test_skip_decoder_realigns_the_anti_aliased_grids():
    """A feature put at one coarse cell comes out where that cell sits in the image: with the blur pooling's
    one-cell shift per upsampling, a relu4_1 cell i covers px 8i - 3.5 (not 8i + 3.5)."""
    decoder = adain.SkipDecoder(shift=1)
    for module in decoder.modules():  # each block passes channel 0 through, centre tap only
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
            module.weight.data[0, 0, 1, 1] = 1.0
    relu4 = torch.zeros(1, 512, 9, 9)
    relu4[0, 0, 4, 4] = 1.0  # cell 4: px 32 - 3.5 = 28.5, so px 25..32 (8 wide, centred at 28.5)
    levels = [torch.zeros(1, 128, 33, 33), torch.zeros(1, 256, 17, 17), relu4]
    out = decoder(levels)[0, 0]
    rows = out.sum(dim=1).nonzero().flatten().tolist()
    assert rows == list(range(25, 33))
