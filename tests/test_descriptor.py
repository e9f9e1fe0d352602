"""The model descriptor (`LoadedModel`), the size rules of the architectures and the `Accepts` checks."""

import pytest
import torch

from models import damage, edit, enhance, inpaint, stylize, translate, weights
from models.architecture import Accepts, SizeRule
from models.archs.damage import DamageNet, DamageNetConfig
from models.archs.enhance import EnhanceConfig, EnhanceNet
from models.archs.pix2pix import ResnetGenerator, ResnetGeneratorConfig, UnetGenerator, UnetGeneratorConfig
from models.archs.transformer_net import TransformerNet, TransformerNetConfig
from models.registry import ARCHITECTURES

pytestmark = pytest.mark.unit

CORE_ACCEPTS = {
    "inpaint": inpaint.ACCEPTS, "enhance": enhance.ACCEPTS, "edit": edit.ACCEPTS, "translate": translate.ACCEPTS,
    "style transfer": stylize.STYLE_TRANSFER, "one style": stylize.ONE_STYLE, "detect damage": damage.ACCEPTS,
}


def test_size_rules_say_what_fits():
    rule = SizeRule(multiple=8, minimum=16)
    assert rule.fits(16, 24) and not rule.fits(8, 8) and not rule.fits(16, 20)
    assert rule.describe() == "multiples of 8 px and at least 16 px"
    assert SizeRule(exact=128).fits(128, 128) and not SizeRule(exact=128).fits(128, 64)
    assert SizeRule(exact=128).describe() == "exactly 128x128 px" and SizeRule().describe() == "any size"


@pytest.mark.parametrize("arch", list(ARCHITECTURES), ids=lambda a: a.id)
def test_every_architecture_gives_a_size_rule_and_runs_in_fp32(arch):
    for config in arch.example_configs:
        rule = arch.sizes(config)
        assert isinstance(rule, SizeRule) and rule.multiple >= 1 and rule.minimum >= 1
    assert "fp32" in arch.precisions and arch.scale == 1


@pytest.mark.parametrize(
    ("arch_id", "build", "config"),
    [
        ("pix2pix_unet", UnetGenerator, UnetGeneratorConfig(ngf=2, num_downs=5)),
        ("pix2pix_resnet", ResnetGenerator, ResnetGeneratorConfig(ngf=2, n_blocks=1)),
        ("enhance_unet", EnhanceNet, EnhanceConfig(base_channels=8, levels=2, blocks=0, context=False)),
        ("transformer_net", TransformerNet, TransformerNetConfig(widths=(4, 8, 8), residual_blocks=1)),
        ("damage_unet", DamageNet, DamageNetConfig(base_channels=4, levels=2, max_channels=8)),
    ],
    ids=["unet", "resnet", "enhance", "transformer_net", "damage"],
)
def test_a_network_takes_the_sizes_its_rule_allows_and_keeps_them(arch_id, build, config):
    rule = ARCHITECTURES.get(arch_id).sizes(config)
    side = max(rule.minimum, rule.multiple)
    assert rule.fits(side, 2 * side) and rule.multiple > 1
    with torch.no_grad():
        out = build(config).eval()(torch.rand(1, 3, side, 2 * side) * 2 - 1)
    assert out.shape[-2:] == (side, 2 * side)


def test_a_loaded_file_describes_itself(tmp_path):
    config = EnhanceConfig(base_channels=8, levels=2, blocks=0, context=False)
    path = weights.save(EnhanceNet(config), tmp_path / "e.safetensors", "enhance_unet", config, "enhance")
    loaded = weights.load(path)
    assert loaded.sizes == SizeRule(multiple=config.size_multiple) == SizeRule(multiple=8)
    assert loaded.precisions == ("fp32", "bf16") and loaded.scale == 1
    assert "U-Net" in loaded.description
    assert loaded.expect(enhance.ACCEPTS, "GAN Enhance") is loaded


def test_expect_refuses_with_who_what_and_a_hint():
    model = weights.LoadedModel(torch.nn.Identity(), "adain", None, "stylize", path="m.safetensors")
    with pytest.raises(ValueError) as info:
        model.expect(stylize.ONE_STYLE, "GAN Stylize")
    assert str(info.value) == (
        "GAN Stylize needs a fast-style model ('transformer_net', task 'stylize') or a CycleGAN/pix2pix generator "
        "(task 'translate'), but m.safetensors is a 'adain' model for 'stylize' (use GAN Style Transfer for it, "
        "with a style image)"
    )
    other = weights.LoadedModel(torch.nn.Identity(), "patchgan", None, "discriminate")
    with pytest.raises(ValueError, match=r"^GAN Inpaint needs a model for the 'inpaint' task, but this model is a "
                       r"'patchgan' model for 'discriminate'$"):
        other.expect(inpaint.ACCEPTS, "GAN Inpaint")


def test_accepts_by_task_and_architecture():
    by_task = Accepts("a model for the 'edit' task", tasks=("edit",))
    assert by_task.takes("anything", "edit") and not by_task.takes("edit", "inpaint")
    assert stylize.ONE_STYLE.takes("pix2pix_unet", "translate") and not stylize.ONE_STYLE.takes("adain", "stylize")
    with pytest.raises(ValueError, match="unknown tasks"):
        Accepts("x", tasks=("paint",))


@pytest.mark.parametrize("name", CORE_ACCEPTS)
def test_core_entry_points_accept_registered_architectures_of_their_tasks(name):
    accepts = CORE_ACCEPTS[name]
    assert accepts.archs, "every core entry point names the architectures it can run"
    for arch_id in accepts.archs:
        assert set(ARCHITECTURES.get(arch_id).tasks) & set(accepts.tasks), arch_id
