"""`python -m nodes.train convert` and `convert-adain` on the public-format fixtures."""

import subprocess
import sys

import pytest
import torch
from reference import FIXTURES

from models import weights
from nodes.train.cli import main

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="reference fixtures not present")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_convert_adain_writes_one_model_equal_to_the_pair(tmp_path, capsys):
    out = tmp_path / "sub" / "adain.safetensors"
    code = main(["convert-adain", "--vgg", str(FIXTURES / "adain_vgg.pth"),
                 "--decoder", str(FIXTURES / "adain_decoder.pth"), "--out", str(out)])
    assert code == 0
    assert "adain model for 'stylize'" in capsys.readouterr().out
    loaded = weights.load(out)
    assert loaded.arch == "adain" and loaded.task == "stylize"
    pair = weights.load_adain_pair(FIXTURES / "adain_vgg.pth", FIXTURES / "adain_decoder.pth")
    assert _same_weights(loaded.module, pair.module)


def test_convert_adain_with_swapped_files_says_so(tmp_path, capsys):
    code = main(["convert-adain", "--vgg", str(FIXTURES / "adain_decoder.pth"),
                 "--decoder", str(FIXTURES / "adain_vgg.pth"), "--out", str(tmp_path / "x.safetensors")])
    assert code == 2
    assert "swapped" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_convert_adain_missing_file_names_the_option(tmp_path, capsys):
    code = main(["convert-adain", "--vgg", str(tmp_path / "nope.pth"),
                 "--decoder", str(FIXTURES / "adain_decoder.pth"), "--out", str(tmp_path / "x.safetensors")])
    assert code == 2
    assert "--vgg" in capsys.readouterr().err


@pytest.mark.parametrize("name, arch, task", [
    ("fast_style_transformernet.pth", "transformer_net", "stylize"),
    ("cyclegan_resnet9_instance_nodropout.pth", "pix2pix_resnet", "translate"),
])
def test_convert_single_file_checkpoint(tmp_path, capsys, name, arch, task):
    out = tmp_path / f"{arch}.safetensors"
    assert main(["convert", "--src", str(FIXTURES / name), "--out", str(out)]) == 0
    assert f"{arch} model for '{task}'" in capsys.readouterr().out
    loaded = weights.load(out)
    assert (loaded.arch, loaded.task) == (arch, task)
    assert _same_weights(loaded.module, weights.load_foreign(FIXTURES / name).module)


def test_a_lone_adain_part_points_to_convert_adain(tmp_path, capsys):
    code = main(["convert", "--src", str(FIXTURES / "adain_decoder.pth"), "--out", str(tmp_path / "x.safetensors")])
    assert code == 2
    assert "convert_adain_pair" in capsys.readouterr().err


def test_out_must_be_safetensors(tmp_path, capsys):
    code = main(["convert", "--src", str(FIXTURES / "fast_style_transformernet.pth"), "--out", str(tmp_path / "x.pth")])
    assert code == 2
    assert ".safetensors" in capsys.readouterr().err


def test_module_entry_point_lists_the_commands(repo_root):
    result = subprocess.run([sys.executable, "-m", "nodes.train", "--help"], cwd=repo_root, capture_output=True,
                            text=True, check=True)
    assert "convert-adain" in result.stdout and "convert" in result.stdout
