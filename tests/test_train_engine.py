"""The shared training engine: exact resume, checkpoints, metrics, previews, export."""

import json

import pytest
import torch
from torch import nn

from models import weights
from models.archs.patchgan import PatchGAN, PatchGANConfig
from models.train.engine import Export, RunOptions, Task, Trainer, adam

pytestmark = pytest.mark.unit

CONFIG = PatchGANConfig(input_nc=3, ndf=4, n_layers=1, norm="batch")


class Crash(Exception):
    pass


class ToyTask(Task):
    """Regress a PatchGAN's logits to the mean brightness of random images; uses dropout-like noise
    from torch's global RNG so that exact resume also depends on the RNG state being restored."""

    name = "toy"

    def __init__(self, crash_at: int | None = None):
        self.crash_at = crash_at

    def networks(self):
        return {"net": PatchGAN(CONFIG)}

    def optimizers(self, nets):
        return {"net": adam(nets["net"].parameters(), lr=1e-2)}

    def make_batch(self, generator):
        return torch.rand(2, 3, 16, 16, generator=generator)

    def train_step(self, ctx, batch):
        if ctx.step == self.crash_at:
            raise Crash(f"killed at step {ctx.step}")
        noisy = batch + 0.05 * torch.randn_like(batch)  # global RNG
        with ctx.autocast():
            out = ctx.nets["net"](noisy)
        loss = (out.float() - batch.mean()).pow(2).mean()
        ctx.optimize(loss, "net")
        return {"loss": loss.item()}

    def preview(self, nets, batch):
        return batch

    def export(self, nets):
        return Export(nets["net"], "patchgan", CONFIG, "discriminate")

    def describe(self):
        return {"config": "toy"}


def _options(tmp_path, **kw):
    base = dict(out=tmp_path / "toy.safetensors", steps=6, seed=3, checkpoint_every=2, preview_every=3,
                log_every=1, progress=False)
    return RunOptions(**{**base, **kw})


def _weights(path):
    return {k: v.clone() for k, v in weights.load(path).module.state_dict().items()}


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    straight = Trainer(ToyTask(), _options(tmp_path / "a")).run()
    with pytest.raises(Crash):
        Trainer(ToyTask(crash_at=5), _options(tmp_path / "b")).run()  # last checkpoint: step 4
    ckpt = torch.load(tmp_path / "b" / "toy.ckpt.pt", weights_only=True)
    assert ckpt["step"] == 4
    resumed = Trainer(ToyTask(), _options(tmp_path / "b", resume=True)).run()
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the run really trained: weights moved away from the initialisation
    torch.manual_seed(3)
    init = PatchGAN(CONFIG).state_dict()
    assert not torch.equal(init["model.0.weight"], a["model.0.weight"])


def test_a_different_seed_gives_different_weights(tmp_path):
    a = _weights(Trainer(ToyTask(), _options(tmp_path / "a")).run())
    b = _weights(Trainer(ToyTask(), _options(tmp_path / "b", seed=4)).run())
    assert not torch.equal(a["model.0.weight"], b["model.0.weight"])


def test_metrics_preview_and_export(tmp_path):
    out = Trainer(ToyTask(), _options(tmp_path)).run()
    rows = [json.loads(line) for line in (tmp_path / "toy.metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(r["loss"] >= 0 and r["lr_net"] == pytest.approx(1e-2) for r in rows)
    previews = sorted(p.name for p in (tmp_path / "toy.previews").iterdir())
    assert previews == ["step_0000003.png", "step_0000006.png"]
    loaded = weights.load(out)
    assert loaded.provenance["steps"] == 6 and loaded.provenance["made_by"] == "python -m nodes.train toy"
    assert loaded.provenance["task_settings"] == {"config": "toy"}
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_csv_metrics(tmp_path):
    Trainer(ToyTask(), _options(tmp_path, metrics_format="csv", steps=2)).run()
    lines = (tmp_path / "toy.metrics.csv").read_text().splitlines()
    assert lines[0].split(",")[:2] == ["step", "time_s"] and len(lines) == 3


def test_learning_rate_decays_linearly_in_the_second_half(tmp_path):
    Trainer(ToyTask(), _options(tmp_path, steps=4, decay_from=0.5)).run()
    rows = [json.loads(line) for line in (tmp_path / "toy.metrics.jsonl").read_text().splitlines()]
    assert [round(r["lr_net"], 6) for r in rows] == [0.01, 0.01, 0.01, 0.005]


def test_resume_refuses_another_runs_checkpoint(tmp_path):
    Trainer(ToyTask(), _options(tmp_path, steps=2)).run()
    with pytest.raises(ValueError, match="belongs to a different run"):
        Trainer(ToyTask(), _options(tmp_path, steps=2, seed=9, resume=True)).run()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*toy.ckpt.pt"):
        Trainer(ToyTask(), _options(tmp_path, resume=True)).run()


def test_time_budget_stops_early_and_still_exports(tmp_path):
    out = Trainer(ToyTask(), _options(tmp_path, steps=1000, max_minutes=0.0)).run()
    assert weights.load(out).provenance["steps"] == 1


def test_stop_at_keeps_the_schedule_of_the_full_run(tmp_path):
    full = _weights(Trainer(ToyTask(), _options(tmp_path / "a", steps=6, decay_from=0.5, checkpoint_every=3)).run())
    Trainer(ToyTask(), _options(tmp_path / "b", steps=6, decay_from=0.5, stop_at=3)).run()
    ckpt = torch.load(tmp_path / "a" / "toy.ckpt.pt", weights_only=True)
    assert ckpt["step"] == 6
    stopped = _weights(tmp_path / "b" / "toy.safetensors")
    assert weights.load(tmp_path / "b" / "toy.safetensors").provenance["steps"] == 3
    assert not torch.equal(full["model.0.weight"], stopped["model.0.weight"])
    resumed = _weights(Trainer(ToyTask(), _options(tmp_path / "b", steps=6, decay_from=0.5, resume=True)).run())
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_bf16_autocast_trains_on_cpu(tmp_path):
    out = Trainer(ToyTask(), _options(tmp_path, steps=2, precision="bf16")).run()
    assert all(torch.isfinite(v).all() for v in _weights(out).values() if v.is_floating_point())


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_bf16_kernels_warns(tmp_path, monkeypatch, caplog, native):
    from models.train import engine

    monkeypatch.setattr(engine, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level("WARNING", logger=engine.__name__):
        Trainer(ToyTask(), _options(tmp_path, steps=1, precision="bf16"))
    warned = [r for r in caplog.records if "native bf16" in r.getMessage()]
    assert bool(warned) is not native
    assert not warned or "--precision fp32" in warned[0].getMessage()


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(steps=0), "steps must be >= 1"),
        (dict(precision="fp8"), "precision must be one of"),
        (dict(out="model.pth"), "must be a .safetensors file"),
        (dict(decay_from=2.0), r"decay_from must be in \[0, 1\]"),
    ],
)
def test_bad_options(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        _options(tmp_path, **kw)


def test_frozen_network_gets_no_gradients(tmp_path):
    trainer = Trainer(ToyTask(), _options(tmp_path, steps=1))
    from models.train.engine import StepContext

    ctx = StepContext(trainer.nets, trainer.plain, trainer.optimizers, trainer.scalers, trainer.device, None, 1)
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    with ctx.frozen("net") as net:
        net(x).sum().backward()
    assert x.grad is not None
    assert all(p.grad is None for p in trainer.plain["net"].parameters())
    assert all(p.requires_grad for p in trainer.plain["net"].parameters())
    assert isinstance(trainer.plain["net"], nn.Module)
