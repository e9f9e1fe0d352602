"""Scoring style transfer: content kept, edges kept and distance to the style, on the pack's own methods."""

import json

import numpy as np
import pytest
import torch
from gradients import gradient, gradient_folder, save_png
from PIL import Image
from test_vgg import _torchvision_state

from models.archs.vgg import VGG16Features
from models.stylize import evaluate
from nodes.train.cli import main as train_cli
from nodes.train.evaluate_style import read_style

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def vgg():
    net = VGG16Features("max", last=evaluate.CONTENT_LAYER)
    net.load_state_dict(_vgg_state(), strict=True)
    return net.eval().requires_grad_(False)


def _vgg_state():
    from models.archs.vgg import state_from_torchvision

    return state_from_torchvision(_torchvision_state(seed=3), last=evaluate.CONTENT_LAYER)


def _photo(seed: int, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (gradient(size, size, seed)[None] * 0.7 + 0.3 * torch.rand(1, 3, size, size, generator=g)).clamp(0, 1)


def test_the_photo_itself_keeps_all_content_and_a_style_is_at_zero_from_itself(vgg):
    photo, style = _photo(0), _photo(1).flip(-1) * torch.tensor([1.0, 0.4, 0.2]).view(1, 3, 1, 1)
    assert float(evaluate.content_distance(vgg, photo, photo)[0]) == 0.0
    assert float(evaluate.edge_correlation(photo, photo)[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(evaluate.style_distance(vgg, style, style)[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(evaluate.style_distance(vgg, photo, style)[0]) > 0.05
    # a brighter copy has the same edges (correlation is scale-free) but other features
    brighter = photo * 0.5 + 0.25
    assert float(evaluate.edge_correlation(brighter, photo)[0]) == pytest.approx(1.0, abs=1e-4)
    assert float(evaluate.content_distance(vgg, brighter, photo)[0]) > 0.01
    # unrelated noise or a flat picture keeps no edges
    noise = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    assert abs(float(evaluate.edge_correlation(noise, photo)[0])) < 0.2
    assert float(evaluate.edge_correlation(torch.full_like(photo, 0.5), photo)[0]) == 0.0


def test_colour_transfer_moves_towards_the_style_and_keeps_the_edges(vgg):
    photos = [_photo(i, 80)[0] for i in range(2)]
    styles = [(torch.rand(3, 72, 96, generator=torch.Generator().manual_seed(5)) * 0.3
               + torch.tensor([0.6, 0.1, 0.3]).view(3, 1, 1))]
    methods = {"content": evaluate.content_baseline, "colour": evaluate.colour_transfer}
    seen = []
    rows = evaluate.evaluate_style(methods, photos, styles, vgg, size=64, style_size=48,
                                   progress=lambda done, total: seen.append((done, total)))
    content, colour = rows
    assert seen[-1] == (4, 4) and content.pairs == colour.pairs == 2
    assert content.content_distance == pytest.approx(0.0, abs=1e-9)
    assert content.edge_correlation == pytest.approx(1.0, abs=1e-5)
    assert colour.edge_correlation > 0.9 and colour.content_distance > 0.0
    assert colour.style_distance < content.style_distance
    assert len(colour.per_pair["style_distance"]) == 2
    table = evaluate.format_table(rows).splitlines()
    assert len(table) == 4 and table[2].startswith("| content | 2 | 0.000 | 1.000 |")


def test_bad_methods_and_inputs_are_refused(vgg):
    photos, styles = [_photo(0)[0]], [_photo(1)[0]]
    with pytest.raises(ValueError, match="returned"):
        evaluate.evaluate_style({"crop": lambda c, s: c[..., :32, :32]}, photos, styles, vgg, size=64)
    with pytest.raises(ValueError, match="need content photos and style images"):
        evaluate.evaluate_style({"c": evaluate.content_baseline}, photos, [], vgg)
    with pytest.raises(ValueError, match="no methods"):
        evaluate.evaluate_style({}, photos, styles, vgg)


def test_a_style_image_with_transparent_edges_is_cut_to_its_opaque_centre(tmp_path):
    rgba = np.zeros((100, 120, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[10:90, 20:100, 3] = 255  # an 80 x 80 opaque body; the rest is transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "tile.png")
    out = read_style(tmp_path / "tile.png")
    assert out.dtype == torch.uint8 and out.shape == (3, 80, 80) and int(out.min()) == 200
    rgba[..., 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    with pytest.raises(ValueError, match="no opaque centred square"):
        read_style(tmp_path / "clear.png")


def test_the_command_prints_and_writes_the_table(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    photos = gradient_folder(tmp_path / "photos", count=2, size=(72, 80), texture=0.3)
    style = tmp_path / "style.png"
    save_png(_photo(4, 70)[0], style)
    vgg_file = tmp_path / "vgg16-test.pth"
    torch.save(_torchvision_state(seed=3), vgg_file)
    out = tmp_path / "style.json"
    code = train_cli(["evaluate-style", "--data", str(photos), "--holdout", "0", "--styles", str(style),
                      "--size", "64", "--style-size", "64", "--vgg", str(vgg_file), "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| content photo | 2 | 0.000 | 1.000 |" in printed and "mean/std colour transfer" in printed
    report = json.loads(out.read_text())
    assert [r["method"] for r in report["rows"]] == ["content photo", "mean/std colour transfer"]
    assert report["settings"]["styles"] == [str(style)]
    assert train_cli(["evaluate-style", "--data", str(photos), "--styles", str(tmp_path / "none.png"),
                      "--vgg", str(vgg_file)]) == 2
