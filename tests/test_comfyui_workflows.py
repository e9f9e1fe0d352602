"""Every shipped API workflow runs in a real ComfyUI with the shipped weights; the inpaint one is checked."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from models import weights
from nodes.harness.client import load_workflow

pytestmark = pytest.mark.integration


def _api_workflows():
    from nodes.harness.env import repo_root

    return sorted((repo_root() / "workflows" / "api").glob("*.json"))


@pytest.fixture(scope="module")
def client(comfy, repo_root):
    for path in sorted((repo_root / "workflows" / "inputs").glob("*.jpg")):
        comfy.client.upload_image(path)
    return comfy.client


@pytest.mark.parametrize("path", _api_workflows(), ids=lambda p: p.stem)
def test_workflow_runs_and_saves_every_output(client, path, tmp_path):
    prompt = load_workflow(path)
    savers = {k for k, v in prompt.items() if v["class_type"] == "SaveImage"}
    files = client.run(prompt, tmp_path, stem=path.stem)
    produced = {f.stem.rsplit("_", 2)[1] for f in files}
    assert produced == savers
    for f in files:
        with Image.open(f) as im:
            assert im.size[0] >= 64 and im.size[1] >= 64


def _probe(prompt, image_link, mask_link, inpaint_id):
    """Add saves of the original image and the mask next to an inpaint node."""
    prompt = json.loads(json.dumps(prompt))
    prompt["900"] = {"class_type": "SaveImage", "inputs": {"images": image_link, "filename_prefix": "probe/original"}}
    prompt["901"] = {"class_type": "MaskToImage", "inputs": {"mask": mask_link}}
    prompt["902"] = {"class_type": "SaveImage", "inputs": {"images": ["901", 0], "filename_prefix": "probe/mask"}}
    prompt["903"] = {"class_type": "SaveImage", "inputs": {"images": [inpaint_id, 0], "filename_prefix": "probe/out"}}
    return prompt


def _psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_shipped_inpaint_workflow_keeps_the_photo_and_fills_the_hole(client, repo_root, tmp_path):
    prompt = load_workflow(repo_root / "workflows" / "api" / "inpaint.json")
    results = {}
    for node_id, node in prompt.items():
        if node["class_type"] != "GanEditInpaint":
            continue
        probed = _probe(prompt, node["inputs"]["image"], node["inputs"]["mask"], node_id)
        files = client.run(probed, tmp_path / node_id, stem="p")
        by_node = {f.stem.rsplit("_", 2)[1]: np.asarray(Image.open(f).convert("RGB")) for f in files}
        original, hole, out = by_node["900"], by_node["902"][..., 0] > 127, by_node["903"]
        assert 0.02 < hole.mean() < 0.5
        assert np.array_equal(out[~hole], original[~hole])
        mean_fill = np.broadcast_to(original[~hole].mean(axis=0), original[hole].shape)
        results[node_id] = (_psnr(out[hole], original[hole]), _psnr(mean_fill, original[hole]))
    assert results, "the inpaint workflow has no GAN Inpaint node"
    for node_id, (model, flat) in results.items():
        # the trained model must beat filling the hole with the photo's mean colour
        assert model > flat + 1.0, f"node {node_id}: model {model:.2f} dB vs mean fill {flat:.2f} dB"


def test_shipped_inpaint_workflow_closeup_is_the_box_around_the_strokes(client, repo_root, tmp_path):
    """Mask Bounding Box -> ImageCrop: the close-up is the fill's region plus the padding, clipped to the image."""
    prompt = load_workflow(repo_root / "workflows" / "api" / "inpaint.json")
    box_id, box = next((k, v) for k, v in prompt.items() if v["class_type"] == "GanEditMaskBoundingBox")
    crop_id = next(k for k, v in prompt.items() if v["class_type"] == "ImageCrop" and v["inputs"]["x"] == [box_id, 0])
    source = prompt[crop_id]["inputs"]["image"]
    prompt["900"] = {"class_type": "MaskToImage", "inputs": {"mask": box["inputs"]["mask"]}}
    prompt["901"] = {"class_type": "SaveImage", "inputs": {"images": ["900", 0], "filename_prefix": "probe/mask"}}
    prompt["902"] = {"class_type": "SaveImage", "inputs": {"images": source, "filename_prefix": "probe/full"}}
    prompt["903"] = {"class_type": "SaveImage", "inputs": {"images": [crop_id, 0], "filename_prefix": "probe/crop"}}
    files = client.run(prompt, tmp_path, stem="p")
    by_node = {f.stem.rsplit("_", 2)[1]: np.asarray(Image.open(f).convert("RGB")) for f in files}
    hole, full, crop = by_node["901"][..., 0] > 127, by_node["902"], by_node["903"]
    ys, xs = np.nonzero(hole)
    pad = box["inputs"]["padding"]
    top, left = max(ys.min() - pad, 0), max(xs.min() - pad, 0)
    bottom, right = min(ys.max() + 1 + pad, hole.shape[0]), min(xs.max() + 1 + pad, hole.shape[1])
    assert crop.shape[:2] == (bottom - top, right - left)
    assert np.array_equal(crop, full[top:bottom, left:right])


def test_shipped_enhance_workflow_brings_each_photo_closer_to_the_clean_one(client, repo_root, tmp_path):
    prompt = load_workflow(repo_root / "workflows" / "api" / "enhance.json")
    prompt["900"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "probe/clean"}}
    pairs = []
    for node_id, node in list(prompt.items()):
        if node["class_type"] == "GanEditEnhance":
            pairs.append((node["inputs"]["image"][0], node_id))
            for i in pairs[-1]:
                prompt[f"9{i}"] = {"class_type": "SaveImage", "inputs": {"images": [i, 0], "filename_prefix": f"p/{i}"}}
    assert len(pairs) == 2, "the enhance workflow restores a noisy copy and enhances a dark one"
    files = client.run(prompt, tmp_path, stem="p")
    by_node = {f.stem.rsplit("_", 2)[1]: np.asarray(Image.open(f).convert("RGB")) for f in files}
    clean = by_node["900"]
    for degraded_id, enhanced_id in pairs:
        before, after = _psnr(by_node[f"9{degraded_id}"], clean), _psnr(by_node[f"9{enhanced_id}"], clean)
        assert after > before + 1.0, f"node {enhanced_id}: {after:.2f} dB after vs {before:.2f} dB before"


def _luma(rgb):
    return rgb.astype(float) @ np.array([0.299, 0.587, 0.114])


def test_shipped_colorize_workflow_beats_the_grey_photo(client, repo_root, tmp_path):
    """The colouriser sees only the photo's luma; its colours must be closer to the photo's than grey is."""
    prompt = load_workflow(repo_root / "workflows" / "api" / "image_to_image.json")
    nodes = [k for k, v in prompt.items() if v["class_type"] == "GanEditImageToImage"]
    assert nodes, "the image-to-image workflow has no GAN Image to Image node"
    for node_id in nodes:
        probed = json.loads(json.dumps(prompt))
        image_link = probed[node_id]["inputs"]["image"]
        probed["900"] = {"class_type": "SaveImage", "inputs": {"images": image_link, "filename_prefix": "probe/in"}}
        probed["901"] = {"class_type": "SaveImage", "inputs": {"images": [node_id, 0], "filename_prefix": "probe/out"}}
        files = client.run(probed, tmp_path / node_id, stem="p")
        by_node = {f.stem.rsplit("_", 2)[1]: np.asarray(Image.open(f).convert("RGB")) for f in files}
        original, out = by_node["900"], by_node["901"]
        assert out.shape == original.shape
        grey = np.repeat(_luma(original)[..., None], 3, axis=2)
        model_db, grey_db = _psnr(out, original), _psnr(grey, original)
        assert model_db > grey_db + 0.2, f"node {node_id}: colorized {model_db:.2f} dB vs grey {grey_db:.2f} dB"
        chroma = out.astype(float).std(axis=2).mean()  # 0 for a grey picture
        assert chroma > 3.0, f"node {node_id}: the result is nearly grey (mean channel spread {chroma:.2f})"
        # only colour comes from the model: the result's luma is the photo's (up to 8-bit rounding of each channel)
        assert probed[node_id]["inputs"]["keep_luminance"] is True
        assert np.abs(_luma(out) - _luma(original)).max() <= 1.0


def _box_ring(box, width):
    """The band `width` px around a boolean box (clipped to the image)."""
    ys, xs = np.nonzero(box)
    ring = np.zeros_like(box)
    ring[max(ys.min() - width, 0) : ys.max() + width + 1, max(xs.min() - width, 0) : xs.max() + width + 1] = True
    return ring & ~box


def test_shipped_edit_workflow_recolours_then_removes(client, repo_root, tmp_path):
    """Recolour: outside its mask untouched, inside bluer. Remove: outside untouched, inside like its surroundings."""
    prompt = load_workflow(repo_root / "workflows" / "api" / "edit.json")
    edits = {v["inputs"]["instruction"]: (k, v) for k, v in prompt.items() if v["class_type"] == "GanEditEdit"}
    assert set(edits) == {"recolour", "remove"}
    for name, (node_id, node) in edits.items():
        prompt[f"90{node_id}"] = {"class_type": "SaveImage", "inputs": {"images": node["inputs"]["image"],
                                                                        "filename_prefix": f"p/{name}_in"}}
        prompt[f"91{node_id}"] = {"class_type": "MaskToImage", "inputs": {"mask": node["inputs"]["mask"]}}
        prompt[f"92{node_id}"] = {"class_type": "SaveImage", "inputs": {"images": [f"91{node_id}", 0],
                                                                        "filename_prefix": f"p/{name}_mask"}}
        prompt[f"93{node_id}"] = {"class_type": "SaveImage", "inputs": {"images": [node_id, 0],
                                                                        "filename_prefix": f"p/{name}_out"}}
    files = client.run(prompt, tmp_path, stem="p")
    by_node = {f.stem.rsplit("_", 2)[1]: np.asarray(Image.open(f).convert("RGB")).astype(float) for f in files}
    for name, (node_id, _) in edits.items():
        before, after = by_node[f"90{node_id}"], by_node[f"93{node_id}"]
        box = by_node[f"92{node_id}"][..., 0] > 127
        assert 0.02 < box.mean() < 0.3
        assert np.array_equal(after[~box], before[~box]), f"{name} changed pixels outside its mask"
        assert np.abs(after[box] - before[box]).mean() > 4, f"{name} hardly changed its region"
        if name == "recolour":  # the red-brown saucer turns towards the requested blue
            blue_after = np.mean(after[box][:, 2] - after[box][:, 0])
            rise = blue_after - np.mean(before[box][:, 2] - before[box][:, 0])
            assert rise > 20, f"recolour: blue - red rose by only {rise:.1f}"
        else:  # the bright silver spoon gives way to colours like those around the region
            ring = before[_box_ring(box, 16)].mean(axis=0)
            gap_before = np.abs(before[box].mean(axis=0) - ring).sum()
            gap_after = np.abs(after[box].mean(axis=0) - ring).sum()
            assert gap_after < 0.7 * gap_before, f"remove: {gap_after:.1f} vs {gap_before:.1f} from the context"


def _ycc(rgb):
    """BT.601 Y, Cb, Cr of an RGB uint8 picture, float."""
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    return rgb.astype(float) @ m.T


def test_shipped_style_transfer_workflow_paints_with_the_style_and_keeps_colours_when_asked(
        client, repo_root, tmp_path, record_property):
    prompt = load_workflow(repo_root / "workflows" / "api" / "style_transfer.json")
    full = next(k for k, v in prompt.items() if v["class_type"] == "GanEditStyleTransfer" and v["inputs"]["alpha"] == 1)
    soft = next(k for k, v in prompt.items() if v["class_type"] == "GanEditStyleTransfer" and v["inputs"]["alpha"] < 1)
    assert prompt[soft]["inputs"]["preserve_colour"] is True
    content_link, style_link = prompt[full]["inputs"]["content"], prompt[full]["inputs"]["style"]
    prompt["800"] = {"class_type": "GanEditStyleTransfer",
                     "inputs": {**prompt[full]["inputs"], "alpha": 0.0}}  # the reconstruction path
    for i, link in {"900": content_link, "901": style_link, "902": [full, 0], "903": [soft, 0],
                    "904": ["800", 0]}.items():
        prompt[i] = {"class_type": "SaveImage", "inputs": {"images": link, "filename_prefix": f"probe/{i}"}}
    files = client.run(prompt, tmp_path, stem="p")
    by_node = {f.stem.rsplit("_", 2)[1]: np.asarray(Image.open(f).convert("RGB")) for f in files}
    content, style, styled, kept, alpha0 = (by_node[k].astype(float) for k in ("900", "901", "902", "903", "904"))
    assert styled.shape == kept.shape == alpha0.shape == content.shape
    assert np.abs(styled - content).mean() > 20  # 0..255
    style_mean, content_mean = style.mean(axis=(0, 1)), content.mean(axis=(0, 1))
    assert np.abs(styled.mean(axis=(0, 1)) - style_mean).sum() < np.abs(content_mean - style_mean).sum()
    # preserve_colour: the content's chroma (Cb, Cr) with a changed luma
    chroma_change = np.abs(_ycc(by_node["903"])[..., 1:] - _ycc(by_node["900"])[..., 1:]).mean()
    luma_change = np.abs(_ycc(by_node["903"])[..., 0] - _ycc(by_node["900"])[..., 0]).mean()
    assert chroma_change < 6.0 and luma_change > 5.0, (chroma_change, luma_change)  # clamping moves chroma a bit
    # alpha 0 is the decoder's reconstruction of the content: close, not identical
    error = np.abs(alpha0 - content).mean()
    record_property("alpha0_mean_abs_error_0_255", round(float(error), 2))
    assert 0 < error < 0.12 * 255  # the reference-decoder starter gave 0.21 on 0..1 for this photo at 256 px
    # at full style the cat stays recognisable: its edges survive (evaluate-style's edge correlation)
    from models import layout
    from models.stylize import evaluate

    edges = evaluate.edge_correlation(layout.from_u8(by_node["902"]), layout.from_u8(by_node["900"])).item()
    record_property("full_style_edge_correlation", round(edges, 3))
    assert edges > 0.28, f"the photo's edges are lost at alpha 1 (correlation {edges:.3f})"


def test_shipped_stylize_workflow_paints_strokes_and_keeps_the_subject(client, repo_root, tmp_path, record_property):
    """Each fast neural style model keeps the photo's content and edges, moves it towards its painting, and paints
    no stripes. The yardsticks are `evaluate-style`'s (models.stylize.evaluate). Earlier trainings against this VGG-16
    gave stripes: vertical gradient energy 7-46x the horizontal, content distance 12 (a 250-step trial without
    the half-size style term). Strength 0.5 is the mean of the photo and the full-strength result."""
    from models import layout, pretrained
    from models.stylize import evaluate

    prompt = load_workflow(repo_root / "workflows" / "api" / "stylize.json")
    stylize = {k: v for k, v in prompt.items() if v["class_type"] == "GanEditStylize"}
    models = {k: prompt[v["inputs"]["model"][0]]["inputs"]["model_name"] for k, v in stylize.items()}
    paintings = {"fast_style_starry_night.safetensors": "starry_night.jpg",
                 "fast_style_church_at_auvers.safetensors": "church_at_auvers.jpg"}
    assert set(models.values()) == set(paintings)
    photo_link = next(iter(stylize.values()))["inputs"]["image"]
    prompt["900"] = {"class_type": "SaveImage", "inputs": {"images": photo_link, "filename_prefix": "probe/in"}}
    for node_id in stylize:
        prompt[f"91{node_id}"] = {"class_type": "SaveImage", "inputs": {"images": [node_id, 0],
                                                                        "filename_prefix": f"probe/{node_id}"}}
    files = client.run(prompt, tmp_path, stem="p")
    by_node = {f.stem.rsplit("_", 2)[1]: np.asarray(Image.open(f).convert("RGB")) for f in files}
    photo = by_node["900"]
    vgg = pretrained.load_vgg16(None, last=evaluate.CONTENT_LAYER)
    full = {}
    for node_id, node in stylize.items():
        out = by_node[f"91{node_id}"]
        assert out.shape == photo.shape
        if node["inputs"]["strength"] != 1.0:
            continue
        name = models[node_id]
        full[node["inputs"]["model"][0]] = out
        painting = layout.from_u8(np.asarray(Image.open(repo_root / "workflows" / "inputs" / paintings[name])
                                             .convert("RGB")))
        x, y = layout.from_u8(out), layout.from_u8(photo)
        with torch.no_grad():
            content = evaluate.content_distance(vgg, x, y).item()
            edges = evaluate.edge_correlation(x, y).item()
            style, photo_style = (evaluate.style_distance(vgg, z, painting).item() for z in (x, y))
        dy, dx = np.diff(_luma(out), axis=0), np.diff(_luma(out), axis=1)
        orientation = float((dy**2).mean() / (dx**2).mean())
        record_property(f"{name}: content / edges / style (photo's) / orientation",
                        f"{content:.3f} / {edges:.3f} / {style:.3f} ({photo_style:.3f}) / {orientation:.2f}")
        assert content < 2.0, f"{name}: the photo's content is lost (distance {content:.2f})"
        assert edges > 0.3, f"{name}: the photo's edges are lost (correlation {edges:.3f})"
        assert style < photo_style, f"{name}: not nearer the painting ({style:.3f}) than the photo ({photo_style:.3f})"
        assert 0.67 < orientation < 1.5, f"{name}: stripes (vertical / horizontal gradient energy {orientation:.2f})"
    for node_id, node in stylize.items():
        if node["inputs"]["strength"] == 0.5:
            mean = (photo.astype(float) + full[node["inputs"]["model"][0]].astype(float)) / 2
            assert np.abs(by_node[f"91{node_id}"].astype(float) - mean).max() <= 1.0


def test_shipped_train_workflow_fine_tunes_a_new_restorer_that_restores(comfy, client, repo_root, tmp_path):
    """GAN Train writes a new model (different from its start) that GAN Enhance then uses to restore."""
    prompt = load_workflow(repo_root / "workflows" / "api" / "train_your_own.json")
    train_id = next(k for k, v in prompt.items() if v["class_type"] == "GanEditTrain")
    enhance_id = next(k for k, v in prompt.items() if v["class_type"] == "GanEditEnhance")
    assert prompt[enhance_id]["inputs"]["model"] == [train_id, 0], "the restore step uses the trained model"
    name = "workflow_probe_restorer"
    prompt[train_id]["inputs"]["output_name"] = name
    noisy_id = prompt[enhance_id]["inputs"]["image"][0]
    photo_id = prompt[noisy_id]["inputs"]["image"][0]
    prompt["900"] = {"class_type": "SaveImage", "inputs": {"images": [photo_id, 0], "filename_prefix": "probe/clean"}}
    files = client.run(prompt, tmp_path, stem="p")
    by_node = {f.stem.rsplit("_", 2)[1]: np.asarray(Image.open(f).convert("RGB")) for f in files}
    savers = {v["inputs"]["images"][0]: k for k, v in prompt.items() if v["class_type"] == "SaveImage"}
    clean, noisy, restored = by_node["900"], by_node[savers[noisy_id]], by_node[savers[enhance_id]]
    assert _psnr(restored, clean) > _psnr(noisy, clean) + 1.0
    trained = weights.load(comfy.server.base_dir / "models" / "gan_edit" / f"{name}.safetensors")
    start = weights.load(repo_root / "models" / "weights" / prompt[train_id]["inputs"]["start_model"])
    assert trained.provenance["steps"] == prompt[train_id]["inputs"]["steps"]
    assert any(not torch.equal(v, start.module.state_dict()[k]) for k, v in trained.module.state_dict().items())
