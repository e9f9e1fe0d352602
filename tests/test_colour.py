"""Luma and chroma (`models.colour`), and colourisation that keeps the input's luminance."""

from __future__ import annotations

import torch

from models import colour


def test_with_luma_puts_the_chroma_on_the_target_luma_exactly() -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 16, 16, generator=generator)
    target = torch.rand(2, 1, 16, 16, generator=generator)
    out = colour.with_luma(image, target)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(colour.luma(out), target, atol=1e-6)
    # where it fits, the chroma is the image's own; where it does not, it is scaled, never its hue flipped
    chroma_in, chroma_out = image - colour.luma(image), out - colour.luma(out)
    ratio = (chroma_out * chroma_in).sum(dim=1) / chroma_in.square().sum(dim=1).clamp(min=1e-12)
    assert (ratio >= -1e-6).all() and (ratio <= 1 + 1e-6).all()
    assert (ratio > 1 - 1e-5).float().mean() > 0.2  # a good share keeps its full chroma


def test_a_grey_image_takes_the_target_luma_and_a_saturated_one_fits_by_losing_saturation() -> None:
    grey = torch.full((1, 3, 4, 4), 0.3)
    target = torch.full((1, 1, 4, 4), 0.7)
    assert torch.allclose(colour.with_luma(grey, target), torch.full_like(grey, 0.7))
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 1.0
    bright = colour.with_luma(red, torch.full((1, 1, 1, 1), 0.9))
    assert abs(float(colour.luma(bright)) - 0.9) < 1e-6 and bright.max() <= 1.0
    assert bright[0, 0] > bright[0, 1]  # still reddish


def test_translate_keeps_the_input_luminance_when_asked() -> None:
    from models.archs.pix2pix import UNET, UnetGenerator, UnetGeneratorConfig
    from models.translate import translate
    from models.weights import LoadedModel

    torch.manual_seed(0)
    config = UnetGeneratorConfig(ngf=2, num_downs=5)
    model = LoadedModel(UnetGenerator(config).eval(), UNET.id, config, "translate")
    image = torch.rand(1, 3, 40, 40)
    plain = translate(model, image)
    kept = translate(model, image, keep_luminance=True)
    assert not torch.allclose(colour.luma(plain), colour.luma(image), atol=1e-3)
    assert torch.allclose(colour.luma(kept), colour.luma(image), atol=1e-5)
