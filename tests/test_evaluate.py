"""models.inpaint.evaluate and `python -m nodes.train evaluate-inpaint` on tiny generated images."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import metrics, weights
from models.archs.context_encoder import AnyMaskConfig, AnyMaskContextEncoder
from models.archs.patchgan import PatchGAN, PatchGANConfig
from models.inpaint import evaluate
from nodes.train import cli
from nodes.train import evaluate as evaluate_cli

pytestmark = pytest.mark.unit

SIZE = 32


def gradient_image(h: int = 40, w: int = 48) -> torch.Tensor:
    """A smooth colour gradient (uint8 [3,H,W]): what diffusion-style inpainting fills almost exactly."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    rgb = torch.stack([0.1 + 0.8 * x, 0.2 + 0.6 * y, 0.9 - 0.5 * (x + y) / 2])
    return (rgb * 255).round().to(torch.uint8)


def tiny_images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    noise = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 36, 36, generator=g), 5, 1, 2)[0]
    checker = ((torch.arange(30)[:, None] // 6 + torch.arange(44)[None] // 6) % 2).float().expand(3, -1, -1)
    return [gradient_image(), (noise * 255).to(torch.uint8), 0.2 + 0.6 * checker]


def perfect_fill(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return image.clone()


@pytest.fixture(scope="module")
def rows() -> list[evaluate.Row]:
    fills = {"perfect": perfect_fill, **evaluate.classical_fills(), "mean colour": evaluate.mean_fill}
    return evaluate.evaluate_inpainting(fills, tiny_images(), size=SIZE, seed=0)


def by_key(rows: list[evaluate.Row]) -> dict[tuple[str, str], evaluate.Row]:
    return {(r.method, r.mask): r for r in rows}


def test_a_row_for_every_method_and_mask_kind(rows: list[evaluate.Row]) -> None:
    methods = ["perfect", "cv2 Telea", "cv2 Navier-Stokes", "skimage biharmonic", "mean colour"]
    assert [(r.mask, r.method) for r in rows] == [(k, m) for k in evaluate.MASK_KINDS for m in methods]
    for r in rows:
        assert r.images == 3 and 0 < r.hole_percent < 60
        assert all(len(v) == 3 for v in r.per_image.values())
        assert r.seconds_per_image >= 0
    assert by_key(rows)[("perfect", "center")].hole_percent == pytest.approx(25.0)


def test_perfect_fill_scores_perfectly_and_beats_every_other_method(rows: list[evaluate.Row]) -> None:
    table = by_key(rows)
    for kind in evaluate.MASK_KINDS:
        best = table[("perfect", kind)]
        assert best.l1_percent == 0 and best.l2_percent == 0
        assert math.isinf(best.psnr_hole) and math.isinf(best.psnr_image)
        assert best.ssim_image == pytest.approx(1.0, abs=1e-12)
        for (method, other_kind), r in table.items():
            if other_kind == kind and method != "perfect":
                assert r.l1_percent > 0 and r.psnr_hole < best.psnr_hole and r.ssim_image < best.ssim_image


def test_classical_fills_beat_the_mean_colour_on_a_smooth_gradient() -> None:
    fills = {**evaluate.classical_fills(), **evaluate.torch_fills(), "mean colour": evaluate.mean_fill}
    table = by_key(evaluate.evaluate_inpainting(fills, [gradient_image()], size=SIZE, seed=1))
    for kind in evaluate.MASK_KINDS:
        mean = table[("mean colour", kind)]
        for method in ("cv2 Telea", "cv2 Navier-Stokes", "skimage biharmonic", "torch harmonic", "torch blur"):
            assert table[(method, kind)].l1_percent < mean.l1_percent, (method, kind)
            assert table[(method, kind)].psnr_hole > mean.psnr_hole, (method, kind)


def test_every_method_gets_the_same_masks_and_image_i_keeps_its_mask() -> None:
    seen: dict[str, list[torch.Tensor]] = {"a": [], "b": []}

    def spy(name: str) -> evaluate.Fill:
        def fill(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            seen[name].append(mask.clone())
            return evaluate.mean_fill(image, mask)

        return fill

    images = tiny_images()
    evaluate.evaluate_inpainting({"a": spy("a"), "b": spy("b")}, images, ("blocks", "irregular"), size=SIZE)
    assert len(seen["a"]) == len(seen["b"]) == 2 * (1 + 3)  # per kind: warm-up + 3 images
    assert all(torch.equal(x, y) for x, y in zip(seen["a"], seen["b"], strict=True))
    first = seen["a"][1], seen["a"][5]  # image 0 with blocks, with irregular
    seen["a"].clear()
    evaluate.evaluate_inpainting({"a": spy("a")}, images[:1], ("blocks", "irregular"), size=SIZE)
    assert torch.equal(seen["a"][1], first[0]) and torch.equal(seen["a"][3], first[1])


def test_classical_and_mean_fills_keep_the_known_pixels_exactly() -> None:
    image = metrics.prepare_image(tiny_images()[1], SIZE)
    mask = evaluate.make_masks("irregular", SIZE, 1, seed=2)
    keep = mask <= 0.5
    for fill in [*evaluate.classical_fills().values(), *evaluate.torch_fills().values(), evaluate.mean_fill]:
        out = fill(image, mask)
        assert out.shape == image.shape and torch.equal(out[keep.expand_as(out)], image[keep.expand_as(image)])


def test_prepare_image_centre_crops_and_resizes() -> None:
    image = torch.zeros(3, 20, 40, dtype=torch.uint8)
    image[:, :, 10:30] = 255  # the centre square is all white
    out = metrics.prepare_image(image, 16)
    assert out.shape == (1, 3, 16, 16) and torch.allclose(out, torch.ones_like(out), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[3,H,W\]"):
        metrics.prepare_image(torch.zeros(1, 3, 8, 8), 8)


def test_model_fill_runs_an_anymask_model_and_refuses_a_discriminator(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = AnyMaskConfig(base_channels=4, downsamplings=2, bottleneck_blocks=1)
    path = weights.save(AnyMaskContextEncoder(config), tmp_path / "tiny.safetensors", "context_encoder_anymask",
                        config, "inpaint")
    fill = evaluate.model_fill(weights.load(path))
    rows = evaluate.evaluate_inpainting({"tiny": fill}, tiny_images()[:2], ("center",), size=SIZE)
    assert len(rows) == 1 and math.isfinite(rows[0].psnr_hole)

    disc = weights.save(PatchGAN(PatchGANConfig(ndf=4, n_layers=1)), tmp_path / "d.safetensors", "patchgan",
                        PatchGANConfig(ndf=4, n_layers=1), "discriminate")
    expected = r"evaluation needs a model for the 'inpaint' task.*'patchgan' model for 'discriminate'"
    with pytest.raises(ValueError, match=expected):
        evaluate.model_fill(weights.load(disc))


def test_bad_arguments_and_fills_are_refused() -> None:
    images = tiny_images()[:1]
    with pytest.raises(ValueError, match="unknown mask kind 'holes'"):
        evaluate.evaluate_inpainting({"m": evaluate.mean_fill}, images, ("holes",), size=SIZE)
    with pytest.raises(ValueError, match="no images"):
        evaluate.evaluate_inpainting({"m": evaluate.mean_fill}, [], size=SIZE)
    with pytest.raises(ValueError, match="'bright' returned values outside"):
        evaluate.evaluate_inpainting({"bright": lambda i, m: i + 2.0}, images, ("center",), size=SIZE)


def test_missing_classical_packages_name_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    with pytest.raises(RuntimeError, match="pip install opencv-python-headless scikit-image"):
        evaluate.classical_fills()


def test_format_table_and_json_rows(rows: list[evaluate.Row]) -> None:
    table = evaluate.format_table(rows)
    lines = table.splitlines()
    assert len(lines) == 2 + len(rows) and lines[0].startswith("| mask | hole % | method | L1 %")
    assert "| center | 25.0 | perfect | 0.00 | 0.00 | inf | inf | 1.0000 |" in table
    data = json.loads(json.dumps([r.to_dict() for r in rows], allow_nan=False))
    assert data[0]["psnr_hole"] == "inf" and data[0]["per_image"]["psnr_image"] == ["inf"] * 3


# --------------------------------------------------------------------------------------------
# the command line


def test_cli_parser_reads_every_option() -> None:
    args = cli.build_parser().parse_args([
        "evaluate-inpaint", "--data", "photos", "--holdout", "0.2", "--model", "a.safetensors", "b.safetensors",
        "--model", "c.safetensors", "--masks", "center,irregular", "--size", "256", "--limit", "5", "--seed", "3",
        "--json", "out.json", "--no-classical",
    ])
    assert args.func is evaluate_cli.run
    assert args.model == ["a.safetensors", "b.safetensors", "c.safetensors"]
    assert (args.holdout, args.size, args.limit, args.seed, args.no_classical) == (0.2, 256, 5, 3, True)
    assert args.json == Path("out.json") and evaluate_cli.parse_mask_kinds(args.masks) == ("center", "irregular")
    defaults = cli.build_parser().parse_args(["evaluate-inpaint", "--data", "photos"])
    assert (defaults.model, defaults.masks, defaults.size, defaults.holdout) == ([], "center,blocks,irregular",
                                                                                 128, 0.1)
    with pytest.raises(ValueError, match="--masks must list"):
        evaluate_cli.parse_mask_kinds("center,circles")


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(tiny_images()[:2]):
        array = image if image.dtype == torch.uint8 else (image * 255).round().to(torch.uint8)
        Image.fromarray(np.ascontiguousarray(array.permute(1, 2, 0).numpy())).save(folder / f"p{i}.png")
    return folder


def test_cli_scores_all_images_with_holdout_zero_and_writes_json(
    photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    code = cli.main(["evaluate-inpaint", "--data", str(photo_dir), "--holdout", "0", "--size", str(SIZE),
                     "--masks", "center,blocks", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "2 images (all images, holdout 0.0)" in printed and "| blocks |" in printed
    report = json.loads(out.read_text())
    assert report["settings"]["images"] == ["p0.png", "p1.png"]
    assert report["settings"]["mask_kinds"] == ["center", "blocks"]
    assert {r["method"] for r in report["rows"]} == {"cv2 Telea", "cv2 Navier-Stokes", "skimage biharmonic",
                                                     "torch harmonic", "torch blur", "torch patch", "mean colour"}


def test_cli_refuses_a_model_of_the_wrong_task(
    photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = PatchGANConfig(ndf=4, n_layers=1)
    disc = weights.save(PatchGAN(config), tmp_path / "disc.safetensors", "patchgan", config, "discriminate")
    code = cli.main(["evaluate-inpaint", "--data", str(photo_dir), "--holdout", "0", "--model", str(disc),
                     "--no-classical"])
    assert code == 2
    assert "evaluation needs a model for the 'inpaint' task" in capsys.readouterr().err
