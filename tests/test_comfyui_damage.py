"""Detect Damage, Add Old-Photo Damage and the restore_old_photo workflow inside a real ComfyUI, over HTTP.

The photo is the sample astronaut with the renderer's `HEAVY` damage drawn over it here (seed 5, not the
seed of the shipped sample), so the true mask is known: the shipped detector must find it better than the
classical top-hat with its best size and threshold for this very photo, and the workflow's result must be
closer to the undamaged (but aged) photo inside the damage than the damaged input is, while inpainting
leaves every pixel outside the detected mask exactly as it was.
"""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from models import layout, masks
from models.damage import HEAVY, LOCAL_ONLY, render
from models.damage.classical import tophat
from models.damage.evaluate import Tally
from nodes.harness.client import ExecutionFailed, load_workflow

pytestmark = pytest.mark.integration

NODE = "GanEditDetectDamage"
SEED = 5
SAMPLE = "damage_test_photo.png"


def _u8(image: torch.Tensor) -> np.ndarray:
    return layout.to_u8(image)


@pytest.fixture(scope="module")
def photo(comfy, repo_root, tmp_path_factory):
    """(clean, damaged, truth mask, aged-but-undamaged reference) as core tensors; the damaged one uploaded."""
    clean = layout.from_u8(np.asarray(Image.open(repo_root / "workflows" / "inputs" / "astronaut.jpg").convert("RGB")))
    damaged, truth = render(clean, SEED, HEAVY)
    aged, none = render(clean, SEED, dataclasses.replace(HEAVY, clean_probability=1.0))
    assert float(none.sum()) == 0.0
    damaged = layout.from_u8(_u8(damaged))  # what the server reads back from the PNG
    path = tmp_path_factory.mktemp("damage") / SAMPLE
    Image.fromarray(_u8(damaged)).save(path)
    comfy.client.upload_image(path)
    comfy.client.upload_image(repo_root / "workflows" / "inputs" / "old_photo.jpg")
    return clean, damaged, truth, aged


def _read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def _detect_graph(image=SAMPLE, model="damage_detector.safetensors", threshold=0.5, grow=0, tile=512):
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "GanEditLoadModel", "inputs": {"model_name": model}},
        "3": {"class_type": NODE, "inputs": {"image": ["1", 0], "model": ["2", 0], "threshold": threshold,
                                             "grow": grow, "tile_size": tile, "tile_overlap": 32}},
        "4": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "d/mask"}},
        "6": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 1]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "d/probability"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["3", 2], "filename_prefix": "d/preview"}},
    }


def _by_node(files) -> dict[str, np.ndarray]:
    return {f.stem.rsplit("_", 2)[1]: _read(f) for f in files}


def test_nodes_are_registered_with_tooltips(comfy):
    info = comfy.client.object_info()
    for node, name in ((NODE, "Detect Damage"), ("GanEditAddOldPhotoDamage", "Add Old-Photo Damage")):
        schema = info[node]
        assert schema["display_name"] == name and schema["category"] == "GAN Edit/restore"
        for spec_name, spec in schema["input"]["required"].items():
            assert len(spec) > 1 and spec[1].get("tooltip"), f"{node}.{spec_name} has no tooltip"
    kind, spec = info["GanEditLoadModel"]["input"]["required"]["model_name"]
    assert "damage_detector.safetensors" in (spec["options"] if kind == "COMBO" else kind)


def _f1(found: np.ndarray, truth: np.ndarray) -> float:
    tp = float((found & truth).sum())
    return 2 * tp / max(1.0, float(found.sum() + truth.sum()))


def test_the_shipped_detector_finds_the_damage_better_than_the_classical_top_hat(comfy, photo, tmp_path):
    _, damaged, truth, _ = photo
    nodes = _by_node(comfy.client.run(_detect_graph(), tmp_path, stem="d"))
    found = nodes["5"][..., 0] > 127
    truth_np = truth[0, 0].numpy() > 0.5
    learned = _f1(found, truth_np)
    classical = 0.0
    for size in (5, 7, 9, 13):  # the top-hat with its best size and threshold for this photo (an oracle)
        tally = Tally()
        tally.add(tophat(damaged, size), truth)
        classical = max(classical, tally.best().f1)
    assert learned > classical + 0.1 and learned > 0.35, (learned, classical)
    # the preview is the photo with the mask tinted over it; the probability is a soft map
    assert nodes["8"].shape == nodes["5"].shape and len(np.unique(nodes["7"][..., 0])) > 10


def test_threshold_grow_and_tiles(comfy, photo, tmp_path):
    def mask(**kwargs):
        (path,) = [f for f in comfy.client.run(_detect_graph(**kwargs), tmp_path, stem="m") if "_5_" in f.name]
        return _read(path)[..., 0] > 127

    base = mask()
    assert mask(threshold=0.9).sum() < base.sum() < mask(threshold=0.1).sum()
    grown = mask(grow=3)
    assert grown.sum() > base.sum() and np.all(grown[base])
    tiled = mask(tile=128)
    assert (tiled != base).mean() < 0.003  # tiles start on the network's grid: only the blended seams may differ


def test_a_wrong_model_is_refused_and_the_server_carries_on(comfy, photo, tmp_path):
    with pytest.raises(ExecutionFailed, match="Detect Damage needs a damage detector"):
        comfy.client.run(_detect_graph(model="enhance_guided.safetensors"), tmp_path, stem="w")
    assert comfy.client.run(_detect_graph(), tmp_path, stem="after")


def test_add_old_photo_damage_draws_the_renderer_s_damage_and_its_mask(comfy, photo, tmp_path, repo_root):
    clean, _, _, _ = photo
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "old_photo.jpg"}},
        "2": {"class_type": "GanEditAddOldPhotoDamage", "inputs": {"image": ["1", 0], "seed": 9, "ageing": False}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "a/damaged"}},
        "4": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 1]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "a/mask"}},
    }
    nodes = _by_node(comfy.client.run(graph, tmp_path, stem="a"))
    source = layout.from_u8(np.asarray(Image.open(repo_root / "workflows" / "inputs" / "old_photo.jpg").convert("RGB")))
    expected, expected_mask = render(source, 9, LOCAL_ONLY)
    assert np.array_equal(nodes["5"][..., 0] > 127, expected_mask[0, 0].numpy() > 0.5)
    assert np.abs(nodes["3"] - _u8(expected).astype(np.int16)).max() <= 1  # SaveImage truncates to 8 bits
    # a pixel away from the mask keeps its value, but for a crease's soft shadow, which darkens (the content is
    # still there); next to the mask are the anti-aliased rims of the scratches
    outside = masks.grow(expected_mask, 1)[0, 0].numpy() < 0.5
    change = nodes["3"][outside] - _read(repo_root / "workflows" / "inputs" / "old_photo.jpg")[outside]
    assert change.max() <= 1 and (np.abs(change) > 1).mean() < 0.05


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_the_restore_old_photo_workflow_repairs_the_damage_and_leaves_the_rest_to_the_restorer(comfy, photo,
                                                                                              repo_root, tmp_path):
    """The workflow's result against the same restorer steps applied to the undamaged photo, inside the damage:
    closer than those steps applied to the damaged photo without the fill (the damaged input, restored)."""
    _, damaged, truth, aged = photo
    aged_path = tmp_path / "aged.png"
    Image.fromarray(_u8(aged)).save(aged_path)
    aged_name = comfy.client.upload_image(aged_path, "damage_test_aged.png")
    prompt = json.loads(json.dumps(load_workflow(repo_root / "workflows" / "api" / "restore_old_photo.json")))
    of = {v["class_type"]: k for k, v in sorted(prompt.items(), key=lambda kv: -int(kv[0]))}  # the first of each
    restorers = [k for k, v in sorted(prompt.items(), key=lambda kv: int(kv[0])) if v["class_type"] == "GanEditEnhance"]
    assert len(restorers) >= 1 and prompt[restorers[0]]["inputs"]["image"] == [of["GanEditInpaint"], 0]
    saves = {v["inputs"]["filename_prefix"].rsplit("/", 1)[-1]: k for k, v in prompt.items()
             if v["class_type"] == "SaveImage"}
    prompt[of["LoadImage"]]["inputs"]["image"] = SAMPLE
    prompt["900"] = {"class_type": "MaskToImage", "inputs": {"mask": [of[NODE], 0]}}
    prompt["901"] = {"class_type": "SaveImage", "inputs": {"images": ["900", 0], "filename_prefix": "probe/mask"}}
    prompt["902"] = {"class_type": "SaveImage", "inputs": {"images": [of["GanEditInpaint"], 0],
                                                           "filename_prefix": "probe/fill"}}
    prompt["910"] = {"class_type": "LoadImage", "inputs": {"image": aged_name}}
    # the restorer chain once more on the undamaged photo (9xx) and on the damaged one without the fill (92x)
    for base, source in (("91", ["910", 0]), ("92", [of["LoadImage"], 0])):
        link = source
        for i, node in enumerate(restorers):
            inputs = {**prompt[node]["inputs"], "image": link}
            prompt[f"{base}{i + 1}"] = {"class_type": "GanEditEnhance", "inputs": inputs}
            link = [f"{base}{i + 1}", 0]
        prompt[f"{base}9"] = {"class_type": "SaveImage", "inputs": {"images": link, "filename_prefix": f"probe/{base}"}}
    nodes = _by_node(comfy.client.run(prompt, tmp_path, stem="w"))
    detected = nodes["901"][..., 0] > 127
    damaged_u8 = _u8(damaged).astype(np.int16)
    # inpainting changes nothing outside the detected mask: there only the restorer steps act
    assert np.abs(nodes["902"][~detected] - damaged_u8[~detected]).max() <= 1
    inside = truth[0, 0].numpy() > 0.5
    restored, reference, unfilled = nodes[saves["old_photo_restored"]], nodes["919"], nodes["929"]
    before = _psnr(unfilled[inside], reference[inside])
    after = _psnr(restored[inside], reference[inside])
    print(f"damage PSNR: damaged input {_psnr(damaged_u8[inside], _u8(aged).astype(np.int16)[inside]):.2f} dB, "
          f"filled {_psnr(nodes['902'][inside], _u8(aged).astype(np.int16)[inside]):.2f} dB (vs the aged photo); "
          f"restored without the fill {before:.2f} dB, the workflow {after:.2f} dB (vs the aged photo restored); "
          f"detected {detected.mean():.4f} of the photo, truth {inside.mean():.4f}, found "
          f"{(detected & inside).sum() / inside.sum():.3f} of it")
    assert after > before + 0.5, (before, after)
    # and away from the damage the workflow is the restorers' result on the damaged photo, up to their whole-image
    # context (the auto-enhancer's colour correction, the measured noise level), which the fill shifts a little
    away = masks.grow(torch.from_numpy(detected[None, None].astype(np.float32)), 16)[0, 0].numpy() < 0.5
    assert _psnr(restored[away], unfilled[away]) > 32.0
    assert nodes[saves["old_photo_colourised"]].shape == restored.shape
