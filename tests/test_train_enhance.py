"""Training and scoring the enhance model: it learns, exports what the node loads, reads real pairs, and the
evaluation table compares it honestly with the degraded input and the classical methods."""

import dataclasses
import json
import math

import pytest
import torch
from gradients import gradient, gradient_folder, save_png
from lossnet import random_vgg
from safetensors import safe_open

from models import metrics, weights
from models.archs.enhance import EnhanceConfig
from models.enhance import degrade, enhance
from models.enhance import evaluate as evaluate_enhance
from models.train.data import load_images, load_pairs
from models.train.engine import RunOptions, Trainer
from models.train.enhance import EnhanceSettings, EnhanceTask
from nodes.train.cli import main as train_cli
from nodes.train.enhance import degradation_config

pytestmark = pytest.mark.unit

TINY = EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=16)
NOISE = degrade.DegradeConfig(noise_probability=1.0, noise_sigma=(20.0, 20.0), poisson_probability=0.0,
                              grey_noise_probability=0.0)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Smooth gradients: noise on them is easy to remove, so a few dozen steps must show learning."""
    return gradient_folder(tmp_path_factory.mktemp("photos"), size=(64, 80))


def _train(tmp_path, settings, data, steps):
    options = RunOptions(out=tmp_path / "en.safetensors", steps=steps, log_every=1, checkpoint_every=steps,
                         preview_every=steps, progress=False)
    return Trainer(EnhanceTask(settings, data), options).run()


def test_a_short_run_learns_to_denoise_and_exports_a_loadable_model(tmp_path, photos):
    settings = EnhanceSettings(degradation=NOISE, net=TINY, batch_size=4, crop=32, lr=3e-3, discriminator_width=4)
    out = _train(tmp_path, settings, load_images(photos, min_side=16), steps=90)
    rows = [json.loads(x) for x in (tmp_path / "en.metrics.jsonl").read_text().splitlines()]
    late = rows[-10:]
    assert sum(r["l1"] for r in late) < 0.7 * sum(r["l1_input"] for r in late)  # better than the noisy input
    loaded = weights.load(out)
    assert loaded.arch == "enhance_unet" and loaded.task == "enhance" and loaded.config == TINY
    clean = gradient(64, 80, 2)[None]
    noisy = degrade.degrade(clean, NOISE, seed=5)
    restored = enhance(loaded, noisy)
    assert float(metrics.psnr(restored, clean)) > float(metrics.psnr(noisy, clean)) + 2.0
    assert (tmp_path / "en.previews" / "step_0000090.png").is_file()


def test_real_pairs_from_two_folders_and_side_by_side_images(tmp_path):
    root, sbs = tmp_path / "pairs", tmp_path / "AB"
    for d in (root / "A", root / "B", sbs):
        d.mkdir(parents=True)
    for i in range(3):
        clean = gradient(48, 40, i)
        dark = clean * 0.5
        save_png(dark, root / "A" / f"p{i}.png")
        save_png(clean, root / "B" / f"p{i}.png")
        save_png(torch.cat([dark, clean], dim=2), sbs / f"p{i}.png")
    folders, side = load_pairs(root, min_side=32), load_pairs(sbs, min_side=32)
    assert len(folders) == len(side) == 3
    assert torch.equal(folders.a[1], side.a[1]) and torch.equal(folders.b[1], side.b[1])
    settings = EnhanceSettings(degradation=None, net=TINY, batch_size=2, crop=32, discriminator_width=4)
    batch = EnhanceTask(settings, folders).make_batch(torch.Generator().manual_seed(0))
    x, target = (batch["input"] + 1) / 2, (batch["target"] + 1) / 2
    assert torch.allclose(x, target * 0.5, atol=2 / 255)  # input and target are cropped at the same place
    with pytest.raises(ValueError, match="real pairs need degradation=None"):
        EnhanceTask(dataclasses.replace(settings, degradation=NOISE), side)
    with pytest.raises(ValueError, match="real pairs need degradation=None"):
        EnhanceTask(settings, load_images(sbs, min_side=16))


def test_degradation_overrides_parse_ranges_and_refuse_unknown_fields():
    config = degradation_config("restore", ["noise_sigma=5,50", "jpeg_probability=0", "resize_modes=area"])
    assert config.noise_sigma == (5.0, 50.0) and config.jpeg_probability == 0.0 and config.resize_modes == ("area",)
    assert config.blur_probability == degrade.RESTORE.blur_probability
    both = degradation_config("both", [])
    assert both.colour_probability == degrade.ENHANCE.colour_probability and both.noise_probability > 0
    with pytest.raises(ValueError, match="FIELD one of"):
        degradation_config("restore", ["sharpness=3"])
    with pytest.raises(ValueError, match="noise_sigma"):
        degradation_config("restore", ["noise_sigma=80,90"])


def test_cli_trains_with_a_preset_and_reports_bad_options(tmp_path, photos, capsys):
    out = tmp_path / "cli.safetensors"
    code = train_cli(["enhance", "--data", str(photos), "--out", str(out), "--steps", "2", "--crop", "32",
                      "--batch-size", "2", "--base-channels", "8", "--levels", "1", "--blocks", "1",
                      "--preset", "enhance", "--no-progress"])
    assert code == 0 and weights.load(out).provenance["task_settings"]["settings"]["degradation"]["colour_probability"]
    assert train_cli(["enhance", "--data", str(photos), "--out", str(out), "--degrade", "nope=1"]) == 2
    assert "FIELD one of" in capsys.readouterr().err


def test_evaluation_rows_compare_with_the_input_and_tune_the_classical_methods_by_oracle(photos):
    images = load_images(photos, min_side=16).images[:3]
    identity = {"identity": lambda x: x}
    darker = {"a": lambda x: x * 0.9, "b": lambda x: x * 0.5}
    rows = evaluate_enhance.evaluate_restoration(identity, images, degradations=("noise15", "underexposed"),
                                                 degrader="pack", size=48, resize="bilinear",
                                                 classical={"scale": darker})
    by = {(r.degradation, r.method): r for r in rows}
    assert set(by) == {(d, m) for d in ("noise15", "underexposed") for m in ("degraded input", "identity", "scale")}
    assert by["noise15", "identity"].psnr == pytest.approx(by["noise15", "degraded input"].psnr)
    assert by["noise15", "scale"].parameter == "a"  # x 0.9 hurts less than x 0.5
    noisy = degrade.apply_fixed(metrics.prepare_image(images[0], 48, "bilinear"), "noise15", seed=0)
    assert by["noise15", "degraded input"].psnr < 30 and torch.isfinite(noisy).all()
    table = evaluate_enhance.format_table(rows)
    assert table.count("\n") == len(rows) + 1 and "**" in table
    with pytest.raises(ValueError, match="unknown plain degradations"):
        evaluate_enhance.evaluate_restoration(identity, images, degradations=("fog",))
    with pytest.raises(ValueError, match="unknown pack degradations"):
        evaluate_enhance.evaluate_restoration(identity, images, degradations=("lowlight",), degrader="pack")


def test_auto_contrast_stretches_each_channel_to_the_full_range():
    image = torch.rand(1, 3, 32, 32) * 0.4 + 0.3
    out = evaluate_enhance.auto_contrast(image, 0.0, 1.0)
    for c in range(3):
        assert float(out[0, c].min()) == pytest.approx(0.0, abs=1e-6)
        assert float(out[0, c].max()) == pytest.approx(1.0, abs=1e-6)


def test_init_starts_from_a_saved_model_and_refuses_another_config(tmp_path, photos):
    settings = EnhanceSettings(degradation=NOISE, net=TINY, batch_size=2, crop=32, discriminator_width=4)
    first = weights.load(_train(tmp_path / "a", settings, load_images(photos, min_side=16), steps=3))
    task = EnhanceTask(dataclasses.replace(settings, init=str(tmp_path / "a" / "en.safetensors")),
                       load_images(photos, min_side=16))
    generator = task.networks()["G"]
    for name, tensor in first.module.state_dict().items():
        assert torch.equal(generator.state_dict()[name], tensor), name
    other = dataclasses.replace(settings, net=dataclasses.replace(TINY, base_channels=4),
                                init=str(tmp_path / "a" / "en.safetensors"))
    with pytest.raises(ValueError, match="--init"):
        EnhanceTask(other, load_images(photos, min_side=16)).networks()
    # the noise estimator carries no weights: a fine-tune may switch it
    switched = dataclasses.replace(settings, net=dataclasses.replace(TINY, noise_estimator="blocks"),
                                   init=str(tmp_path / "a" / "en.safetensors"))
    generator = EnhanceTask(switched, load_images(photos, min_side=16)).networks()["G"]
    assert generator.config.noise_estimator == "blocks"
    assert torch.equal(generator.state_dict()["tail.weight"], first.module.state_dict()["tail.weight"])


def test_the_tone_stage_is_added_to_a_trained_restorer_and_trained_alone(tmp_path, photos):
    data = load_images(photos, min_side=16)
    settings = EnhanceSettings(degradation=NOISE, net=TINY, batch_size=2, crop=32, adv_weight=0)
    restorer = weights.load(_train(tmp_path / "a", settings, data, steps=3))
    dark = degrade.DegradeConfig(colour_probability=1.0, exposure_gain=(0.5, 0.5))
    toned = dataclasses.replace(TINY, tone_knots=4)
    tone = EnhanceSettings(degradation=dark, net=toned, batch_size=4, crop=32, adv_weight=0, lr=1e-2, stage="tone",
                           init=str(tmp_path / "a" / "en.safetensors"))
    out = weights.load(_train(tmp_path / "b", tone, data, steps=60))
    assert out.config == toned
    state = out.module.state_dict()
    for name, tensor in restorer.module.state_dict().items():  # the restorer behind the stage is untouched
        assert torch.equal(state[name], tensor), name
    assert any(not torch.equal(t, torch.zeros_like(t)) for n, t in state.items() if n.startswith("tone.out"))
    rows = [json.loads(x) for x in (tmp_path / "b" / "en.metrics.jsonl").read_text().splitlines()]
    late = rows[-10:]
    assert sum(r["l1"] for r in late) < 0.5 * sum(r["l1_input"] for r in late)  # it learnt to brighten
    with pytest.raises(ValueError, match="tone stage"):
        EnhanceSettings(degradation=dark, net=TINY, stage="tone")
    with pytest.raises(ValueError, match="stage must be one of"):
        EnhanceSettings(degradation=dark, net=toned, stage="head")


def test_a_vgg_tone_stage_copies_the_given_encoder_keeps_it_fixed_and_learns_its_head(tmp_path, photos):
    from models.archs.vgg import VGG16Features
    from models.train.enhance import join_tone_stage

    data = load_images(photos, min_side=16)
    settings = EnhanceSettings(degradation=NOISE, net=TINY, batch_size=2, crop=32, adv_weight=0)
    restorer = weights.load(_train(tmp_path / "a", settings, data, steps=2))
    torch.manual_seed(4)
    encoder = VGG16Features("blur", last="relu4_3").requires_grad_(False).eval()  # stands in for stlpips' file
    dark = degrade.DegradeConfig(colour_probability=1.0, exposure_gain=(0.5, 0.5))
    toned = dataclasses.replace(TINY, tone_knots=4, tone_gate=True, tone_encoder="vgg")
    tone = EnhanceSettings(degradation=dark, net=toned, batch_size=4, crop=32, adv_weight=0, lr=1e-2, stage="tone",
                           init=str(tmp_path / "a" / "en.safetensors"))
    task = EnhanceTask(tone, data, tone_vgg=encoder)
    generator = task.networks()["G"]
    trained = {n for n, p in generator.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith("tone.") and not n.startswith("tone.vgg.") for n in trained)
    options = RunOptions(out=tmp_path / "b" / "en.safetensors", steps=40, log_every=1, checkpoint_every=40,
                         preview_every=40, progress=False)
    out = weights.load(Trainer(task, options).run())
    assert out.config == toned
    for name, tensor in encoder.state_dict().items():  # in the file, exactly as given
        assert torch.equal(out.module.tone.vgg.state_dict()[name], tensor), name
    rows = [json.loads(x) for x in (tmp_path / "b" / "en.metrics.jsonl").read_text().splitlines()]
    assert sum(r["l1"] for r in rows[-10:]) < 0.5 * sum(r["l1_input"] for r in rows[-10:])  # it learnt to brighten
    joined = join_tone_stage(restorer, out)
    assert joined.config == toned
    key = "tone.hidden.0.weight"
    assert torch.equal(joined.module.state_dict()[key], out.module.state_dict()[key])
    with pytest.raises(ValueError, match="stlpips"):
        EnhanceTask(tone, data).networks()  # a new VGG stage needs the encoder
    with pytest.raises(ValueError, match="blur pooling"):
        EnhanceTask(tone, data, tone_vgg=VGG16Features("max", last="relu4_3"))
    with pytest.raises(ValueError, match="tone_encoder"):
        dataclasses.replace(TINY, tone_encoder="vgg")  # without a tone stage
    with pytest.raises(ValueError, match="tone_encoder"):
        dataclasses.replace(toned, tone_encoder="resnet")


def test_a_trained_cnn_tone_stage_widened_to_read_the_vgg_too_starts_from_what_it_did(tmp_path, photos):
    from models.archs.enhance import ARCHITECTURE, EnhanceNet
    from models.archs.vgg import VGG16Features

    cnn = dataclasses.replace(TINY, tone_knots=4, tone_gate=True)
    trained = EnhanceNet(cnn).eval()
    torch.nn.init.normal_(trained.tone.out.weight, std=0.05)  # a stage that corrects
    weights.save(trained, tmp_path / "cnn.safetensors", ARCHITECTURE.id, cnn, "enhance")
    torch.manual_seed(5)
    encoder = VGG16Features("blur", last="relu4_3").requires_grad_(False).eval()
    both = dataclasses.replace(cnn, tone_encoder="both")
    dark = degrade.DegradeConfig(colour_probability=1.0, exposure_gain=(0.5, 0.5))
    settings = EnhanceSettings(degradation=dark, net=both, batch_size=2, crop=32, adv_weight=0, stage="tone",
                               init=str(tmp_path / "cnn.safetensors"))
    widened = EnhanceTask(settings, load_images(photos, min_side=16), tone_vgg=encoder).networks()["G"].eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(widened(x, tone_params=True).apply(x), trained(x, tone_params=True).apply(x), atol=1e-6)
        assert (trained(x, tone_params=True).apply(x) - x).abs().mean() > 0.01  # and it did correct
        assert torch.equal(widened.tone.vgg.conv4_3.weight, encoder.conv4_3.weight)
    assert widened.tone.hidden[0].weight.shape[1] == trained.tone.hidden[0].weight.shape[1] + 1024
    assert not any(p.requires_grad for p in widened.tone.vgg.parameters())
    assert all(p.requires_grad for p in widened.tone.features.parameters())  # the CNN keeps learning


def test_a_trained_gate_given_its_own_vgg_reading_starts_from_what_it_did_and_join_carries_it(tmp_path, photos):
    from models.archs.enhance import ARCHITECTURE, EnhanceNet
    from models.archs.vgg import VGG16Features
    from models.train.enhance import join_tone_stage

    cnn = dataclasses.replace(TINY, tone_knots=4, tone_gate=True)
    trained = EnhanceNet(cnn).eval()
    torch.nn.init.normal_(trained.tone.out.weight, std=0.05)  # a stage that corrects
    torch.nn.init.normal_(trained.tone.gate.weight, std=3.0)  # and a gate that differs between photos
    torch.nn.init.constant_(trained.tone.gate.bias, 0.5)
    weights.save(trained, tmp_path / "cnn.safetensors", ARCHITECTURE.id, cnn, "enhance")
    torch.manual_seed(6)
    encoder = VGG16Features("blur", last="relu4_3").requires_grad_(False).eval()
    gated = dataclasses.replace(cnn, tone_gate_encoder="both")
    assert gated.tone_reads == {"cnn", "vgg"} and cnn.tone_reads == {"cnn"}
    dark = degrade.DegradeConfig(colour_probability=1.0, exposure_gain=(0.5, 0.5))
    settings = EnhanceSettings(degradation=dark, net=gated, batch_size=2, crop=32, adv_weight=0, stage="tone",
                               init=str(tmp_path / "cnn.safetensors"))
    widened = EnhanceTask(settings, load_images(photos, min_side=16), tone_vgg=encoder).networks()["G"].eval()
    x = torch.rand(4, 3, 32, 32) * torch.tensor([0.3, 0.8, 1.4, 2.0])[:, None, None, None] - 1  # dark to bright
    with torch.no_grad():
        before, after = trained(x, tone_params=True), widened(x, tone_params=True)
        assert before.gate.max() - before.gate.min() > 0.05
        assert torch.allclose(after.gate, before.gate, atol=1e-6)
        assert torch.allclose(after.apply(x), before.apply(x), atol=1e-6)
    # the curve keeps its CNN reading; the gate's own layer reads the VGG-16 as well
    assert widened.tone.hidden[0].weight.shape == trained.tone.hidden[0].weight.shape
    assert widened.tone.gate_hidden[0].weight.shape[1] == trained.tone.hidden[0].weight.shape[1] + 1024
    assert torch.equal(widened.tone.vgg.conv4_3.weight, encoder.conv4_3.weight)
    assert not any(p.requires_grad for p in widened.tone.vgg.parameters())
    assert all(p.requires_grad for p in widened.tone.gate_hidden.parameters())
    only_gate = EnhanceTask(dataclasses.replace(settings, stage="gate"), load_images(photos, min_side=16),
                            tone_vgg=encoder).networks()["G"]
    assert {n for n, p in only_gate.named_parameters() if p.requires_grad} == {
        "tone.gate_hidden.0.weight", "tone.gate_hidden.0.bias", "tone.gate.weight", "tone.gate.bias"}
    restorer = EnhanceNet(TINY).eval()
    joined = join_tone_stage(weights.LoadedModel(restorer, ARCHITECTURE.id, TINY, "enhance"),
                             weights.LoadedModel(widened, ARCHITECTURE.id, gated, "enhance"))
    assert joined.config == gated
    with torch.no_grad():
        assert torch.equal(joined.module.tone(x).gate, widened.tone(x).gate)
    # the command stores the fixed VGG-16 in float16 and everything else as it was
    weights.save(restorer, tmp_path / "restorer.safetensors", ARCHITECTURE.id, TINY, "enhance")
    weights.save(widened, tmp_path / "toned.safetensors", ARCHITECTURE.id, gated, "enhance")
    assert train_cli(["enhance-join", "--restorer", str(tmp_path / "restorer.safetensors"), "--tone",
                      str(tmp_path / "toned.safetensors"), "--out", str(tmp_path / "joined.safetensors")]) == 0
    with safe_open(tmp_path / "joined.safetensors", "pt") as f:
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
    assert {d for k, d in dtypes.items() if k.startswith("tone.vgg.")} == {"F16"}
    assert {d for k, d in dtypes.items() if not k.startswith("tone.vgg.")} == {"F32"}
    written = weights.load(tmp_path / "joined.safetensors").module
    with torch.no_grad():
        assert written.tone.vgg.conv1_1.weight.dtype == torch.float32
        assert torch.allclose(written.tone(x).gate, widened.tone(x).gate, atol=1e-3)
    with pytest.raises(ValueError, match="tone_gate_encoder"):
        dataclasses.replace(TINY, tone_knots=4, tone_gate_encoder="vgg")  # no gate
    with pytest.raises(ValueError, match="tone_gate_encoder"):
        dataclasses.replace(cnn, tone_gate_encoder="resnet")


def test_classical_levels_measure_auto_contrast_a_common_stretch_and_grey_world():
    from models.archs.enhance import TONE_LEVELS, classical_levels

    image = torch.rand(2, 3, 40, 48) * torch.tensor([0.4, 0.6, 0.3])[:, None, None] + 0.2  # flat, warm-cast
    levels = classical_levels(image * 2 - 1)
    assert levels.shape == (2, len(TONE_LEVELS), 3, 2)
    applied = {name: ((image * 2 - 1) * levels[:, i, :, None, None, 0] + levels[:, i, :, None, None, 1] + 1) / 2
               for i, name in enumerate(TONE_LEVELS)}
    assert torch.allclose(applied["channels"].clamp(0, 1), evaluate_enhance.auto_contrast(image), atol=1e-5)
    assert torch.allclose(applied["grey"].clamp(0, 1), evaluate_enhance.grey_world(image), atol=1e-5)
    joint = applied["joint"]  # one range for all three channels: it spans 0..1 but keeps the cast
    assert float(joint.amin()) == pytest.approx(0.0, abs=0.02) and float(joint.amax()) == pytest.approx(1.0, abs=0.02)
    assert torch.allclose(levels[:, 1, 0, 0], levels[:, 1, 2, 0]) and (levels[:, 0, 2, 0] > levels[:, 0, 1, 0]).all()


def test_tone_levels_added_to_a_trained_stage_keep_its_gate_restart_its_curve_and_learn_to_stretch(tmp_path, photos):
    from models.archs.enhance import ARCHITECTURE, EnhanceNet
    from models.train.enhance import join_tone_stage

    gated = dataclasses.replace(TINY, tone_knots=4, tone_gate=True)
    torch.manual_seed(8)
    trained = EnhanceNet(gated).eval()
    torch.nn.init.normal_(trained.tone.out.weight, std=0.05)  # a stage that corrects
    torch.nn.init.normal_(trained.tone.gate.weight, std=1.0)  # and a gate that differs between photos
    torch.nn.init.constant_(trained.tone.gate.bias, 0.5)
    weights.save(trained, tmp_path / "start.safetensors", ARCHITECTURE.id, gated, "enhance")
    levelled = dataclasses.replace(gated, tone_levels=True)
    flat = degrade.DegradeConfig(colour_probability=1.0, contrast=(0.4, 0.4))
    settings = EnhanceSettings(degradation=flat, net=levelled, batch_size=4, crop=32, adv_weight=0, lr=1e-2,
                               stage="tone", init=str(tmp_path / "start.safetensors"))
    data = load_images(photos, min_side=16)
    widened = EnhanceTask(settings, data).networks()["G"].eval()
    x = torch.rand(4, 3, 32, 32) * torch.tensor([0.3, 0.8, 1.4, 2.0])[:, None, None, None] - 1  # dark to bright
    with torch.no_grad():
        before, after = trained.tone(x), widened.tone(x)
        assert before.gate.max() - before.gate.min() > 0.05 and torch.equal(after.gate, before.gate)
        assert not torch.allclose(before.apply(x), x, atol=1e-3)  # the trained curve corrects
        assert torch.allclose(after.apply(x), x, atol=1e-5)  # the new one starts as the identity, levels at none
    out = weights.load(_train(tmp_path / "run", settings, data, steps=40))
    assert out.config == levelled
    assert float(out.module.tone.levels.bias.detach().abs().max()) > 0.05  # it learnt to use the measured corrections
    rows = [json.loads(x) for x in (tmp_path / "run" / "en.metrics.jsonl").read_text().splitlines()]
    assert sum(r["l1"] for r in rows[-10:]) < 0.5 * sum(r["l1_input"] for r in rows[-10:])  # flat photos restored
    joined = join_tone_stage(weights.LoadedModel(EnhanceNet(TINY).eval(), ARCHITECTURE.id, TINY, "enhance"), out)
    assert joined.config == levelled
    with torch.no_grad():
        assert torch.equal(joined.module.tone(x).levels, out.module.tone(x).levels)
    with pytest.raises(ValueError, match="tone_levels"):
        dataclasses.replace(TINY, tone_levels=True)  # no tone stage


def test_stage_gate_trains_only_the_gate_which_learns_to_shut_where_the_curve_would_harm(tmp_path, photos):
    from models.archs.enhance import ARCHITECTURE, EnhanceNet

    gated = dataclasses.replace(TINY, tone_knots=4, tone_gate=True)
    trained = EnhanceNet(gated).eval()
    torch.manual_seed(7)
    torch.nn.init.normal_(trained.tone.out.weight, std=0.3)  # a curve that changes every photo, gate open
    weights.save(trained, tmp_path / "start.safetensors", ARCHITECTURE.id, gated, "enhance")
    clean = degrade.DegradeConfig(clean_probability=1.0)  # no photo needs the curve
    settings = EnhanceSettings(degradation=clean, net=gated, batch_size=4, crop=32, adv_weight=0, lr=1e-2,
                               stage="gate", init=str(tmp_path / "start.safetensors"))
    generator = EnhanceTask(settings, load_images(photos, min_side=16)).networks()["G"]
    assert {n for n, p in generator.named_parameters() if p.requires_grad} == {"tone.gate.weight", "tone.gate.bias"}
    out = weights.load(_train(tmp_path / "run", settings, load_images(photos, min_side=16), steps=40))
    for name, tensor in trained.state_dict().items():  # all but the gate exactly as it was
        if not name.startswith("tone.gate."):
            assert torch.equal(out.module.state_dict()[name], tensor), name
    x = torch.stack([gradient(32, 32, seed) for seed in range(4)]) * 2 - 1
    with torch.no_grad():
        assert float(trained.tone(x).gate.mean()) == 1.0
        assert float(out.module.tone(x).gate.mean()) < 0.2  # it learnt to leave these photos alone
    with pytest.raises(ValueError, match="stage 'gate'"):
        EnhanceSettings(degradation=clean, net=dataclasses.replace(TINY, tone_knots=4), stage="gate")


def test_the_photo_view_shows_the_tone_stage_each_crops_whole_photo_with_the_crops_own_faults(tmp_path, photos):
    data = load_images(photos, min_side=16)
    dark = degrade.DegradeConfig(colour_probability=0.5, exposure_gain=(0.3, 0.8), noise_probability=1.0,
                                 noise_sigma=(2.0, 2.0), poisson_probability=0.0)
    toned = dataclasses.replace(TINY, tone_knots=4, tone_gate=True)
    settings = EnhanceSettings(degradation=dark, net=toned, batch_size=8, crop=32, adv_weight=0, lr=1e-2, stage="tone",
                               tone_view="photo", gate_weight=1.0)
    task = EnhanceTask(settings, data)
    batch = task.make_batch(torch.Generator().manual_seed(3))
    assert batch["photo"].shape == (8, 3, 256, 256) and batch["input"].shape == (8, 3, 32, 32)
    # every pair of crop and photo got the same exposure (gains differ between items): the crop's darkening
    # matches that of one of the clean photos, and the photo's gain is the crop's
    crop_gain = ((batch["input"] + 1).mean(dim=(1, 2, 3)) / (batch["target"] + 1).mean(dim=(1, 2, 3)))
    whole = torch.stack([p.float() / 255 for p in task._photos]) * 2
    photo_gain = (batch["photo"] + 1).mean(dim=(1, 2, 3))[:, None] / whole.mean(dim=(1, 2, 3))[None]
    assert crop_gain.max() - crop_gain.min() > 0.1
    assert ((photo_gain - crop_gain[:, None]).abs().min(dim=1).values < 0.02).all()
    # the gate's target: the darkened items, not the merely noisy ones
    dark_items = crop_gain < 0.9
    assert 0 < dark_items.sum() < 8 and torch.equal(batch["faulted"], dark_items.float())
    assert ((crop_gain - 1).abs()[~dark_items] < 0.02).all()
    out = weights.load(_train(tmp_path, dataclasses.replace(settings, batch_size=4), data, steps=40))
    assert out.config == toned
    rows = [json.loads(x) for x in (tmp_path / "en.metrics.jsonl").read_text().splitlines()]
    early, late = rows[:10], rows[-10:]
    assert sum(r["l1"] for r in late) < 0.5 * sum(r["l1_input"] for r in late)  # it learnt to brighten
    assert sum(r["gate_error"] for r in late) < 0.5 * sum(r["gate_error"] for r in early)  # and when to
    with pytest.raises(ValueError, match="tone_view"):
        EnhanceSettings(degradation=dark, net=toned, tone_view="photo")  # stage "all"
    with pytest.raises(ValueError, match="tone_view"):
        EnhanceSettings(degradation=dark, net=toned, stage="tone", tone_view="thumbnail")
    with pytest.raises(ValueError, match="gate_weight"):
        EnhanceSettings(degradation=dark, net=dataclasses.replace(toned, tone_gate=False), stage="tone",
                        gate_weight=1.0)


def test_enhance_join_carries_a_tone_gate_with_the_stage():
    from models.archs.enhance import ARCHITECTURE, EnhanceNet
    from models.train.enhance import join_tone_stage

    gated_config = dataclasses.replace(TINY, tone_knots=4, tone_gate=True)
    toned = EnhanceNet(gated_config).eval()
    with torch.no_grad():
        toned.tone.gate.bias.fill_(-0.5)  # a trained gate, shut
    restorer = EnhanceNet(TINY).eval()
    joined = join_tone_stage(weights.LoadedModel(restorer, ARCHITECTURE.id, TINY, "enhance"),
                             weights.LoadedModel(toned, ARCHITECTURE.id, gated_config, "enhance"))
    assert joined.config == gated_config
    assert torch.equal(joined.module.state_dict()["tone.gate.bias"], torch.full((1,), -0.5))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(joined.module(x), restorer(x))  # shut: the restorer sees the photo as it is


def test_perceptual_distance_is_zero_on_equal_images_and_ignores_the_loss_network_scale():
    from models.train.features import perceptual_distance

    clean = gradient(48, 48, 1)[None]
    noisy = degrade.degrade(clean, NOISE, seed=1)
    base, scaled = random_vgg(1.0), random_vgg(20.0)
    assert float(perceptual_distance(base, clean, clean)) == 0.0
    d = float(perceptual_distance(base, noisy, clean))
    assert d > 0.05
    assert float(perceptual_distance(scaled, noisy, clean)) == pytest.approx(d, rel=1e-3)
    grey = perceptual_distance(base, noisy.mean(1, keepdim=True), clean.mean(1, keepdim=True))  # 1 channel works
    assert float(grey) > 0


def test_perceptual_term_changes_training_and_needs_a_loss_network(tmp_path, photos):
    data = load_images(photos, min_side=16)
    plain = EnhanceSettings(degradation=NOISE, net=TINY, batch_size=2, crop=32, discriminator_width=4, adv_weight=0)
    with_vgg = dataclasses.replace(plain, perceptual_weight=1.0)
    with pytest.raises(ValueError, match="needs a VGG-16 loss network"):
        EnhanceTask(with_vgg, data)
    results = {}
    for name, settings, vgg in (("plain", plain, None), ("vgg", with_vgg, random_vgg())):
        options = RunOptions(out=tmp_path / f"{name}.safetensors", steps=3, log_every=1, checkpoint_every=3,
                             preview_every=3, progress=False)
        results[name] = weights.load(Trainer(EnhanceTask(settings, data, vgg), options).run()).module.state_dict()
        rows = [json.loads(x) for x in (tmp_path / f"{name}.metrics.jsonl").read_text().splitlines()]
        assert ("perceptual" in rows[-1]) == (name == "vgg")
    assert rows[-1]["perceptual"] > 0
    assert any(not torch.equal(results["plain"][k], results["vgg"][k]) for k in results["plain"])


def test_the_psnr_loss_weighs_each_crop_by_its_own_error_and_trains(tmp_path, photos):
    from models.train.enhance import PSNR_CEILING_DB, log_mse, psnr_floor

    floor = psnr_floor(PSNR_CEILING_DB)
    target = torch.zeros(2, 3, 8, 8)
    assert float(log_mse(target, target)) == pytest.approx(float(torch.log(torch.tensor(floor))))
    small, large = target.clone(), target.clone()
    small[0] += 0.01  # one crop slightly off, the other exact
    large[0] += 0.1
    # tenfold error on one crop: log-MSE rises by log(100)/2 per crop on average, whatever the absolute scale
    rise = float(log_mse(large, target) - log_mse(small, target))
    assert rise == pytest.approx(0.5 * float(torch.log(torch.tensor((0.01 + floor) / (1e-4 + floor)))), rel=1e-4)
    # the ceiling: an exact crop scores that PSNR ([-1, 1] scale), and a lower one weighs a small error less
    assert 10 * math.log10(4 / psnr_floor(40.0)) == pytest.approx(40.0)
    near = target + 0.003  # 56.5 dB: past both ceilings, so its pull scales with 1 / floor
    ratio = float(log_mse(near, target, 40.0) - log_mse(target, target, 40.0)) / float(
        log_mse(near, target) - log_mse(target, target))
    assert ratio == pytest.approx(10 ** ((40.0 - PSNR_CEILING_DB) / 10), rel=0.1)
    with pytest.raises(ValueError, match="psnr_ceiling_db"):
        EnhanceSettings(pixel_loss="psnr", psnr_ceiling_db=10.0)
    with pytest.raises(ValueError, match="pixel_loss"):
        EnhanceSettings(pixel_loss="l2")
    settings = EnhanceSettings(degradation=NOISE, net=TINY, batch_size=2, crop=32, adv_weight=0, pixel_loss="psnr")
    out = _train(tmp_path, settings, load_images(photos, min_side=16), steps=3)
    rows = [json.loads(x) for x in (tmp_path / "en.metrics.jsonl").read_text().splitlines()]
    assert all(r["log_mse"] < 0 for r in rows)
    assert weights.load(out).provenance["task_settings"]["settings"]["pixel_loss"] == "psnr"


def test_a_block_guide_is_added_to_a_guided_file_by_init_and_refused_without_guides(tmp_path, photos):
    data = load_images(photos, min_side=16)
    guided = dataclasses.replace(TINY, guide=True)
    settings = EnhanceSettings(degradation=NOISE, net=guided, batch_size=2, crop=32, adv_weight=0)
    first = weights.load(_train(tmp_path / "a", settings, data, steps=3))
    wide = dataclasses.replace(guided, block_guide=True)
    out = weights.load(_train(tmp_path / "b", dataclasses.replace(settings, net=wide,
                                                                  init=str(tmp_path / "a" / "en.safetensors")),
                              data, steps=3))
    assert out.config == wide and out.config.mixed == first.config.mixed + 1
    head, old_head = out.module.state_dict()["head.0.weight"], first.module.state_dict()["head.0.weight"]
    assert head.shape[1] == old_head.shape[1] + 12  # the new guide's 3 channels, unshuffled
    assert (head[:, : old_head.shape[1]] - old_head).abs().max() < 0.05  # three steps from the trained weights
    plain = weights.load(_train(tmp_path / "c", dataclasses.replace(settings, net=TINY), data, steps=2))
    assert not plain.config.guide
    with pytest.raises(ValueError, match="--init"):
        EnhanceTask(dataclasses.replace(settings, net=wide, init=str(tmp_path / "c" / "en.safetensors")),
                    data).networks()


def test_enhance_join_puts_a_trained_tone_stage_in_front_of_another_restorer(tmp_path, photos, capsys):
    from nodes.train.cli import main

    data = load_images(photos, min_side=16)
    settings = EnhanceSettings(degradation=NOISE, net=TINY, batch_size=2, crop=32, adv_weight=0)
    first = _train(tmp_path / "a", settings, data, steps=3)
    second = weights.load(_train(tmp_path / "b", dataclasses.replace(settings, lr=1e-2), data, steps=3))
    dark = degrade.DegradeConfig(colour_probability=1.0, exposure_gain=(0.5, 0.5))
    tone = EnhanceSettings(degradation=dark, net=dataclasses.replace(TINY, tone_knots=4), batch_size=2, crop=32,
                           adv_weight=0, lr=1e-2, stage="tone", init=str(first))
    toned = weights.load(_train(tmp_path / "c", tone, data, steps=5))
    out = tmp_path / "joined.safetensors"
    assert main(["enhance-join", "--restorer", str(tmp_path / "b" / "en.safetensors"), "--tone",
                 str(tmp_path / "c" / "en.safetensors"), "--out", str(out)]) == 0
    joined = weights.load(out)
    assert joined.config == dataclasses.replace(TINY, tone_knots=4)
    state = joined.module.state_dict()
    for name, tensor in state.items():
        source = toned if name.startswith("tone.") else second
        assert torch.equal(tensor, source.module.state_dict()[name]), name
    assert joined.provenance["tone_stage"]["file"] == "en.safetensors" and "restorer" in joined.provenance
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        corrected = toned.module(x, tone_params=True).apply(x)
        assert (corrected - x).abs().mean() > 1e-3  # the stage does something
        assert torch.allclose(joined.module(x), second.module(corrected), atol=1e-5)
    bad = tmp_path / "x.safetensors"
    capsys.readouterr()
    assert main(["enhance-join", "--restorer", str(out), "--tone", str(out), "--out", str(bad)]) != 0
    assert "it has a tone stage already" in capsys.readouterr().err
    assert main(["enhance-join", "--restorer", str(first), "--tone", str(first), "--out", str(bad)]) != 0
    assert "--tone" in capsys.readouterr().err and not bad.exists()
