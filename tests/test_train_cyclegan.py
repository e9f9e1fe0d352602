"""CycleGAN training: the image pool, tiny runs, both exports, and exact resume including the pools."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from models import translate, weights
from models.train.cyclegan import CycleGANSettings, CycleGANTask, ImagePool
from models.train.data import load_images
from models.train.engine import RunOptions, Trainer
from nodes.train.cli import main as train_cli

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
TINY = CycleGANSettings(net_g="unet_128", ngf=8, ndf=8, crop=128, batch_size=2, pool_size=3)


def _folder(root, colour, count):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        y, x = torch.meshgrid(torch.linspace(0, 1, 140), torch.linspace(0, 1, 150), indexing="ij")
        image = torch.stack([x * colour[0], y * colour[1], (x + y) / 2 * colour[2] * (i + 1) / count])
        Image.fromarray((image * 255).round().byte().permute(1, 2, 0).numpy()).save(root / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    return _folder(root / "A", (1.0, 0.2, 0.1), 4), _folder(root / "B", (0.1, 0.3, 1.0), 5)


def _task(domains, settings=TINY, out_b=None):
    a, b = (load_images(d, min_side=32) for d in domains)
    return CycleGANTask(settings, a, b, out_b)


def _run(out, task, steps, **kw):
    options = RunOptions(out=out, steps=steps, log_every=1, checkpoint_every=steps, preview_every=steps,
                         progress=False, **kw)
    return Trainer(task, options).run()


def test_pool_fills_then_swaps_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: every image passes through and is stored
    swapped = 0
    for step in range(50):
        new = torch.full((1, 1, 1, 1), 100.0 + step)
        stored = torch.cat(pool.images).flatten().tolist()
        out = float(pool.query(new))
        if out != 100.0 + step:
            swapped += 1
            assert out in stored and 100.0 + step in torch.cat(pool.images).flatten().tolist()
    assert 12 < swapped < 38  # about half
    assert len(pool.images) == 4


def test_pool_state_round_trips_and_size_zero_passes_through():
    pool = ImagePool(3)
    pool.query(torch.rand(2, 3, 4, 4))
    other = ImagePool(3)
    other.load_state_dict(pool.state_dict())
    assert len(other.images) == 2 and all(torch.equal(x, y) for x, y in zip(pool.images, other.images, strict=True))
    with pytest.raises(ValueError, match="holds up to 3 images, this run 5"):
        ImagePool(5).load_state_dict(pool.state_dict())
    x = torch.rand(2, 3, 4, 4)
    assert ImagePool(0).query(x) is x


def test_tiny_run_has_finite_losses_and_writes_both_directions(tmp_path, domains):
    out, out_b = tmp_path / "cg.safetensors", tmp_path / "cg_BtoA.safetensors"
    assert _run(out, _task(domains, out_b=out_b), steps=3) == out
    rows = [json.loads(x) for x in (tmp_path / "cg.metrics.jsonl").read_text().splitlines()]
    keys = ("d_a", "d_b", "g_a", "g_b", "cycle_a", "cycle_b", "idt_a", "idt_b")
    assert len(rows) == 3 and all(torch.isfinite(torch.tensor([r[k] for k in keys])).all() for r in rows)
    assert all(r["cycle_a"] > 0 and r["idt_b"] > 0 for r in rows)
    g_a, g_b = weights.load(out), weights.load(out_b)
    assert g_a.arch == g_b.arch == "pix2pix_unet" and g_a.task == g_b.task == "translate"
    assert g_a.config == TINY.generator() and g_a.config.norm == "instance" and g_a.config.use_dropout is False
    key = "model.model.0.weight"
    assert not torch.equal(g_a.module.state_dict()[key], g_b.module.state_dict()[key])
    image = torch.rand(1, 3, 50, 60)
    assert translate.translate(g_b, image).shape == (1, 3, 50, 60)


def test_resume_is_exact_including_the_image_pools(tmp_path, domains):
    straight_task = _task(domains)
    straight = weights.load(_run(tmp_path / "a" / "cg.safetensors", straight_task, steps=4))
    _run(tmp_path / "b" / "cg.safetensors", _task(domains), steps=4, stop_at=2)
    checkpoint = torch.load(tmp_path / "b" / "cg.ckpt.pt", weights_only=True)
    pools = checkpoint["task"][0]
    assert pools["pool_a"]["images"].shape == (3, 3, 128, 128) and pools["pool_b"]["size"] == 3
    resumed_task = _task(domains)
    resumed = weights.load(_run(tmp_path / "b" / "cg.safetensors", resumed_task, steps=4, resume=True))
    for k, v in straight.module.state_dict().items():
        assert torch.equal(v, resumed.module.state_dict()[k]), k
    for name in ("pool_a", "pool_b"):
        mine, theirs = getattr(straight_task, name).images, getattr(resumed_task, name).images
        assert len(mine) == len(theirs) == 3
        assert all(torch.equal(x, y) for x, y in zip(mine, theirs, strict=True)), name


def test_resume_with_an_empty_pool_differs(tmp_path, domains):
    """The pool matters: a resume that dropped it would not reproduce the run."""
    straight = weights.load(_run(tmp_path / "a" / "cg.safetensors", _task(domains), steps=4))
    _run(tmp_path / "b" / "cg.safetensors", _task(domains), steps=4, stop_at=2)
    checkpoint_path = tmp_path / "b" / "cg.ckpt.pt"
    state = torch.load(checkpoint_path, weights_only=True)
    for pool in state["task"][0].values():
        pool["images"] = torch.empty(0)
    torch.save(state, checkpoint_path)
    resumed = weights.load(_run(tmp_path / "b" / "cg.safetensors", _task(domains), steps=4, resume=True))
    differs = [k for k, v in straight.module.state_dict().items() if not torch.equal(v, resumed.module.state_dict()[k])]
    assert differs


def test_bad_settings_are_clear():
    with pytest.raises(ValueError, match="pool_size >= 0"):
        CycleGANSettings(pool_size=-1)
    with pytest.raises(ValueError, match="multiples of 128"):
        CycleGANSettings(net_g="unet_128", crop=100)


def test_cli_writes_g_a_and_the_sibling_g_b(tmp_path, domains, capsys):
    out = tmp_path / "h2z.safetensors"
    code = train_cli(["cyclegan", "--data-a", str(domains[0]), "--data-b", str(domains[1]), "--netG", "resnet_6blocks",
                      "--ngf", "4", "--ndf", "4", "--crop", "32", "--steps", "2", "--out", str(out), "--no-progress"])
    assert code == 0
    assert f"wrote {out} (A -> B) and {tmp_path / 'h2z_BtoA.safetensors'} (B -> A)" in capsys.readouterr().out
    loaded = weights.load(tmp_path / "h2z_BtoA.safetensors")
    assert loaded.arch == "pix2pix_resnet" and loaded.config.n_blocks == 6
    assert loaded.provenance["task_settings"]["settings"]["lambda_cycle"] == 10.0


def test_cli_no_out_b_writes_only_g_a(tmp_path, domains):
    out = tmp_path / "only.safetensors"
    code = train_cli(["cyclegan", "--data-a", str(domains[0]), "--data-b", str(domains[1]), "--netG", "resnet_6blocks",
                      "--ngf", "4", "--ndf", "4", "--crop", "32", "--steps", "1", "--out", str(out), "--no-progress",
                      "--no-out-b"])
    assert code == 0 and out.is_file() and not (tmp_path / "only_BtoA.safetensors").exists()


def test_two_cpu_ranks_keep_their_own_pools_and_resume(tmp_path, domains):
    out = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "nodes.train", "cyclegan", "--data-a", str(domains[0]), "--data-b", str(domains[1]), "--out", str(out),
           "--steps", "3", "--checkpoint-every", "1", "--netG", "resnet_6blocks", "--ngf", "4", "--ndf", "4",
           "--crop", "32", "--pool-size", "2", "--no-progress", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run([*cmd, "--stop-at", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    pools = torch.load(tmp_path / "ddp.ckpt.pt", weights_only=True)["task"]
    assert len(pools) == 2  # one state per rank: each rank saw its own fakes
    assert not torch.equal(pools[0]["pool_a"]["images"], pools[1]["pool_a"]["images"])
    second = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stderr and "step 3: all 2 ranks agree" in second.stderr
    assert weights.load(tmp_path / "ddp_BtoA.safetensors").provenance["world_size"] == 2
