"""A random VGG-16 loss network for tests of the perceptual training terms (no weights file needed)."""

import torch

from models.archs.vgg import VGG16Features


def random_vgg(scale: float = 1.0) -> VGG16Features:
    """A VGG-16 up to relu3_3 with random weights; `scale` multiplies every activation exactly (ReLU and max
    pooling are positively homogeneous, so scaling the first conv and every bias scales all features)."""
    torch.manual_seed(3)
    vgg = VGG16Features("max", last="relu3_3").requires_grad_(False).eval()
    with torch.no_grad():
        vgg.conv1_1.weight.mul_(scale)
        for module in vgg.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.bias.mul_(scale)
    return vgg
