"""Faults through the HTTP API of a real ComfyUI: bad inputs across our nodes, broken and hostile weights
files, huge and tiny images, NaN, and interrupting a long prompt. Every case ends in the correct result or
in a clear node error, and after every case the server still runs a good prompt.

The bad-input matrix is CASES x TARGETS: a case builds the inputs (a mask of the wrong size, an RGBA image,
NaN ...), a target is one of our nodes. Success is the default expectation and each case checks its result;
the rows that must fail are listed in ERRORS with the message they must show. A new node joins the matrix
with one Target row (and its error rows, where a case is refused).
"""

from __future__ import annotations

import itertools
import math
import pickle
import re
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from models import weights
from models.archs import adain
from models.archs.context_encoder import AnyMaskConfig, AnyMaskContextEncoder
from models.archs.edit import EditConfig, EditGenerator
from models.archs.enhance import EnhanceConfig, EnhanceNet
from models.archs.patchgan import PatchGAN, PatchGANConfig
from models.archs.pix2pix import UnetGenerator, UnetGeneratorConfig
from models.archs.transformer_net import TransformerNet, TransformerNetConfig
from nodes.harness.client import ExecutionFailed, ExecutionInterrupted, PromptRejected

pytestmark = pytest.mark.integration

W, H = 96, 64  # the small test photo
HOLE = (slice(16, 40), slice(24, 56))  # rows, cols: the transparent box of the RGBA upload
EVIL_MARKER = "gan_edit_pickle_ran"


# -- graphs ------------------------------------------------------------------------------------------------
class Graph(dict):
    """An API-format prompt built node by node; ``save`` remembers which SaveImage holds which picture."""

    def __init__(self) -> None:
        super().__init__()
        self.saves: dict[str, str] = {}

    def add(self, class_type: str, **inputs: Any) -> str:
        node_id = str(len(self) + 1)
        self[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id

    def save(self, link: list, name: str) -> None:
        node_id = self.add("SaveImage", images=link, filename_prefix=f"faults/{name}")
        self.saves[node_id] = name


def run(comfy, graph: Graph, out: Path) -> dict[str, np.ndarray]:
    """Queue, wait, download; the first saved picture of each named SaveImage as an int16 array (H, W, C)."""
    files = comfy.client.run(graph, out, stem="f")
    pictures: dict[str, np.ndarray] = {}
    for path in sorted(files):
        name = graph.saves[path.stem.split("_")[1]]
        with Image.open(path) as im:
            pictures.setdefault(name, np.asarray(im).astype(np.int16))
    assert set(pictures) == set(graph.saves.values()), f"missing outputs: {set(graph.saves.values()) - set(pictures)}"
    return pictures


def photo(graph: Graph, name: str = "faults_rgb.png", batch: int = 1) -> tuple[list, list]:
    """LoadImage (repeated to ``batch``): links to the IMAGE and to the MASK ComfyUI made from its alpha."""
    load = graph.add("LoadImage", image=name)
    image = [load, 0]
    if batch > 1:
        image = [graph.add("RepeatImageBatch", image=image, amount=batch), 0]
    return image, [load, 1]


def solid(graph: Graph, value: float, width: int = W, height: int = H) -> list:
    return [graph.add("SolidMask", value=value, width=width, height=height), 0]


def box(graph: Graph, width: int = W, height: int = H, batch: int = 1) -> list:
    """A box mask over HOLE, in pixels."""
    rows, cols = HOLE
    return [graph.add("GanEditBoxMask", width=width, height=height, batch_size=batch, units="pixels",
                      centered=False, x=float(cols.start), y=float(rows.start), box_width=float(cols.stop - cols.start),
                      box_height=float(rows.stop - rows.start)), 0]  # fmt: skip


# -- the nodes under test ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    node: str
    display: str
    settings: dict[str, Any]
    model: str | None = None  # file in models/gan_edit/ (written by the fixture)
    image_inputs: tuple[str, ...] = ("image",)  # every IMAGE input gets the case's image
    mask_input: str | None = None
    mask_required: bool = False
    hole_above_half: bool = False  # the mask's values > 0.5 make the hole; else soft values are blend weights
    mask_output: bool = False  # output 0 is a MASK (saved through MaskToImage)

    def apply(self, graph: Graph, image: list | None, mask: list | None = None, model: str | None = None) -> list:
        inputs = dict(self.settings)
        for name in self.image_inputs:
            inputs[name] = image
        if self.mask_input and mask is not None:
            inputs[self.mask_input] = mask
        if self.model:
            inputs["model"] = [graph.add("GanEditLoadModel", model_name=model or self.model), 0]
        link = [graph.add(self.node, **inputs), 0]
        return [graph.add("MaskToImage", mask=link), 0] if self.mask_output else link


TARGETS = {
    "inpaint": Target("GanEditInpaint", "GAN Inpaint", dict(feather=0, context=0.5, working_size=1024,
                      colour_match=False, mask_size_mismatch="error"), "faults_inpaint.safetensors",
                      mask_input="mask", mask_required=True, hole_above_half=True),
    "edit": Target("GanEditEdit", "GAN Edit", dict(instruction="recolour", colour="#1e90ff", strength=1.0, amount=0.5,
                   context=0.5, working_size=512, mask_size_mismatch="error"), "faults_edit.safetensors",
                   mask_input="mask", mask_required=True),
    "enhance": Target("GanEditEnhance", "GAN Enhance", dict(strength=1.0, tile_size=512, tile_overlap=32),
                      "faults_enhance.safetensors", mask_input="mask"),
    "style_transfer": Target("GanEditStyleTransfer", "GAN Style Transfer", dict(alpha=1.0, preserve_colour=False,
                             style_weight=1.0), "faults_adain.safetensors", ("content", "style"), "mask"),
    "stylize": Target("GanEditStylize", "GAN Stylize", dict(strength=1.0, tile=0, overlap=32),
                      "faults_fast_style.safetensors"),
    "image_to_image": Target("GanEditImageToImage", "GAN Image to Image", dict(normalization="eval",
                             size_handling="pad"), "faults_unet.safetensors"),
    "mask_from_image": Target("GanEditMaskFromImage", "Mask From Image", dict(mode="luma", threshold=0.5,
                              colour="#00ff00", tolerance=0.1, invert=False), mask_output=True),
    "mask_from_alpha": Target("GanEditMaskFromImage", "Mask From Image", dict(mode="alpha", threshold=0.5,
                              colour="#00ff00", tolerance=0.1, invert=False), mask_output=True),
    "box_mask": Target("GanEditBoxMask", "Box Mask", dict(width=8, height=8, batch_size=1, units="fraction",
                       centered=True, x=0.0, y=0.0, box_width=0.5, box_height=0.5), mask_output=True),
    "mask_refine": Target("GanEditMaskRefine", "Mask Refine", dict(threshold=0.0, grow=0, feather=0,
                          invert=False), image_inputs=(), mask_input="mask", mask_output=True),
}  # fmt: skip
IMAGE_TARGETS = [name for name, t in TARGETS.items() if t.image_inputs]
MASKED_TARGETS = [name for name, t in TARGETS.items() if t.image_inputs and t.mask_input]  # image + mask
MODEL_TARGETS = [name for name, t in TARGETS.items() if t.model]
CHANGES_IMAGE = {"inpaint", "enhance", "style_transfer"}  # masked image nodes whose result differs from the input


# -- the cases: each builds its graph and returns the check of a successful result ----------------------------
Check = Callable[[dict[str, np.ndarray]], None]


def _size_is(pictures: dict[str, np.ndarray], height: int, width: int) -> None:
    assert pictures["out"].shape[:2] == (height, width), pictures["out"].shape


def case_mask_size_mismatch(g: Graph, target: Target) -> Check:
    image, default_mask = photo(g)  # an image without alpha: ComfyUI gives a 64x64 zero mask
    g.save(target.apply(g, image, default_mask), "out")
    return lambda p: _size_is(p, H, W)


def case_batch_mismatch(g: Graph, target: Target) -> Check:
    image, _ = photo(g, batch=2)
    g.save(target.apply(g, image, box(g, batch=3)), "out")
    return lambda p: _size_is(p, H, W)


def _mask_case(g: Graph, target: Target, mask: list) -> None:
    image, _ = photo(g)
    if target.image_inputs:
        g.save(image, "input")
    if target.image_inputs and not target.mask_required:
        g.save(target.apply(g, image), "unmasked")
    g.save(target.apply(g, image, mask), "out")


def case_empty_mask(g: Graph, target: Target) -> Check:
    _mask_case(g, target, solid(g, 0.0))

    def check(p):
        if target.image_inputs:  # nothing to change: the input comes back exactly
            assert np.array_equal(p["out"], p["input"])
        else:
            assert (p["out"] == 0).all()

    return check


def case_full_mask(g: Graph, target: Target) -> Check:
    _mask_case(g, target, solid(g, 1.0))

    def check(p):
        if not target.image_inputs:
            assert (p["out"] == 255).all()
            return
        assert np.abs(p["out"] - p["input"]).mean() > 1.0  # the whole image was worked on
        if not target.mask_required:  # a full mask is the same as no mask
            assert np.abs(p["out"] - p["unmasked"]).max() <= 1

    return check


def case_soft_mask(g: Graph, target: Target) -> Check:
    value = 0.4 if target.mask_required else 0.5
    _mask_case(g, target, solid(g, value))

    def check(p):
        if not target.image_inputs:
            assert set(np.unique(p["out"])) <= {127, 128}, np.unique(p["out"])
            return
        change = np.abs(p["out"] - p["input"])
        if target.hole_above_half:  # no value above 0.5: no hole, the input comes back
            assert (change == 0).all()
        elif target.mask_required:  # blend weight 0.4: at most 0.4 of any change
            assert change.max() <= value * 255 + 1 and change.mean() > 0.5
        else:  # half way between the input and the unmasked result
            assert np.abs(p["out"] - (p["input"] + p["unmasked"]) / 2).max() <= 1.0 and change.mean() > 0.5

    return check


def case_feathered_mask(g: Graph, target: Target) -> Check:
    image, _ = photo(g)
    mask = [g.add("GanEditMaskRefine", mask=box(g), threshold=0.5, grow=0, feather=6, invert=False), 0]
    g.save(image, "input")
    g.save([g.add("MaskToImage", mask=mask), 0], "mask")
    g.save(target.apply(g, image, mask), "out")

    def check(p):
        weight = p["mask"][..., 0]
        assert 0 < (weight == 0).mean() < 1 and ((weight > 0) & (weight < 255)).any()  # really soft
        change = np.abs(p["out"] - p["input"]).max(axis=-1)
        assert change[weight == 0].max() <= 1  # outside the mask's support nothing moves
        assert change[weight == 255].mean() > 1.0

    return check


def _rgba_alpha(g: Graph) -> tuple[list, list]:
    image, transparent = photo(g, "faults_rgba.png")  # ComfyUI: RGB image + mask = 1 - alpha
    return image, transparent


def case_rgba_image(g: Graph, target: Target) -> Check:
    image, transparent = _rgba_alpha(g)
    rgba = [g.add("JoinImageWithAlpha", image=image, alpha=transparent), 0]  # a 4-channel IMAGE
    g.save(rgba, "input")
    g.save(target.apply(g, rgba, box(g)), "out")

    def check(p):
        _size_is(p, H, W)
        assert p["input"].shape[-1] == 4 and (p["input"][HOLE][..., 3] == 0).all()
        if target.node == "GanEditEnhance":  # the alpha channel is kept as it was
            assert p["out"].shape[-1] == 4 and np.array_equal(p["out"][..., 3], p["input"][..., 3])
        if target.settings.get("mode") == "alpha":  # the transparent box is the hole
            assert np.array_equal(p["out"][..., 0] == 255, p["input"][..., 3] == 0)

    return check


def case_alpha_as_mask(g: Graph, target: Target) -> Check:
    image, transparent = _rgba_alpha(g)
    g.save(image, "input")
    g.save(target.apply(g, image, transparent), "out")

    def check(p):
        change = np.abs(p["out"] - p["input"]).max(axis=-1)
        inside = np.zeros((H, W), bool)
        inside[HOLE] = True
        assert (change[~inside] == 0).all()  # only the transparent box is worked on
        assert change[inside].mean() > 1.0

    return check


def case_grey_image(g: Graph, target: Target) -> Check:
    image, _ = photo(g, "faults_grey.png")
    g.save(image, "input")
    g.save(target.apply(g, image, box(g)), "out")

    def check(p):
        _size_is(p, H, W)
        grey = p["input"]
        assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
        if target.mask_input:
            outside = np.ones((H, W), bool)
            outside[HOLE] = False
            assert np.array_equal(p["out"][outside], grey[outside])

    return check


def case_tiny_image(g: Graph, target: Target) -> Check:
    image, _ = photo(g, "faults_8x8.png")
    mask = [g.add("GanEditBoxMask", **TARGETS["box_mask"].settings), 0]  # the centre 4x4 of 8x8
    g.save(target.apply(g, image, mask), "out")
    return lambda p: _size_is(p, 8, 8)


def case_nan_mask(g: Graph, target: Target) -> Check:
    image, _ = photo(g)
    g.save(target.apply(g, image if target.image_inputs else None, solid(g, math.nan)), "out")
    return lambda p: pytest.fail("a NaN mask must be refused")


def case_nan_image(g: Graph, target: Target) -> Check:
    # SolidMask's FLOAT input passes ComfyUI's min/max validation with NaN (every comparison is False), and
    # MaskToImage turns the mask into an IMAGE: a core-only path by which NaN reaches our nodes.
    nan_image = [g.add("MaskToImage", mask=solid(g, math.nan)), 0]
    g.save(target.apply(g, nan_image, box(g)), "out")
    return lambda p: _size_is(p, H, W)


def case_wrong_task_model(g: Graph, target: Target) -> Check:
    image, _ = photo(g)
    g.save(target.apply(g, image, box(g), model="faults_discriminator.safetensors"), "out")
    return lambda p: pytest.fail("a discriminator must not be accepted")


CASES: dict[str, tuple[Callable[[Graph, Target], Check], list[str]]] = {
    "mask_size_mismatch": (case_mask_size_mismatch, MASKED_TARGETS),
    "batch_mismatch": (case_batch_mismatch, MASKED_TARGETS),
    "empty_mask": (case_empty_mask, [n for n, t in TARGETS.items() if t.mask_input]),
    "full_mask": (case_full_mask, [n for n, t in TARGETS.items() if t.mask_input]),
    "soft_mask": (case_soft_mask, [n for n, t in TARGETS.items() if t.mask_input]),
    "feathered_mask": (case_feathered_mask, MASKED_TARGETS),
    "rgba_image": (case_rgba_image, IMAGE_TARGETS),
    "alpha_as_mask": (case_alpha_as_mask, MASKED_TARGETS),
    "grey_image": (case_grey_image, IMAGE_TARGETS),
    "tiny_image": (case_tiny_image, IMAGE_TARGETS),
    "nan_mask": (case_nan_mask, [n for n, t in TARGETS.items() if t.mask_input]),
    "nan_image": (case_nan_image, IMAGE_TARGETS),
    "wrong_task_model": (case_wrong_task_model, MODEL_TARGETS),
}

SIZE = r"mask size must equal the (image|content) size \(64, 96\) \(H, W\), got \(64, 64\)"
BATCH = r"mask batch must be 1 or equal the (image|content) batch 2"
ERRORS: dict[tuple[str, str], str] = {
    **{("mask_size_mismatch", t): SIZE for t in MASKED_TARGETS},
    **{("batch_mismatch", t): BATCH for t in MASKED_TARGETS},
    ("rgba_image", "inpaint"): r"image must have 3 channels \(BCHW\), got shape \(1, 4, 64, 96\)",
    ("rgba_image", "edit"): r"image must have 3 channels \(BCHW\), got shape \(1, 4, 64, 96\)",
    ("rgba_image", "style_transfer"): r"content must have 1 or 3 channels \(BCHW\), got shape \(1, 4, 64, 96\)",
    ("rgba_image", "stylize"): r"image must have 1 or 3 channels \(BCHW\), got shape \(1, 4, 64, 96\)",
    ("rgba_image", "image_to_image"): r"image must have 3 channels \(BCHW\), got shape \(1, 4, 64, 96\)",
    ("rgba_image", "mask_from_image"): r"image must have 1 or 3 channels \(BCHW\), got shape \(1, 4, 64, 96\)",
    ("tiny_image", "style_transfer"): "content is 8x8 px; this model needs at least 16x16",
    **{("nan_mask", t): "mask contains NaN or infinite values" for t, v in TARGETS.items() if v.mask_input},
    **{("nan_image", t): "(image|content) contains NaN or infinite values" for t in IMAGE_TARGETS},
    **{("wrong_task_model", t): f"{TARGETS[t].display} needs .*'discriminate'" for t in MODEL_TARGETS},
    # the alpha mode needs an alpha channel (checked before the values)
    **{(case, "mask_from_alpha"): r"image_rgba must have 4 channels \(BCHW\), got shape \(1, 3, "
       for case in ("grey_image", "tiny_image", "nan_image")},
}


def _rows():
    for case, (_, targets) in CASES.items():
        for target in targets:
            yield pytest.param(case, target, id=f"{case}-{target}")


# -- fixtures --------------------------------------------------------------------------------------------------
def _evil_pickle(path: Path, marker: Path, torch_zip: bool) -> None:
    """A checkpoint whose unpickling runs ``touch marker`` (pickle REDUCE of os.system)."""
    import os

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    if torch_zip:
        torch.save({"state_dict": {"weight": torch.zeros(2)}, "hook": Payload()}, path)
    else:
        path.write_bytes(pickle.dumps({"weight": Payload()}, protocol=2))


@dataclass(frozen=True)
class FaultServer:
    server: Any
    client: Any
    marker: Path  # a file that exists only if unpickling ran code


@pytest.fixture(scope="module")
def server(comfy, repo_root, tmp_path_factory):
    """The shared server with the test pictures uploaded and small models (good, wrong, broken, hostile)."""
    pics = tmp_path_factory.mktemp("faults_inputs")
    with Image.open(repo_root / "workflows" / "inputs" / "coffee.jpg") as im:
        rgb = im.convert("RGB").resize((W, H), Image.Resampling.BICUBIC)
    rgb.save(pics / "faults_rgb.png")
    rgba = rgb.convert("RGBA")
    alpha = np.full((H, W), 255, np.uint8)
    alpha[HOLE] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(pics / "faults_rgba.png")
    rgb.convert("L").save(pics / "faults_grey.png")
    rgb.resize((8, 8), Image.Resampling.BICUBIC).save(pics / "faults_8x8.png")
    for path in sorted(pics.iterdir()):
        comfy.client.upload_image(path)
    for path in sorted((repo_root / "workflows" / "inputs").glob("*.jpg")):  # the shipped workflows' photos
        comfy.client.upload_image(path)

    folder = comfy.server.base_dir / "models" / "gan_edit"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    inpaint = AnyMaskConfig(base_channels=8, downsamplings=2, bottleneck_blocks=1, norm="batch")
    weights.save(AnyMaskContextEncoder(inpaint), folder / "faults_inpaint.safetensors", "context_encoder_anymask",
                 inpaint, "inpaint")
    enhance = EnhanceConfig(base_channels=8, levels=2, blocks=1, context_size=32)
    net = EnhanceNet(enhance)
    for head in (net.tail, net.context.colour, net.context.film):  # zero-initialised heads: perturb them
        nn.init.normal_(head.weight, std=0.05)
        nn.init.normal_(head.bias, std=0.02)
    weights.save(net, folder / "faults_enhance.safetensors", "enhance_unet", enhance, "enhance")
    weights.save(EnhanceNet(EnhanceConfig()), folder / "faults_enhance_default.safetensors", "enhance_unet",
                 EnhanceConfig(), "enhance")  # the default width: some milliseconds per tile
    weights.save(adain.ARCHITECTURE.build(adain.AdaINConfig()), folder / "faults_adain.safetensors", "adain",
                 adain.AdaINConfig(), "stylize")
    edit = EditConfig(base_channels=6, downsamplings=2, blocks=1, embed_dim=4)
    generator = EditGenerator(edit)
    with torch.no_grad():  # random weights, pushed away from the initialisation's near-identity edit
        for parameter in generator.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    weights.save(generator, folder / "faults_edit.safetensors", "edit", edit, "edit")
    fast = TransformerNetConfig(widths=(4, 8, 8), residual_blocks=1)
    weights.save(TransformerNet(fast), folder / "faults_fast_style.safetensors", "transformer_net", fast, "stylize")
    unet = UnetGeneratorConfig(ngf=4, num_downs=5, norm="instance", use_dropout=False)
    weights.save(UnetGenerator(unet), folder / "faults_unet.safetensors", "pix2pix_unet", unet, "translate")
    d = PatchGANConfig(input_nc=3, ndf=4, n_layers=1)
    weights.save(PatchGAN(d), folder / "faults_discriminator.safetensors", "patchgan", d, "discriminate")

    good = (folder / "faults_inpaint.safetensors").read_bytes()
    (folder / "broken_truncated_tensors.safetensors").write_bytes(good[: len(good) - 1000])
    (folder / "broken_truncated_header.safetensors").write_bytes(good[:40])
    (folder / "broken_empty.safetensors").write_bytes(b"")
    save_file({"weight": torch.zeros(4)}, str(folder / "broken_foreign.safetensors"), metadata={"format": "pt"})
    (folder / "broken_junk.pth").write_bytes(struct.pack("<Q", 7) + b"\x00not a checkpoint" * 8)
    marker = tmp_path_factory.mktemp("marker") / EVIL_MARKER
    _evil_pickle(folder / "broken_evil_pickle.pth", marker, torch_zip=False)
    _evil_pickle(folder / "broken_evil_torch.pt", marker, torch_zip=True)
    # the payloads are real: the same files built for a control marker run their command under a plain load
    control = tmp_path_factory.mktemp("control")
    for torch_zip in (False, True):
        _evil_pickle(control / "evil.pt", control / "ran", torch_zip)
        if torch_zip:
            torch.load(control / "evil.pt", weights_only=False)
        else:
            pickle.loads((control / "evil.pt").read_bytes())
        assert (control / "ran").exists()
        (control / "ran").unlink()
    return FaultServer(comfy.server, comfy.client, marker)


_health_runs = itertools.count()


def assert_server_runs_a_good_prompt(comfy, out: Path) -> None:
    """A fresh (uncached) inpaint of a box: pixels outside it are kept, the box is repainted."""
    shift = next(_health_runs) % 16
    g = Graph()
    image, _ = photo(g)
    mask = [g.add("GanEditBoxMask", width=W, height=H, batch_size=1, units="pixels", centered=False,
                  x=float(8 + shift), y=8.0, box_width=24.0, box_height=20.0), 0]  # fmt: skip
    g.save(image, "input")
    g.save(TARGETS["inpaint"].apply(g, image, mask), "out")
    p = run(comfy, g, out / "health")
    change = np.abs(p["out"] - p["input"]).max(axis=-1)
    inside = np.zeros((H, W), bool)
    inside[8:28, 8 + shift : 32 + shift] = True
    assert (change[~inside] == 0).all() and change[inside].mean() > 1.0


# -- the matrix ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "target"), list(_rows()))
def test_bad_input_gives_the_right_result_or_a_clear_error(server, case, target, tmp_path):
    build, _ = CASES[case]
    graph = Graph()
    check = build(graph, TARGETS[target])
    expected_error = ERRORS.get((case, target))
    if expected_error is None:
        check(run(server, graph, tmp_path))
    else:
        with pytest.raises(ExecutionFailed, match=expected_error):
            run(server, graph, tmp_path)
    assert_server_runs_a_good_prompt(server, tmp_path)


BROKEN_FILES = [
    ("broken_truncated_tensors.safetensors", r"truncated: tensors need \d+ bytes, file has \d+"),
    ("broken_truncated_header.safetensors", r"truncated: header claims \d+ bytes"),
    ("broken_empty.safetensors", r"not a safetensors file \(only 0 bytes\)"),
    ("broken_foreign.safetensors", "not a gan-edit weights file"),
    ("broken_junk.pth", "refused to load: not a plain tensor checkpoint"),
    ("broken_evil_pickle.pth", "refused to load: not a plain tensor checkpoint"),
    ("broken_evil_torch.pt", "refused to load: not a plain tensor checkpoint"),
]


@pytest.mark.parametrize(("target", "broken"), [(t, b) for t in MODEL_TARGETS for b in BROKEN_FILES],
                         ids=lambda x: x if isinstance(x, str) else x[0].removeprefix("broken_"))
def test_broken_weights_give_a_clear_error_and_run_no_code(server, target, broken, tmp_path):
    name, message = broken
    graph = Graph()
    image, _ = photo(graph)
    graph.save(TARGETS[target].apply(graph, image, box(graph), model=name), "out")
    with pytest.raises(ExecutionFailed, match=message) as caught:
        run(server, graph, tmp_path)
    assert caught.value.node_type == "GanEditLoadModel" and name in caught.value.exception_message
    time.sleep(0.2)
    assert not server.marker.exists(), "unpickling a weights file ran code"
    assert_server_runs_a_good_prompt(server, tmp_path)


def test_a_sample_of_the_fuzzed_weights_files_through_the_server(server, tmp_path):
    """Every 40th file of tests/hostile.py (all kinds) loaded by a real Load GAN Model: each a clear node error
    (or, for a harmless flip, a model that runs), no code run, the server's memory bounded, and it goes on."""
    from hostile import make_hostile

    files = make_hostile(tmp_path / "hostile", server.marker)
    folder = server.server.base_dir / "models" / "gan_edit"
    sample = files[::40]
    assert len({kind.split("_")[0] for _, kind, _ in sample}) >= 5
    rss_before = server.server.rss_bytes()
    outcomes = []
    for path, kind, benign in sample:
        name = f"fuzz_{path.name}"
        (folder / name).write_bytes(path.read_bytes())
        graph = Graph()
        image, _ = photo(graph)
        graph.save(TARGETS["enhance"].apply(graph, image, box(graph), model=name), "out")
        try:
            run(server, graph, tmp_path)
            outcomes.append((name, "ran"))
            assert benign, f"{name} ({kind}) should have been refused"
        except ExecutionFailed as failed:
            assert failed.exception_type.endswith(("ValueError", "FileNotFoundError")), failed.exception_type
            assert name in failed.exception_message, failed
            if not benign:  # a harmless flip may load and be refused by the consumer (e.g. a translate model)
                assert failed.node_type == "GanEditLoadModel", failed
            outcomes.append((name, "refused"))
    assert sum(outcome == "refused" for _, outcome in outcomes) >= len(sample) - 3
    time.sleep(0.2)
    assert not server.marker.exists(), "a pickle payload ran inside ComfyUI"
    assert server.server.rss_bytes() - rss_before < 300 * 2**20
    assert_server_runs_a_good_prompt(server, tmp_path)


@pytest.mark.parametrize("target", MODEL_TARGETS)
def test_missing_weights_file_names_the_file(server, target, tmp_path):
    graph = Graph()
    image, _ = photo(graph)
    graph.save(TARGETS[target].apply(graph, image, box(graph), model="not_there.safetensors"), "out")
    # ComfyUI 0.3.75 does not check a V3 combo value against its options when the prompt is queued, so the
    # loader itself reports the missing file; a server that validates combos rejects the prompt instead.
    with pytest.raises((PromptRejected, ExecutionFailed), match="not_there.safetensors") as caught:
        run(server, graph, tmp_path)
    if isinstance(caught.value, ExecutionFailed):
        assert caught.value.node_type == "GanEditLoadModel" and "not found" in caught.value.exception_message
    else:
        assert [e["class_type"] for e in caught.value.payload["node_errors"].values()] == ["GanEditLoadModel"]
    assert_server_runs_a_good_prompt(server, tmp_path)


# -- huge images -------------------------------------------------------------------------------------------
def test_an_8192_square_photo_through_a_mask_node_and_inpaint(server, tmp_path):
    """8192 x 8192 (67 Mpx): a box mask takes the image's size, inpaint fills a small hole, and only a crop
    around the hole (found by Mask Bounding Box) is saved, so no 8192^2 PNG is written."""
    g = Graph()
    load = g.add("LoadImage", image="coffee.jpg")
    big = [g.add("ImageScale", image=[load, 0], upscale_method="bilinear", width=8192, height=8192,
                 crop="disabled"), 0]  # fmt: skip
    mask = [g.add("GanEditBoxMask", width=64, height=64, batch_size=1, image=big, units="pixels", centered=False,
                  x=4000.0, y=6100.0, box_width=96.0, box_height=64.0), 0]  # fmt: skip
    filled = TARGETS["inpaint"].apply(g, big, mask)
    bbox = g.add("GanEditMaskBoundingBox", mask=mask, padding=32)

    def around_hole(link: list) -> list:
        return [g.add("ImageCrop", image=link, width=[bbox, 2], height=[bbox, 3], x=[bbox, 0], y=[bbox, 1]), 0]

    g.save(around_hole(big), "input")
    g.save(around_hole(filled), "out")
    g.save(around_hole([g.add("MaskToImage", mask=mask), 0]), "mask")
    p = run(server, g, tmp_path)
    assert p["input"].shape == p["out"].shape == (64 + 64, 96 + 64, 3)
    hole = np.zeros((128, 160), bool)
    hole[32:96, 32:128] = True
    assert np.array_equal(p["mask"][..., 0] == 255, hole) and (p["mask"][~hole] == 0).all()
    change = np.abs(p["out"] - p["input"]).max(axis=-1)
    assert (change[~hole] == 0).all() and change[hole].mean() > 1.0
    # memory stays bounded: one 8192^2 RGB float image is 0.75 GiB; the server's peak so far (this test is
    # the largest of the session) was about 6.4 GiB, most of it the box mask's preview of the photo
    status = Path(f"/proc/{server.server.pid}/status").read_text()
    peak_gib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 2**20
    assert peak_gib < 8.0, f"ComfyUI peaked at {peak_gib:.1f} GiB"
    assert_server_runs_a_good_prompt(server, tmp_path)


def test_a_mask_larger_than_the_memory_budget_is_refused_before_it_is_drawn(server, tmp_path):
    """The largest Stroke Mask the widgets allow (16384 x 16384 x 64) asks for far more than any budget here."""
    g = Graph()
    mask = g.add("GanEditStrokeMask", width=16384, height=16384, batch_size=64, seed=0, strokes_min=1, strokes_max=3,
                 vertices_min=4, vertices_max=11, brush_min=12, brush_max=40, coverage="any")
    g.save([g.add("MaskToImage", mask=[mask, 0]), 0], "out")
    start = time.monotonic()
    with pytest.raises(ExecutionFailed, match=r"ValueError: 16384x16384x64 masks and their preview need 1536.0 GiB; "
                       r"the limit is [\d.]+ GiB \(of the memory available\) - lower the batch or the size"):
        run(server, g, tmp_path)
    assert time.monotonic() - start < 30
    assert_server_runs_a_good_prompt(server, tmp_path)


# -- interrupting a long prompt ------------------------------------------------------------------------------
def _enhance_batch(amount: int, side: int = 768) -> Graph:
    """GAN Enhance (default width) over ``amount`` copies of a photo in 64 px tiles: a progress update (an
    interrupt point) every few milliseconds, and a run time proportional to ``amount``."""
    g = Graph()
    load = g.add("LoadImage", image="coffee.jpg")
    scaled = [g.add("ImageScale", image=[load, 0], upscale_method="bilinear", width=side, height=side,
                    crop="disabled"), 0]  # fmt: skip
    batch = [g.add("RepeatImageBatch", image=scaled, amount=amount), 0]
    enhance = Target("GanEditEnhance", "GAN Enhance", dict(strength=1.0, tile_size=64, tile_overlap=16),
                     "faults_enhance_default.safetensors")  # fmt: skip
    g.save(enhance.apply(g, batch), "out")
    return g


def _execution_seconds(entry: dict) -> float:
    """execution_start -> execution_success (or _interrupted) from the history entry's message timestamps."""
    stamps = {name: data["timestamp"] for name, data in entry["status"]["messages"] if "timestamp" in data}
    end = stamps.get("execution_success", stamps.get("execution_interrupted"))
    return (end - stamps["execution_start"]) / 1000.0


def test_interrupt_stops_a_long_node_quickly_and_the_server_carries_on(server, tmp_path):
    client = server.client
    client.run(_enhance_batch(1), tmp_path / "warm")  # loads and scales once: later runs reuse them
    per_item = _execution_seconds(client.wait(client.queue(_enhance_batch(2)))) / 2
    amount = max(4, math.ceil(30.0 / per_item))  # about 30 s uninterrupted
    expected = amount * per_item
    prompt_id = client.queue(_enhance_batch(amount))
    deadline = time.monotonic() + 60
    while client.queue_position(prompt_id)[0] != "running":
        assert time.monotonic() < deadline, "the long prompt never started"
        time.sleep(0.05)
    time.sleep(1.0)
    interrupted_at = time.monotonic()
    client.interrupt()
    while (entry := client.history(prompt_id)) is None:
        assert time.monotonic() - interrupted_at < 30, "no history entry after the interrupt"
        time.sleep(0.02)
    latency = time.monotonic() - interrupted_at
    with pytest.raises(ExecutionInterrupted) as caught:
        client.wait(prompt_id)
    assert caught.value.payload["node_type"] == "GanEditEnhance"  # stopped inside the node, between tiles
    assert entry["status"]["status_str"] == "error" and not entry["status"]["completed"]
    assert _execution_seconds(entry) < 0.25 * expected, (_execution_seconds(entry), expected)
    assert latency < 2.0, f"{latency:.2f} s from POST /interrupt to the history entry"
    assert_server_runs_a_good_prompt(server, tmp_path)


# -- the headless command: python3 -m nodes.harness run ----------------------------------------------------------
def _harness_run(server, *args: str) -> subprocess.CompletedProcess:
    workflow = str(Path(__file__).resolve().parents[1] / "workflows" / "api" / "inpaint.json")
    command = [sys.executable, "-m", "nodes.harness", "run", workflow, "--server", server.server.url, *args]
    return subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_run_command_overrides_inputs_by_node_title(server, tmp_path):
    photo_file = tmp_path / "run_photo.png"
    Image.new("RGB", (80, 56), (200, 120, 40)).save(photo_file)
    done = _harness_run(server, "--upload", str(photo_file), "--set", "Photo.image=run_photo.png",
                        "--set", "Inpaint model.model_name=faults_inpaint.safetensors", "--set", "Strokes.seed=99",
                        "--out", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["inpaint_10_0.png", "inpaint_13_0.png", "inpaint_5_0.png", "inpaint_6_0.png", "inpaint_9_0.png"]
    for name in written:  # outputs have the size of the photo given by title, not the workflow's 451x300
        with Image.open(tmp_path / "out" / name) as im:
            if name == "inpaint_13_0.png":  # the close-up: the strokes' box, inside the photo
                assert im.size[0] <= 80 and im.size[1] <= 56, (name, im.size)
            else:
                assert im.size == (80, 56), (name, im.size)
    assert "inpaint.json: done in" in done.stdout and "wrote 5 file(s) to" in done.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("Inpaint model.model_name=faults_discriminator.safetensors",  # either inpaint node may run first
         r"error: node [48] \(GanEditInpaint\) failed: ValueError: GAN Inpaint needs a model for the 'inpaint' task"),
        ("Strokes.brush_min=0", r'node 2 "Strokes" \(GanEditStrokeMask\):\n    - value_smaller_than_min'),
        ("Stroke.seed=1", r"error: no node with id or title 'Stroke'; the workflow has: 1 \"Photo\""),
        ("Strokes.sead=1", r"error: node 2 \(GanEditStrokeMask\) has no input 'sead'"),
    ],
    ids=["node_error", "validation", "unknown_title", "unknown_input"],
)
def test_run_command_exits_non_zero_with_a_readable_message(server, override, message, tmp_path):
    done = _harness_run(server, "--set", override, "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert re.search(message, done.stdout), done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert_server_runs_a_good_prompt(server, tmp_path)
