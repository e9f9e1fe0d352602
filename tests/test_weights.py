"""Weights format: round trips for every registered architecture, and clear errors for bad files."""

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from reference import FIXTURES
from safetensors.torch import load_file, save_file
from torch import nn

from models import weights
from models.registry import ARCHITECTURES, Architecture, Registry

pytestmark = pytest.mark.unit

EXAMPLES = [(arch.id, cfg) for arch in ARCHITECTURES for cfg in arch.example_configs]


def _example_input(module: nn.Module) -> torch.Tensor:
    """An image for the module: `config.input_channels` where the config says, else the first conv's."""
    channels = getattr(getattr(module, "config", None), "input_channels", None)
    if channels is None:
        channels = next(m for m in module.modules() if isinstance(m, nn.Conv2d)).in_channels
    return torch.rand(2, channels, 64, 64, generator=torch.Generator().manual_seed(0))


def _perturbed(arch_id, config):
    """Build a module whose every tensor is non-default, so a lost tensor shows in the output."""
    torch.manual_seed(1)
    module = ARCHITECTURES.get(arch_id).build(config)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.add_(torch.rand_like(t) * 0.1 + (0.5 if "running_var" in name else 0.0))
    return module.eval()


def test_every_architecture_has_examples():
    assert len(ARCHITECTURES) >= 1
    for arch in ARCHITECTURES:
        if arch.from_weights is not None:  # made from their weights only: tests/test_foreign.py builds them
            assert not arch.example_configs
            continue
        assert arch.example_configs, f"{arch.id} has no example configs to test"


@pytest.mark.parametrize("arch_id, config", EXAMPLES, ids=[f"{a}-{i}" for i, (a, _) in enumerate(EXAMPLES)])
def test_round_trip_gives_identical_outputs(tmp_path, arch_id, config):
    module = _perturbed(arch_id, config)
    task = ARCHITECTURES.get(arch_id).tasks[0]
    path = weights.save(module, tmp_path / "m.safetensors", arch_id, config, task, {"recipe": "test"})
    loaded = weights.load(path)
    assert loaded.arch == arch_id and loaded.config == config and loaded.task == task
    assert loaded.provenance == {"recipe": "test"}
    x = _example_input(module)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), module(x))


def test_metadata_is_readable_json(tmp_path):
    arch_id, config = EXAMPLES[0]
    module = ARCHITECTURES.get(arch_id).build(config)
    path = weights.save(module, tmp_path / "m.safetensors", arch_id, config, "discriminate", {"steps": 3})
    meta = weights.read_metadata(path)
    assert meta["arch"] == arch_id
    assert json.loads(meta["config"])["ndf"] == config.ndf
    assert meta["format_version"] == str(weights.FORMAT_VERSION)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    arch_id, config = EXAMPLES[0]
    module = ARCHITECTURES.get(arch_id).build(config)
    weights.save(module, tmp_path / "m.safetensors", arch_id, config, "discriminate")
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


def test_wrong_task_for_architecture_is_refused(tmp_path):
    arch_id, config = EXAMPLES[0]
    module = ARCHITECTURES.get(arch_id).build(config)
    with pytest.raises(ValueError, match="serves tasks .*not 'inpaint'"):
        weights.save(module, tmp_path / "m.safetensors", arch_id, config, "inpaint")


@dataclass(frozen=True)
class TinyConfig:
    width: int = 2
    sizes: tuple[int, ...] = (1, 2)


def _tiny_registry() -> Registry:
    return Registry(
        (
            Architecture(
                id="tiny",
                config_cls=TinyConfig,
                build=lambda c: nn.Conv2d(3, c.width, 1),
                tasks=("enhance",),
                description="test",
            ),
        )
    )


def test_duplicate_architecture_id_is_an_error():
    reg = _tiny_registry()
    with pytest.raises(ValueError, match="'tiny' is registered twice"):
        reg.register(reg.get("tiny"))


def test_tuple_config_fields_survive_json(tmp_path):
    reg = _tiny_registry()
    cfg = TinyConfig(width=3, sizes=(4, 5))
    path = weights.save(reg.get("tiny").build(cfg), tmp_path / "t.safetensors", "tiny", cfg, "enhance", registry=reg)
    assert weights.load(path, registry=reg).config == cfg


def test_unknown_architecture_names_what_is_known(tmp_path):
    reg = _tiny_registry()
    path = weights.save(nn.Conv2d(3, 2, 1), tmp_path / "t.safetensors", "tiny", TinyConfig(), "enhance", registry=reg)
    with pytest.raises(ValueError, match="unknown architecture 'tiny'.*patchgan"):
        weights.load(path)


def test_shape_mismatch_names_the_key(tmp_path):
    reg = _tiny_registry()
    path = weights.save(nn.Conv2d(3, 2, 1), tmp_path / "t.safetensors", "tiny", TinyConfig(), "enhance", registry=reg)
    tensors = load_file(path)
    tensors["weight"] = torch.zeros(5, 3, 1, 1)
    tensors["extra"] = torch.zeros(1)
    meta = weights.read_metadata(path)
    save_file(tensors, path, metadata=meta)
    expected = r"unexpected 1 keys.*extra.*weight: file \(5, 3, 1, 1\) vs model \(2, 3, 1, 1\)"
    with pytest.raises(ValueError, match=expected):
        weights.load(path, registry=reg)


def test_unknown_config_field_is_reported(tmp_path):
    reg = _tiny_registry()
    path = weights.save(nn.Conv2d(3, 2, 1), tmp_path / "t.safetensors", "tiny", TinyConfig(), "enhance", registry=reg)
    meta = weights.read_metadata(path)
    meta["config"] = json.dumps({"width": 2, "depth": 9})
    save_file(load_file(path), path, metadata=meta)
    with pytest.raises(ValueError, match=r"unknown fields \['depth'\]"):
        weights.load(path, registry=reg)


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "photo.safetensors"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(ValueError, match="photo.safetensors: not a safetensors file"):
        weights.load(path)


def test_foreign_safetensors_without_our_metadata(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a gan-edit weights file"):
        weights.load(path)


def test_truncated_file(tmp_path):
    arch_id, config = EXAMPLES[0]
    module = ARCHITECTURES.get(arch_id).build(config)
    path = weights.save(module, tmp_path / "m.safetensors", arch_id, config, "discriminate")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match="m.safetensors: truncated: tensors need"):
        weights.load(path)
    path.write_bytes(data[:20])
    with pytest.raises(ValueError, match="truncated: header claims"):
        weights.load(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.safetensors: no such file"):
        weights.load("nope.safetensors")


class _Payload:
    """Unpickling this calls os.system: the attack a malicious checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"model.0.weight": torch.zeros(1)}, "x": _Payload(marker)}, path)
    with pytest.raises(ValueError, match="evil.pth: refused to load: not a plain tensor checkpoint"):
        weights.load(path)
    assert not marker.exists()
    # The same file through plain pickle really would have run the command: the test is not vacuous.
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Payload(marker)))
    pickle.loads(raw.read_bytes())
    assert marker.exists()


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="reference fixtures not present")
def test_public_patchgan_checkpoint_converts_and_reproduces_reference(tmp_path):
    from safetensors.torch import load_file as read_io

    io = read_io(FIXTURES / "patchgan_basic_n3_batch.io.safetensors")
    loaded = weights.load(FIXTURES / "patchgan_basic_n3_batch.pth")
    assert loaded.arch == "patchgan"
    assert (loaded.config.input_nc, loaded.config.ndf, loaded.config.n_layers, loaded.config.norm) == (6, 8, 3, "batch")
    with torch.no_grad():
        out = loaded.module(io["input"])
    assert (out - io["output"]).abs().max().item() <= 1e-5
    ours = weights.convert(FIXTURES / "patchgan_basic_n3_batch.pth", tmp_path / "d.safetensors")
    with torch.no_grad():
        again = weights.load(ours).module(io["input"])
    assert torch.equal(again, out)


# -- checked before built ---------------------------------------------------------------------------------------


def _enhance_file(tmp_path, **config_changes) -> Path:
    """A small enhance file whose metadata config is changed afterwards (the tensors stay those of the original)."""
    from models.archs.enhance import EnhanceConfig, EnhanceNet

    config = EnhanceConfig(base_channels=8, levels=1, blocks=1, context_size=32)
    path = weights.save(EnhanceNet(config), tmp_path / "e.safetensors", "enhance_unet", config, "enhance")
    if config_changes:
        meta = weights.read_metadata(path)
        changed = {**json.loads(meta["config"]), **config_changes}
        save_file(load_file(path), str(path), metadata={**meta, "config": json.dumps(changed)})
    return path


def test_a_config_far_larger_than_its_file_is_refused_before_it_is_built(tmp_path):
    built = []
    with pytest.raises(ValueError, match=r"e.safetensors: implausible config for architecture 'enhance_unet': it "
                       r"implies more than 400,000,000 parameters"):
        weights.load(_enhance_file(tmp_path, base_channels=16384), _recording(built))
    assert [device for device in built] == ["meta"]  # only the meta build ran


def _recording(built: list) -> Registry:
    """A registry whose enhance_unet notes the default device of every build (meta inside the check)."""
    import dataclasses

    from models.archs.enhance import EnhanceNet

    def build(config):
        built.append(str(torch.empty(0).device))
        return EnhanceNet(config)

    return Registry((dataclasses.replace(ARCHITECTURES.get("enhance_unet"), build=build),))


def test_a_config_that_does_not_match_the_tensors_is_refused_before_a_real_build(tmp_path):
    built = []
    registry = _recording(built)
    with pytest.raises(ValueError, match=r"weights do not fit architecture 'enhance_unet': .*shape mismatches"):
        weights.load(_enhance_file(tmp_path, base_channels=12), registry)
    assert built == ["meta"]
    weights.load(_enhance_file(tmp_path), registry)
    assert built == ["meta", "meta", "cpu"]  # a good file: checked on meta, then built for real


def test_the_parameter_budget_is_configurable(tmp_path, monkeypatch):
    path = _enhance_file(tmp_path)
    monkeypatch.setenv("GAN_EDIT_MAX_PARAMETERS", "1000")
    with pytest.raises(ValueError, match=r"declares [\d,]+ parameters; the limit is 1,000 \(GAN_EDIT_MAX_PARAMETERS\)"):
        weights.load(path)
    monkeypatch.setenv("GAN_EDIT_MAX_PARAMETERS", "lots")
    with pytest.raises(ValueError, match="GAN_EDIT_MAX_PARAMETERS must be a positive integer"):
        weights.load(path)


def _with_header(path: Path, change) -> Path:
    import struct

    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    change(header)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n :])
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h["tail.bias"].update(dtype="Q4"), r"tensor 'tail.bias' has dtype 'Q4'; expected one of"),
        (lambda h: h["tail.bias"].update(shape=[2**40]), r"tensor 'tail.bias' \(F32 \[1099511627776\]\) needs"),
        (lambda h: h["tail.bias"].update(data_offsets=[0, h["tail.bias"]["data_offsets"][1] - h["tail.bias"][
            "data_offsets"][0]]), r"overlaps the tensor before it|leaves a gap"),
        (lambda h: h["tail.bias"].update(shape="3"), r"has shape '3'; expected a list of non-negative ints"),
        (lambda h: h["__metadata__"].update(task="inpaint"), r"says task 'inpaint', but architecture 'enhance_unet' "
         r"serves \['enhance'\]"),
        (lambda h: h["__metadata__"].update(config="[" * 5000 + "]" * 5000), r"config metadata"),
        (lambda h: h["__metadata__"].update(config=json.dumps({"levels": 10**9})), r"levels = 1000000000 is not "
         r"plausible"),
    ],
    ids=["dtype", "huge-shape", "overlap", "shape-type", "task", "deep-json", "huge-number"],
)
def test_header_and_metadata_faults_name_the_cause(tmp_path, change, message):
    path = _with_header(_enhance_file(tmp_path), change)
    with pytest.raises(ValueError, match=message) as info:
        weights.load(path)
    assert "e.safetensors" in str(info.value)


def test_a_compressed_zip_checkpoint_is_refused_unread(tmp_path):
    import zipfile

    from models import checkpoint

    good = tmp_path / "good.pth"
    torch.save({"weight": torch.zeros(4)}, good)
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename) + (b"\0" * 2**22 if "data/" in info.filename else b""))
    with pytest.raises(ValueError, match=r"bomb.pth: refused to load: compressed entries"):
        checkpoint.read_foreign(bomb)
    assert torch.equal(checkpoint.read_foreign(good)["weight"], torch.zeros(4))
