"""Other projects' networks through spandrel: detection, task, the crop/tile paths against a direct forward."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models import enhance, inpaint, weights
from models.archs import spandrel as foreign

pytestmark = pytest.mark.unit

pytest.importorskip("spandrel", reason="spandrel is one of ComfyUI's requirements")
from spandrel.architectures.Compact import Compact  # noqa: E402
from spandrel.architectures.DnCNN import DnCNN  # noqa: E402
from spandrel.architectures.DRUNet import DRUNet  # noqa: E402
from spandrel.architectures.FBCNN import FBCNN  # noqa: E402
from spandrel.architectures.LaMa import LaMa  # noqa: E402
from spandrel.architectures.NAFNet import NAFNet  # noqa: E402
from spandrel.architectures.SCUNet import SCUNet  # noqa: E402

# Small random instances built with spandrel's own classes (LaMa has one size only).
RESTORERS = {
    "SCUNet": lambda: SCUNet(config=[2, 2, 2, 2, 2, 2, 2], dim=64),
    "NAFNet": lambda: NAFNet(width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]),
    "FBCNN": lambda: FBCNN(nc=[8, 16, 32, 512], nb=4),
    "DRUNet": lambda: DRUNet(in_nc=4, out_nc=3, nc=[8, 16, 32, 64], nb=4),
    "DnCNN": lambda: DnCNN(in_nc=3, out_nc=3, nc=8, nb=4),
}


def _perturbed(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random, non-trivial weights (some architectures start their last layer at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.02)
    return net.eval()


def _save(net: torch.nn.Module, path: Path, wrapper: str | None = None) -> Path:
    """The way the projects ship them: a plain state dict (.pth, optionally under a training wrapper key) or
    a .safetensors file without metadata."""
    state = {k: v.contiguous().clone() for k, v in net.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save({wrapper: state} if wrapper else state, path)
    return path


@pytest.fixture(scope="module")
def lama() -> torch.nn.Module:
    torch.manual_seed(0)
    return _perturbed(LaMa(in_nc=4, out_nc=3))


@pytest.fixture(scope="module")
def lama_loaded(lama, tmp_path_factory) -> weights.LoadedModel:
    return weights.load(_save(lama, tmp_path_factory.mktemp("lama") / "big-lama.safetensors"))


def _image(h: int, w: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // 8 + 1, w // 8 + 1, generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear").clamp(0, 1)


@pytest.mark.parametrize(("name", "suffix"), [(n, ".pth") for n in RESTORERS] + [
    (n, ".safetensors") for n in ("NAFNet", "DRUNet", "DnCNN")])
def test_public_restorers_are_detected_as_enhance_models(tmp_path, name, suffix):
    path = _save(_perturbed(RESTORERS[name]()), tmp_path / f"{name}{suffix}", wrapper="params" if name == "NAFNet"
                 else None)
    loaded = weights.load(path)
    assert (loaded.arch, loaded.task, loaded.config.architecture) == ("spandrel", "enhance", name)
    assert loaded.config.channels == 3 and loaded.precisions == ("fp32",)
    assert loaded.expect(enhance.ACCEPTS, "GAN Enhance") is loaded
    with pytest.raises(ValueError, match="GAN Inpaint needs a model for the 'inpaint' task.*'spandrel' model for "
                       "'enhance'"):
        loaded.expect(inpaint.ACCEPTS, "GAN Inpaint")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_lama_is_detected_as_an_inpainter_with_its_size_rule(tmp_path, lama, lama_loaded, suffix):
    loaded = lama_loaded if suffix == ".safetensors" else weights.load(_save(lama, tmp_path / "big-lama.pth"))
    assert (loaded.arch, loaded.task, loaded.config.architecture) == ("spandrel", "inpaint", "LaMa")
    assert loaded.sizes.multiple == 8 and loaded.sizes.minimum == 16 and not loaded.config.fp16
    with pytest.raises(ValueError, match="GAN Enhance needs a model for the 'enhance' task"):
        loaded.expect(enhance.ACCEPTS, "GAN Enhance")


def _direct_restore(net: torch.nn.Module, name: str, image: torch.Tensor) -> torch.Tensor:
    """spandrel's own loading and call, without the pack."""
    import spandrel

    model = spandrel.ModelLoader().load_from_state_dict(net.state_dict()).eval()
    assert model.architecture.id == name
    return model(image)


@pytest.mark.parametrize("name", ["SCUNet", "NAFNet", "FBCNN", "DRUNet", "DnCNN"])
def test_one_tile_equals_spandrels_own_forward(tmp_path, name):
    net = _perturbed(RESTORERS[name]())
    loaded = weights.load(_save(net, tmp_path / f"{name}.pth"))
    image = _image(72, 88)
    with torch.no_grad():
        expected = _direct_restore(net, name, image)
    out = enhance.enhance(loaded, image, tile=512)
    assert out.shape == image.shape
    assert (out - expected).abs().max() < 1e-4  # float rounding of the [-1, 1] <-> [0, 1] round trip
    assert (out - image).abs().mean() > 1e-3  # the random network does change the picture


def test_tiles_agree_with_the_whole_image_away_from_tile_borders(tmp_path):
    net = _perturbed(DnCNN(in_nc=3, out_nc=3, nc=8, nb=4))  # four 3x3 layers: each pixel sees 4 px around it
    loaded = weights.load(_save(net, tmp_path / "dncnn.pth"))
    image = _image(150, 200)
    whole = enhance.enhance(loaded, image, tile=512)
    tiled = enhance.enhance(loaded, image, tile=64, overlap=16)
    ys, xs = enhance.tile_starts(150, 64, 16), enhance.tile_starts(200, 64, 16)
    near = torch.zeros(150, 200, dtype=torch.bool)
    for edge in {s for s in ys[1:]} | {s + 64 for s in ys[:-1]}:
        near[max(edge - 5, 0) : edge + 5, :] = True
    for edge in {s for s in xs[1:]} | {s + 64 for s in xs[:-1]}:
        near[:, max(edge - 5, 0) : edge + 5] = True
    assert (tiled - whole).abs()[..., ~near].max() < 1e-5
    assert (tiled - whole).abs().mean() < 2e-3


def test_a_grey_restorer_restores_each_colour_channel(tmp_path):
    net = _perturbed(DnCNN(in_nc=1, out_nc=1, nc=8, nb=4))
    loaded = weights.load(_save(net, tmp_path / "dncnn_grey.pth"))
    assert loaded.config.channels == 1
    image = _image(40, 56)
    out = enhance.enhance(loaded, image)
    with torch.no_grad():
        expected = torch.cat([_direct_restore(net, "DnCNN", image[:, c : c + 1]) for c in range(3)], dim=1)
    assert (out - expected).abs().max() < 1e-5
    grey = enhance.enhance(loaded, image[:, :1])
    assert grey.shape == (1, 3, 40, 56) and (grey[:, 0] - grey[:, 1]).abs().max() == 0


def test_strength_and_mask_apply_to_public_restorers(tmp_path):
    loaded = weights.load(_save(_perturbed(RESTORERS["DnCNN"]()), tmp_path / "dncnn.pth"))
    image = _image(48, 48)
    assert torch.equal(enhance.enhance(loaded, image, strength=0.0), image)
    mask = torch.zeros(1, 1, 48, 48)
    mask[..., :, 24:] = 1.0
    out = enhance.enhance(loaded, image, mask=mask)
    assert torch.equal(out[..., :24], image[..., :24]) and (out[..., 24:] - image[..., 24:]).abs().mean() > 1e-3


def _direct_inpaint(net: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    import spandrel

    model = spandrel.ModelLoader().load_from_state_dict(net.state_dict()).eval()
    with torch.no_grad():
        return model(image, mask)


def test_lama_crop_covering_the_image_equals_a_direct_forward(lama, lama_loaded):
    loaded = lama_loaded
    image = _image(96, 96)
    mask = torch.zeros(1, 1, 96, 96)
    mask[..., 36:60, 30:66] = 1.0
    out = inpaint.inpaint(loaded, image, mask, context=2.0, working_size=None)  # the crop is the whole image
    expected = _direct_inpaint(lama, image, mask)
    assert (out - expected).abs().max() < 1e-5
    assert torch.equal(out * (1 - mask), image * (1 - mask))
    assert (out - image).abs()[..., 36:60, 30:66].mean() > 1e-3


def test_lama_pads_to_its_multiple_and_keeps_every_pixel_outside_the_hole(lama_loaded):
    loaded = lama_loaded
    image = torch.cat([_image(101, 90, seed=3), _image(101, 90, seed=4)])
    mask = torch.zeros(2, 1, 101, 90)
    mask[0, :, 10:30, 5:25] = 1.0
    mask[1, :, 60:99, 50:88] = 1.0  # reaches the border: the crop is reflected there
    out = inpaint.inpaint(loaded, image, mask, context=0.5, working_size=64)  # 64 px: the crop is scaled down
    assert out.shape == image.shape and torch.isfinite(out).all()
    assert torch.equal(out * (1 - mask), image * (1 - mask))
    assert ((out - image).abs() * mask).sum() > 0


def test_mat_gets_a_square_crop_of_at_least_512_px(tmp_path):
    extra = pytest.importorskip("spandrel_extra_arches.architectures.MAT", reason="MAT needs spandrel_extra_arches")
    torch.manual_seed(0)
    loaded = weights.load(_save(extra.MAT().eval(), tmp_path / "MAT_Places512_G.safetensors"))
    assert (loaded.task, loaded.config.architecture, loaded.config.square) == ("inpaint", "MAT", True)
    assert loaded.sizes.minimum == 512 and loaded.sizes.multiple == 512
    seen = []
    loaded.module.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    image = _image(120, 200)
    mask = torch.zeros(1, 1, 120, 200)
    mask[..., 40:80, 20:60] = 1.0  # a wide image, a small hole near the left border
    out = inpaint.inpaint(loaded, image, mask)
    assert seen == [(1, 3, 512, 512)]
    assert torch.equal(out * (1 - mask), image * (1 - mask)) and torch.isfinite(out).all()


def test_upscalers_and_face_restorers_are_refused_with_where_they_belong(tmp_path):
    path = _save(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2), tmp_path / "2x_compact.pth")
    with pytest.raises(ValueError, match=r"2x_compact.pth: a 2x Compact upscaler; .*Upscale Image \(using Model\)"):
        weights.load(path)


def test_convert_writes_our_format_and_loads_back_identically(tmp_path):
    net = _perturbed(RESTORERS["NAFNet"]())
    src = _save(net, tmp_path / "nafnet.pth")
    dst = weights.convert(src, tmp_path / "nafnet.safetensors")
    meta = weights.read_metadata(dst)
    assert meta["arch"] == "spandrel" and '"architecture": "NAFNet"' in meta["config"] and meta["task"] == "enhance"
    image = _image(40, 40)
    assert torch.equal(enhance.enhance(weights.load(dst), image), enhance.enhance(weights.load(src), image))


def test_a_file_of_ours_whose_tensors_are_another_architecture_is_refused(tmp_path):
    dst = weights.convert(_save(_perturbed(RESTORERS["NAFNet"]()), tmp_path / "a.pth"), tmp_path / "a.safetensors")
    other = weights.load(_save(_perturbed(RESTORERS["DnCNN"]()), tmp_path / "b.pth"))
    config = weights.load(dst).config
    weights.save(other.module, tmp_path / "mixed.safetensors", "spandrel", config, "enhance")
    with pytest.raises(ValueError, match="says spandrel architecture 'NAFNet', its tensors are 'DnCNN'"):
        weights.load(tmp_path / "mixed.safetensors")


def test_from_spandrel_takes_comfyuis_upscale_model_objects(tmp_path):
    import spandrel

    descriptor = spandrel.ModelLoader().load_from_state_dict(_perturbed(RESTORERS["DnCNN"]()).state_dict())
    loaded = weights.from_spandrel(descriptor, "upscale_model")
    assert (loaded.arch, loaded.task) == ("spandrel", "enhance")
    image = _image(32, 32)
    with torch.no_grad():
        assert (enhance.enhance(loaded, image) - descriptor(image)).abs().max() < 1e-5
    upscaler = spandrel.ModelLoader().load_from_state_dict(
        Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4).state_dict())
    with pytest.raises(ValueError, match="upscale_model: a 4x Compact upscaler"):
        weights.from_spandrel(upscaler, "upscale_model")


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_carrying_code_is_refused_even_with_lama_keys(tmp_path, lama):
    marker = tmp_path / "ran"
    payload = _Payload()
    payload.marker = marker
    state = dict(list(lama.state_dict().items())[:20])
    state["evil"] = payload
    path = tmp_path / "big-lama.pth"
    with open(path, "wb") as f:
        pickle.dump(state, f)
    with pytest.raises(ValueError, match="refused to load: not a plain tensor checkpoint"):
        weights.load(path)
    assert not marker.exists()


def test_torchscript_files_are_refused_with_what_to_use_instead(tmp_path):
    path = tmp_path / "big-lama.pt"
    torch.jit.script(torch.nn.Conv2d(3, 3, 3)).save(str(path))
    with pytest.raises(ValueError, match=r"big-lama.pt: refused to load: a TorchScript file .*plain state dict"):
        weights.load(path)


def test_without_spandrel_the_core_works_and_foreign_files_name_it(tmp_path):
    lama_path = _save(_perturbed(RESTORERS["DnCNN"]()), tmp_path / "dncnn.pth")
    ours = Path(__file__).resolve().parents[1] / "models" / "weights" / "enhance_restore.safetensors"
    script = (
        "import sys; sys.modules['spandrel'] = None\n"  # importing spandrel now fails, as where it is not installed
        "from models import weights\n"
        f"assert weights.load({str(ours)!r}).task == 'enhance'\n"
        "try:\n"
        f"    weights.load({str(lama_path)!r})\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "dncnn.pth: no known architecture matches" in result.stdout
    assert "'spandrel' package, which is not installed here (pip install spandrel" in result.stdout
    assert foreign.available()  # here it is installed
