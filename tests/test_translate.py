"""The translate task function: any size, pad vs resize, eval vs per-image batch statistics, input checks."""


import pytest
import torch
from reference import FIXTURES
from safetensors.torch import load_file

from models import layout, weights
from models.archs.context_encoder import AnyMaskConfig, AnyMaskContextEncoder
from models.archs.pix2pix import ResnetGenerator, ResnetGeneratorConfig, UnetGenerator, UnetGeneratorConfig
from models.translate import padded_size, resized_size, translate
from models.weights import LoadedModel

pytestmark = pytest.mark.unit



def _unet(norm: str = "batch", num_downs: int = 5, seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    config = UnetGeneratorConfig(ngf=2, num_downs=num_downs, norm=norm)
    module = UnetGenerator(config)
    with torch.no_grad():  # non-default running stats, so eval and batch statistics differ
        for name, t in module.state_dict().items():
            if "running_" in name:
                t.add_(torch.rand_like(t) * 0.5)
    return LoadedModel(module.eval(), "pix2pix_unet", config, "translate")


def _resnet(seed: int = 0, **kwargs) -> LoadedModel:
    torch.manual_seed(seed)
    config = ResnetGeneratorConfig(ngf=2, n_blocks=1, **kwargs)
    return LoadedModel(ResnetGenerator(config).eval(), "pix2pix_resnet", config, "translate")


def _image(b: int = 1, h: int = 37, w: int = 53, c: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("resize_mode", ["pad", "resize"])
@pytest.mark.parametrize("size", [(37, 53), (1, 1), (5, 130), (64, 64)])
def test_any_size_comes_back_the_same_size(resize_mode, size):
    image = _image(2, *size)
    for model in (_unet(), _resnet()):
        out = translate(model, image, resize_mode=resize_mode)
        assert out.shape == image.shape and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1


def test_sizes_the_network_is_given():
    assert [padded_size(s, 32, 32) for s in (1, 32, 33, 300)] == [32, 32, 64, 320]
    assert [resized_size(s, 32, 32) for s in (1, 47, 49, 300)] == [32, 32, 64, 288]


def test_a_multiple_is_not_touched_and_pad_equals_the_plain_network():
    model = _resnet()
    image = _image(1, 40, 64)
    expected = layout.from_signed(model.module(layout.to_signed(image)))
    for mode in ("pad", "resize"):
        assert torch.equal(translate(model, image, resize_mode=mode), expected)


def test_pad_and_resize_differ_on_other_sizes():
    model, image = _unet(), _image(1, 45, 70)
    pad, resize = (translate(model, image, resize_mode=m) for m in ("pad", "resize"))
    assert (pad - resize).abs().max() > 1e-3


def test_batch_items_are_independent_and_progress_is_per_item():
    model, image = _unet(), _image(3)
    calls = []
    out = translate(model, image, norm_mode="batch_stats", progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert torch.equal(out[1:2], translate(model, image[1:2], norm_mode="batch_stats"))


def test_batch_stats_differ_from_eval_for_batch_norm_and_leave_the_module_alone():
    model, image = _unet(), _image(2, 32, 64)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    evaluated = translate(model, image)
    batch_stats = translate(model, image, norm_mode="batch_stats")
    assert (evaluated - batch_stats).abs().max() > 1e-3
    assert not model.module.training and not any(m.training for m in model.module.modules())
    for key, value in model.module.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(translate(model, image), evaluated)
    model.module.train()
    translate(model, image, norm_mode="batch_stats")
    assert all(m.training for m in model.module.modules())


def test_instance_norm_models_give_the_same_result_in_both_modes():
    model, image = _resnet(norm="instance", use_dropout=True), _image(1, 24, 24)
    assert torch.equal(translate(model, image), translate(model, image, norm_mode="batch_stats"))


def test_reference_outputs_through_translate():
    name = "pix2pix_unet256_batch_dropout"
    io = load_file(FIXTURES / f"{name}.io.safetensors")
    model = weights.load(FIXTURES / f"{name}.pth")
    image = layout.from_signed(io["input"])
    for norm_mode, key in (("eval", "output"), ("batch_stats", "output_train_mode")):
        out = translate(model, image, norm_mode=norm_mode)
        assert (out - layout.from_signed(io[key])).abs().max().item() <= 1e-5


def test_other_dtype_works_on_a_copy():
    model, image = _unet(), _image(1, 32, 32)
    out = translate(model, image, dtype=torch.bfloat16)
    assert out.dtype == torch.float32 and out.shape == image.shape
    assert next(model.module.parameters()).dtype == torch.float32
    assert (out - translate(model, image)).abs().max() < 0.1


def test_bad_inputs_are_clear_errors():
    model = _unet()
    with pytest.raises(ValueError, match=r"must have 3 channels \(BCHW\), got shape \(1, 4, 8, 8\)"):
        translate(model, _image(1, 8, 8, c=4))
    with pytest.raises(ValueError, match=r"values must lie in \[0, 1\]"):
        translate(model, _image() * 2)
    with pytest.raises(ValueError, match="4 dimensions"):
        translate(model, _image()[0])
    with pytest.raises(ValueError, match="norm_mode must be one of"):
        translate(model, _image(), norm_mode="train")
    with pytest.raises(ValueError, match="resize_mode must be one of"):
        translate(model, _image(), resize_mode="crop")


def test_a_model_of_another_architecture_is_refused():
    config = AnyMaskConfig(base_channels=4, downsamplings=2, bottleneck_blocks=1)
    inpainter = LoadedModel(AnyMaskContextEncoder(config), "context_encoder_anymask", config, "inpaint")
    with pytest.raises(ValueError, match="translate needs .*'pix2pix_unet'.*got architecture 'context_encoder_anymask' "
                       r"\(task 'inpaint'\)"):
        translate(inpainter, _image())
