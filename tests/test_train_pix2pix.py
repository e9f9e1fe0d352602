"""pix2pix training: pair loading (A/ + B/ folders, side-by-side A|B, synthetic), tiny runs, export, scoring."""

import json
import math

import pytest
import torch
from gradients import gradient, gradient_folder, save_png
from PIL import Image

from models import colour, layout, metrics, translate, weights
from models.archs.pix2pix import UnetGenerator, UnetGeneratorConfig
from models.train.data import load_pairs, random_crops
from models.train.engine import RunOptions, Trainer
from models.train.pix2pix import Pix2PixSettings, Pix2PixTask, generator_config, load_synthetic
from models.translate import evaluate as evaluate_translate
from models.translate import pairs
from nodes.train.cli import main as train_cli

pytestmark = pytest.mark.unit

TINY = dict(net_g="unet_128", ngf=8, ndf=8, crop=128, batch_size=2)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return gradient_folder(tmp_path_factory.mktemp("photos"), size=(140, 160))


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    """A|B files: A is a gradient, B its colour-inverted copy."""
    root = tmp_path_factory.mktemp("aligned")
    for i in range(4):
        a = gradient(130, 140, i)
        save_png(torch.cat([a, 1 - a], dim=-1), root / f"ab{i}.png")
    return root


@pytest.fixture
def two_folders(tmp_path):
    root = tmp_path / "pairs"
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    for i in range(3):
        a = gradient(130, 132, i)
        save_png(a, root / "A" / f"img{i}.png")
        Image.fromarray(((1 - a) * 255).round().byte().permute(1, 2, 0).numpy()).save(root / "B" / f"img{i}.bmp")
    return root


def _train(tmp_path, task, steps, **kw):
    options = RunOptions(out=tmp_path / "p2p.safetensors", steps=steps, log_every=1, checkpoint_every=steps,
                         preview_every=steps, progress=False, **kw)
    return Trainer(task, options).run()


def _metric_rows(tmp_path):
    return [json.loads(x) for x in (tmp_path / "p2p.metrics.jsonl").read_text().splitlines()]


# -- data ------------------------------------------------------------------------------------------


def test_side_by_side_files_split_into_left_a_and_right_b(side_by_side):
    data = load_pairs(side_by_side)
    assert data.kind == "side_by_side" and len(data) == 4 and data.names[0] == "ab0"
    a, b = data.a[0].float(), data.b[0].float()
    assert a.shape == b.shape == (3, 130, 140)
    assert torch.allclose(a + b, torch.full_like(a, 255.0), atol=1.0)  # B is 1 - A, to the uint8 rounding
    flipped = load_pairs(side_by_side, direction="BtoA")
    assert torch.equal(flipped.a[0], data.b[0]) and torch.equal(flipped.b[0], data.a[0])


def test_two_folders_pair_by_name_whatever_the_suffix(two_folders):
    data = load_pairs(two_folders)
    assert data.kind == "folders" and data.names == ["img0", "img1", "img2"]
    for a, b in zip(data.a, data.b, strict=True):
        assert torch.allclose(a.float() + b.float(), torch.full(a.shape, 255.0), atol=1.0)


def test_two_folders_with_mismatched_names_is_a_clear_error(two_folders):
    (two_folders / "B" / "img2.bmp").rename(two_folders / "B" / "other.bmp")
    with pytest.raises(ValueError, match=r"only in A: \['img2'\].*only in B: \['other'\]"):
        load_pairs(two_folders)


def test_pairs_of_different_sizes_are_refused(two_folders):
    save_png(gradient(64, 64, 0), two_folders / "B" / "img1.bmp")
    with pytest.raises(ValueError, match="'img1': A is 132x130 px but B is 64x64 px"):
        load_pairs(two_folders)


def test_holdout_sets_pairs_aside_by_name(side_by_side):
    full = load_pairs(side_by_side)
    part = load_pairs(side_by_side, holdout=0.5)
    assert len(part) + len(part.held_out) == len(full)
    assert set(part.names).isdisjoint(part.held_out)


def test_crops_of_stacked_pairs_take_the_same_window_from_a_and_b(side_by_side):
    data = load_pairs(side_by_side)
    stacked = [torch.cat([a, b]) for a, b in zip(data.a, data.b, strict=True)]
    ab = random_crops(stacked, 6, 64, torch.Generator().manual_seed(3))
    assert ab.shape == (6, 6, 64, 64)
    assert torch.allclose(ab[:, :3] + ab[:, 3:], torch.ones(6, 3, 64, 64), atol=2 / 255)


def test_synthetic_colorize_input_is_the_luma_in_three_channels():
    image = torch.rand(2, 3, 8, 9)
    a = pairs.make_input("colorize", image)
    expected = 0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2]
    assert a.shape == image.shape and torch.allclose(a[:, 0], expected, atol=1e-6)
    assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 1], a[:, 2])
    with pytest.raises(ValueError, match="unknown synthetic pair kind 'sketch'"):
        pairs.make_input("sketch", image)


def test_synthetic_edges_are_dark_lines_on_white():
    image = torch.zeros(1, 3, 32, 32)
    image[..., 16:] = 1.0  # one vertical step edge between columns 15 and 16
    a = pairs.edge_map(image)
    assert a.shape == (1, 3, 32, 32) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert float(a[0, 0, :, 15:17].max()) < 0.05  # the edge is black
    assert float(a[0, 0, :, :8].min()) > 0.999 and float(a[0, 0, :, 24:].min()) > 0.999  # flat areas are white


def test_poster_style_rounds_flat_colours_and_inks_the_edges():
    image = torch.full((1, 3, 32, 32), 0.3)
    image[..., 16:] = 0.8  # a step edge between columns 15 and 16
    b = pairs.poster(image)
    levels = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    assert float(b[..., :, :8].sub(0.25).abs().max()) < 1e-6  # 0.3 rounds to the level 0.25 far from the edge
    assert float(b[..., :, 24:].sub(0.75).abs().max()) < 1e-6  # 0.8 rounds to 0.75
    assert float(b[..., :, 15:17].max()) < 0.1  # the outline is dark
    flat = b[..., :, :8].flatten()
    assert bool(((flat[:, None] - levels).abs().min(dim=1).values < 1e-6).all())


def test_make_pair_puts_the_photo_on_the_right_side():
    photos = torch.rand(2, 3, 16, 16)
    a, b = pairs.make_pair("colorize", photos)
    assert torch.equal(b, photos) and torch.equal(a, pairs.grey(photos))
    a, b = pairs.make_pair("poster", photos)  # a style: the photo is the input
    assert torch.equal(a, photos) and torch.equal(b, pairs.poster(photos))
    with pytest.raises(ValueError, match="'poster' is a style"):
        pairs.make_input("poster", photos)
    with pytest.raises(ValueError, match="unknown synthetic pair kind 'sketch'"):
        pairs.make_pair("sketch", photos)


def test_fold_grey_input_keeps_grey_results_and_greys_colour_input():
    torch.manual_seed(0)
    net = UnetGenerator(UnetGeneratorConfig(ngf=4, num_downs=5, norm="instance", use_dropout=False)).eval()
    folded = pairs.fold_grey_input(net).eval()
    colour = torch.rand(1, 3, 32, 32) * 2 - 1
    grey = pairs.grey(colour * 0.5 + 0.5) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(folded(grey), net(grey), atol=1e-5)  # same function on grey inputs
        assert torch.allclose(folded(colour), net(grey), atol=1e-5)  # colour is seen as its luma
        assert not torch.allclose(net(colour), net(grey), atol=1e-3)  # the unfolded net does see colour


# -- training ----------------------------------------------------------------------------------------


def test_colorize_run_has_finite_losses_and_exports_a_translator(tmp_path, photos):
    data = load_synthetic(photos, "colorize")
    out = _train(tmp_path, Pix2PixTask(Pix2PixSettings(**TINY, norm="instance"), data), steps=3)
    rows = _metric_rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert all(torch.isfinite(torch.tensor(r[k])) for k in ("loss_d", "adv", "l1")) and r["l1"] > 0
    loaded = weights.load(out)
    assert loaded.task == "translate" and loaded.arch == "pix2pix_unet"
    assert loaded.config == generator_config("unet_128", ngf=8, norm="instance", dropout=True)
    assert loaded.provenance["task_settings"]["grey_input_folded"] is True
    image = torch.rand(1, 3, 70, 90)
    result = translate.translate(loaded, image)
    assert result.shape == (1, 3, 70, 90) and 0 <= float(result.min()) and float(result.max()) <= 1
    assert torch.allclose(result, translate.translate(loaded, pairs.grey(image)), atol=1e-5)


def test_chroma_only_judges_the_colours_on_the_photos_own_luma(photos):
    task = Pix2PixTask(Pix2PixSettings(**TINY, norm="instance", chroma_only=True), load_synthetic(photos, "colorize"))
    batch = task.make_batch(torch.Generator().manual_seed(0))
    b = batch["B"]
    raw = torch.rand_like(b) * 2 - 1
    judged = task.judged(raw, b)
    # what the losses see has the photo's luma exactly, whatever luma the network drew
    assert torch.allclose(colour.luma(layout.from_signed(judged)), colour.luma(layout.from_signed(b)), atol=1e-5)
    brighter = (layout.from_signed(raw) * 0.5 + 0.25).clamp(0, 1)  # same colours' direction, other luma
    assert not torch.allclose(task.judged(layout.to_signed(brighter), b), judged, atol=1e-3)
    grey_raw = layout.to_signed(pairs.grey(layout.from_signed(raw)))
    assert torch.allclose(task.judged(grey_raw, b), layout.to_signed(pairs.grey(layout.from_signed(b))), atol=1e-5)
    plain = Pix2PixTask(Pix2PixSettings(**TINY, norm="instance"), load_synthetic(photos, "colorize"))
    assert torch.equal(plain.judged(raw, b), raw)


def test_chroma_only_needs_colorize_pairs(photos):
    with pytest.raises(ValueError, match="colorize"):
        Pix2PixTask(Pix2PixSettings(**TINY, norm="instance", chroma_only=True), load_synthetic(photos, "poster"))
    with pytest.raises(ValueError, match="raw_l1"):
        Pix2PixSettings(**TINY, raw_l1=-1)


def test_plain_l2_regression_trains_no_discriminator(tmp_path, photos):
    settings = Pix2PixSettings(**TINY, norm="instance", chroma_only=True, adv_weight=0, pixel_loss="l2", raw_l1=0.5)
    task = Pix2PixTask(settings, load_synthetic(photos, "colorize"))
    b = task.make_batch(torch.Generator().manual_seed(0))["B"]
    off = (b + 0.2).clamp(-1, 1)
    assert float(task.pixel(off, b)) == pytest.approx(float((off - b).square().mean()), rel=1e-6)
    nets = task.networks()
    assert set(task.optimizers(nets)) == {"G"}
    _train(tmp_path, task, steps=3)
    rows = _metric_rows(tmp_path)
    assert len(rows) == 3 and all("l2" in r and "adv" not in r and "loss_d" not in r for r in rows)
    gan = Pix2PixTask(Pix2PixSettings(**TINY, norm="instance"), load_synthetic(photos, "colorize"))
    assert set(gan.optimizers(gan.networks())) == {"G", "D"}
    assert float(gan.pixel(off, b)) == pytest.approx(float((off - b).abs().mean()), rel=1e-6)


def test_synthetic_pairs_hold_out_whole_sources(tmp_path):
    for source, count in (("alpha", 3), ("beta", 2)):
        (tmp_path / "photos" / source).mkdir(parents=True)
        gradient_folder(tmp_path / "photos" / source, count=count, size=(40, 40))
    data = load_synthetic(tmp_path / "photos", "colorize", holdout_sources=("beta",))
    assert len(data) == 3 and all(n.startswith("alpha/") for n in data.names)
    assert sorted(data.held_out) == ["beta/g0.png", "beta/g1.png"]
    assert data.describe()["held_out_sources"] == ["beta"]


def test_poster_run_learns_photo_to_poster_and_exports_unfolded(tmp_path, photos):
    task = Pix2PixTask(Pix2PixSettings(**TINY, norm="instance"), load_synthetic(photos, "poster"))
    batch = task.make_batch(torch.Generator().manual_seed(0))
    a, b = (layout.from_signed(batch[k]) for k in ("A", "B"))
    # input the photo crop, target its poster (the [-1, 1] round trip may move a value across a rounding step)
    assert float((b - pairs.poster(a)).abs().gt(1e-4).float().mean()) < 1e-3
    loaded = weights.load(_train(tmp_path, task, steps=2))
    assert loaded.provenance["task_settings"]["grey_input_folded"] is False
    assert loaded.provenance["task_settings"]["data"]["kind"] == "synthetic:poster"


def test_paired_run_learns_and_exports_unfolded(tmp_path, side_by_side):
    settings = Pix2PixSettings(**{**TINY, "batch_size": 1}, lr=2e-3)
    out = _train(tmp_path, Pix2PixTask(settings, load_pairs(side_by_side)), steps=4)
    rows = _metric_rows(tmp_path)
    assert len(rows) == 4 and all(r["l1"] == r["l1"] for r in rows)
    loaded = weights.load(out)
    assert loaded.provenance["task_settings"]["grey_input_folded"] is False
    assert loaded.provenance["task_settings"]["data"]["kind"] == "side_by_side"
    first = next(m for m in loaded.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert not torch.allclose(first.weight[:, 0], first.weight[:, 1])  # an ordinary first conv


def test_resume_is_exact(tmp_path, side_by_side):
    settings = Pix2PixSettings(**TINY)
    data = load_pairs(side_by_side)
    straight = weights.load(_train(tmp_path / "a", Pix2PixTask(settings, data), steps=4))
    _train(tmp_path / "b", Pix2PixTask(settings, data), steps=4, stop_at=2)
    resumed = weights.load(_train(tmp_path / "b", Pix2PixTask(settings, data), steps=4, resume=True))
    for k, v in straight.module.state_dict().items():
        assert torch.equal(v, resumed.module.state_dict()[k]), k


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(net_g="unet_512"), "netG must be one of"),
        (dict(net_g="unet_256", crop=128), "multiples of 256"),
        (dict(net_g="resnet_9blocks", crop=30), "multiples of 4"),
        (dict(lambda_l1=-1), "lambda_l1"),
        (dict(adv_weight=-0.5), "adv_weight"),
        (dict(pixel_loss="huber"), "pixel_loss must be one of"),
        (dict(norm="group"), "norm must be one of"),
    ],
)
def test_bad_settings_are_clear(kw, match):
    with pytest.raises(ValueError, match=match):
        Pix2PixSettings(**kw)


def test_cli_trains_from_two_folders_and_the_loader_opens_it(tmp_path, two_folders, capsys):
    out = tmp_path / "cli.safetensors"
    code = train_cli(["pix2pix", "--data", str(two_folders), "--netG", "resnet_6blocks", "--ngf", "4", "--ndf", "4",
                      "--crop", "32", "--steps", "2", "--out", str(out), "--no-progress", "--norm", "instance"])
    assert code == 0 and f"wrote {out}" in capsys.readouterr().out
    loaded = weights.load(out)
    assert loaded.arch == "pix2pix_resnet" and loaded.config.n_blocks == 6 and loaded.config.use_dropout is True
    assert loaded.provenance["run_options"]["decay_from"] == 0.5


def test_cli_reports_mismatched_folders(tmp_path, two_folders, capsys):
    (two_folders / "A" / "img0.png").unlink()
    code = train_cli(["pix2pix", "--data", str(two_folders), "--steps", "1", "--out", str(tmp_path / "x.safetensors")])
    assert code == 2 and "only in B: ['img0']" in capsys.readouterr().err


# -- scoring -----------------------------------------------------------------------------------------


def test_evaluate_translation_scores_methods_against_the_photo(photos):
    images = load_synthetic(photos, "colorize").b

    def oracle(a):  # knows the answer: the photo whose luma `a` is
        for image in images:
            b = metrics.prepare_image(image, 64)
            if torch.allclose(pairs.grey(b), a):
                return b
        raise AssertionError("unknown input")

    rows = evaluate_translate.evaluate_translation(
        {"oracle": oracle, "input": evaluate_translate.input_baseline}, images, "colorize", size=64
    )
    by_name = {r.method: r for r in rows}
    assert by_name["oracle"].psnr == float("inf") and by_name["oracle"].ssim == pytest.approx(1.0)
    grey_psnr = by_name["input"].per_image["psnr"]
    assert len(grey_psnr) == 6 and 5 < min(grey_psnr) < 60
    assert by_name["oracle"].colourfulness_error == 0.0 and by_name["oracle"].chroma_psnr == float("inf")
    # the grey guess: the photo's own luminance, no colour at all
    grey = by_name["input"]
    assert grey.luma_ssim == pytest.approx(1.0, abs=1e-6) and 10 < grey.chroma_psnr < 60
    targets = [metrics.prepare_image(image, 64) for image in images]
    truth = float(torch.cat([metrics.colourfulness(t) for t in targets]).mean())
    assert grey.colourfulness_error == pytest.approx(truth)
    assert "| input | 6 |" in evaluate_translate.format_table(rows)
    assert json.dumps([r.to_dict() for r in rows])  # JSON-able, inf included


def test_evaluate_translate_cli_prints_the_table(tmp_path, photos, capsys):
    data = load_synthetic(photos, "colorize")
    out = _train(tmp_path, Pix2PixTask(Pix2PixSettings(**TINY, norm="instance"), data), steps=1)
    code = train_cli(["evaluate-translate", "--data", str(photos), "--holdout", "0", "--model", str(out),
                      "--size", "64", "--json", str(tmp_path / "scores.json")])
    assert code == 0
    text = capsys.readouterr().out
    assert "| p2p | 6 |" in text and "| input | 6 |" in text
    report = json.loads((tmp_path / "scores.json").read_text())
    assert [r["method"] for r in report["rows"]] == ["p2p", "input"]


def test_grey_photos_are_left_out_of_colourisation_scores(photos):
    images = load_synthetic(photos, "colorize").b
    grey_photo = (pairs.grey(images[0][None].float() / 255)[0] * 255).round().byte()
    rows = evaluate_translate.evaluate_translation({"input": evaluate_translate.input_baseline},
                                                   [*images, grey_photo], "colorize", size=32)
    assert rows[0].images == 6 and rows[0].skipped_grey == 1
    assert all(p < 60 for p in rows[0].per_image["psnr"])  # the grey photo's unbounded PSNR is not in the mean
    assert evaluate_translate.is_grey(metrics.prepare_image(grey_photo, 32))
    with pytest.raises(ValueError, match="all 1 images are grey already"):
        evaluate_translate.evaluate_translation({"input": evaluate_translate.input_baseline}, [grey_photo])


def test_table_counts_per_image_wins_over_the_input(photos):
    images = load_synthetic(photos, "colorize").b
    rows = evaluate_translate.evaluate_translation(
        {"same": evaluate_translate.input_baseline, "input": evaluate_translate.input_baseline}, images, size=32)
    table = evaluate_translate.format_table(rows)
    assert "| same | 6 |" in table and "| 0 / 6 |" in table


def _random_vgg(last="relu4_3"):
    """A randomly initialised anti-aliased VGG-16 (the real weights are not needed to test the mechanics)."""
    from models.archs.vgg import VGG16Features

    torch.manual_seed(0)
    return VGG16Features("blur", last=last).requires_grad_(False).eval()


def test_vgg_colorizer_keeps_the_luma_starts_grey_and_copies_the_encoder(tmp_path, photos):
    from models.archs.colorize import VGGColorizerConfig

    encoder = _random_vgg()
    settings = Pix2PixSettings(net_g="vgg_colorizer", ngf=8, crop=64, batch_size=2, adv_weight=0, pixel_loss="l2")
    task = Pix2PixTask(settings, load_synthetic(photos, "colorize"), encoder)
    g = task.networks()["G"]
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(g.encoder.state_dict()[name], tensor), name
    image = torch.rand(2, 3, 50, 70)
    with torch.no_grad():
        start = layout.from_signed(g(layout.to_signed(image)))
    assert torch.allclose(start, colour.luma(image).expand(-1, 3, -1, -1), atol=1e-6)  # grey at the start
    out = _train(tmp_path, task, steps=4)
    assert all(r["l2"] > 0 for r in _metric_rows(tmp_path))
    loaded = weights.load(out)
    assert loaded.arch == "vgg_colorizer" and loaded.config == VGGColorizerConfig(width=8)
    assert loaded.provenance["task_settings"]["grey_input_folded"] is False
    for name, tensor in encoder.state_dict().items():  # the encoder stayed fixed
        assert torch.equal(loaded.module.encoder.state_dict()[name], tensor), name
    with torch.no_grad():  # some colour now, on the input's own luma
        torch.nn.init.normal_(loaded.module.head[-1].weight, 0.0, 0.5)
    result = translate.translate(loaded, image)
    assert result.shape == image.shape and float((result - result.mean(dim=1, keepdim=True)).abs().max()) > 0.01
    assert torch.allclose(colour.luma(result), colour.luma(image), atol=1e-5)
    assert torch.allclose(result, translate.translate(loaded, pairs.grey(image)), atol=1e-5)  # reads the luma only


def test_vgg_colorizer_needs_colorize_pairs_and_the_anti_aliased_vgg(photos):
    settings = Pix2PixSettings(net_g="vgg_colorizer", ngf=8, crop=64)
    with pytest.raises(ValueError, match="colorize"):
        Pix2PixTask(settings, load_synthetic(photos, "poster"), _random_vgg())
    with pytest.raises(ValueError, match="anti-aliased"):
        Pix2PixTask(settings, load_synthetic(photos, "colorize"), None)
    from models.archs.vgg import VGG16Features

    with pytest.raises(ValueError, match="anti-aliased"):
        Pix2PixTask(settings, load_synthetic(photos, "colorize"), VGG16Features("max", last="relu4_3"))


def test_psnr_loss_weighs_every_crop_alike_and_init_fine_tunes_a_file(tmp_path, photos):
    from models.train.enhance import log_mse, psnr_floor

    settings = Pix2PixSettings(**TINY, norm="instance", adv_weight=0, pixel_loss="psnr")
    task = Pix2PixTask(settings, load_synthetic(photos, "colorize"))
    b = task.make_batch(torch.Generator().manual_seed(0))["B"]
    small, large = b.clone(), b.clone()
    small[0] += 0.05
    large[0] += 0.5
    assert float(task.pixel(small, b)) == pytest.approx(float(log_mse(small, b)))
    # the log of each crop's error (plus the floor of a 45 dB ceiling): 10x the error on one crop of two adds
    # about ln(100) / 2, whatever its size
    floor = psnr_floor(45.0)
    expected = math.log((0.25 + floor) / (0.0025 + floor)) / 2
    assert float(task.pixel(large, b)) - float(task.pixel(small, b)) == pytest.approx(expected, rel=1e-3)
    first = _train(tmp_path, task, steps=2)
    tuned = Pix2PixTask(Pix2PixSettings(**TINY, norm="instance", adv_weight=0, init=str(first)),
                        load_synthetic(photos, "colorize"))
    g = tuned.networks()["G"]
    for name, tensor in weights.load(first).module.state_dict().items():
        assert torch.equal(g.state_dict()[name], tensor), name
    assert tuned.describe()["settings"]["init"] == first.name
    wider = Pix2PixTask(Pix2PixSettings(**{**TINY, "ngf": 16}, norm="instance", init=str(first)),
                        load_synthetic(photos, "colorize"))
    with pytest.raises(ValueError, match="--init"):
        wider.networks()
