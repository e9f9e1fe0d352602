"""Arbitrary style transfer with adaptive instance normalisation (Huang & Belongie 2017).

One `adain` model is the whole thing a user picks: the fixed VGG-19 encoder up to relu4_1 and the
trained decoder, in one module and one weights file (keys `encoder.<i>.…` and `decoder.<i>.…`, the
indices of naoto0804/pytorch-AdaIN's `vgg` and `decoder` Sequentials). Any style image works at run
time: `encode` both images, `adain` moves the content features' per-channel mean and std onto the
style's, `decode` turns features back into an image (raw, unclamped, [0, 1] scale).

Public checkpoints come as two files, `vgg_normalised.pth` (the whole 53-child VGG; only children
0..30 are used, keys of later children are ignored) and `decoder.pth`. `pair_state(vgg, decoder)` joins
their state dicts (`models.weights.convert_adain_pair` writes them as one file of ours). A single `.pth` is
recognised by `detect`: a file holding both parts (keys prefixed `encoder.`/`vgg.` and `decoder.`)
converts; a lone encoder or decoder is refused with a message that points to `convert_adain_pair`. Float16
files are upcast: the module computes in float32 unless a task function asks otherwise.

The config's `encoder` says which encoder the file carries (and the decoder was trained against):
`vgg19_normalised` is the reference layout above; `vgg16_blurpool` and `vgg16` are VGG-16 cut after
relu4_1 (`models.archs.vgg.VGG16Features`, keys `encoder.conv1_1.weight` ...), with anti-aliased or
plain max pooling, as `python -m nodes.train adain` trains them. The anti-aliased encoder makes maps
of floor(n / 2) + 1 px per pooling whose cells sit 7 px up and left of a max-pooled grid at relu4_1:
`decode` crops those 7 px (`DECODE_OFFSET`), its output is still a px or more larger than the input,
and `forward` crops it to the content's size. Its features are multiplied by `FEATURE_SCALE` (20).

The config's `decoder` says which decoder: `reference` (the Sequential above, reading relu4_1) or `skip`
(`SkipDecoder`, keys `decoder.head.…`, `decoder.fuse3.…`: VGG-16 encoders only). The skip decoder also
reads relu2_1 and relu3_1, and AdaIN moves each of the three levels to the style's statistics;
`decoder_inputs` gives the levels a decoder reads, and `decode` takes that list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architecture import Architecture, SizeRule, StateDict
from .vgg import VGG16Features

ENCODERS = ("vgg19_normalised", "vgg16_blurpool", "vgg16")
VGG16_POOLING = {"vgg16_blurpool": "blur", "vgg16": "max"}
DECODE_OFFSET = {"vgg16_blurpool": 7}
"""px the decoder's output is cropped by at the top and left: each anti-aliased pooling centres its
output cell half a cell earlier than a 2x2 max pool, so relu4_1 cell i describes the image around
8i - 3.5 px, not 8i + 3.5 px where the decoder paints it."""
FEATURE_SCALE = {"vgg16_blurpool": 20.0}
"""A fixed factor on the encoder's outputs. The anti-aliased VGG-16's activations are about 20x smaller
than the reference VGG-19's (its deep features have a std near 0.1), which starves a decoder trained
from scratch with Adam's bounded steps; AdaIN is scale-equivariant, so the factor changes nothing else."""
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
"""The encoder outputs whose mean/std the style loss of training matches (Huang & Belongie 2017)."""
_VGG19_STYLE_CHILDREN = (3, 10, 17, 30)
"""relu1_1 .. relu4_1 as child indices of the reference `vgg` Sequential."""
EPS = 1e-5
"""Added to the (unbiased) variance before the square root, as in the reference `calc_mean_std`."""

# Sequential indices of the convolutions and their (out, in, kernel) shapes.
_VGG_CONVS = {
    0: (3, 3, 1), 2: (64, 3, 3), 5: (64, 64, 3), 9: (128, 64, 3), 12: (128, 128, 3), 16: (256, 128, 3),
    19: (256, 256, 3), 22: (256, 256, 3), 25: (256, 256, 3), 29: (512, 256, 3),
}
_VGG_LATER_CONVS = (32, 35, 38, 42, 45, 48, 51)  # relu4_2 .. relu5_4 in a full vgg_normalised.pth
_DECODER_CONVS = {
    1: (256, 512, 3), 5: (256, 256, 3), 8: (256, 256, 3), 11: (256, 256, 3), 14: (128, 256, 3),
    18: (128, 128, 3), 21: (64, 128, 3), 25: (64, 64, 3), 28: (3, 64, 3),
}
DECODERS = ("reference", "skip")

ENCODER_CHILDREN = 31
"""The encoder is `vgg` children 0..30: up to and including relu4_1 (512 channels at 1/8 size)."""


@dataclass(frozen=True)
class AdaINConfig:
    """`encoder` names the encoder the decoder was trained against; `decoder` its layout (module doc)."""

    encoder: str = "vgg19_normalised"
    decoder: str = "reference"

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.decoder == "skip" and self.encoder not in VGG16_POOLING:
            raise ValueError(f"the skip decoder needs a VGG-16 encoder ({sorted(VGG16_POOLING)}), got {self.encoder!r}")


def _vgg_encoder() -> nn.Sequential:
    """The reference `vgg` Sequential cut after relu4_1, with its original child indices."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    for index in range(1, ENCODER_CHILDREN):
        if index in _VGG_CONVS:
            cout, cin, kernel = _VGG_CONVS[index]
            layers.append(nn.Conv2d(cin, cout, kernel))
        elif index in (7, 14, 27):
            layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
        elif index + 1 in _VGG_CONVS:
            layers.append(nn.ReflectionPad2d(1))
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _decoder() -> nn.Sequential:
    """The reference `decoder` Sequential: pad-conv-relu blocks with nearest x2 upsampling."""
    layers: list[nn.Module] = []
    for index in range(29):
        if index in _DECODER_CONVS:
            cout, cin, kernel = _DECODER_CONVS[index]
            layers.append(nn.Conv2d(cin, cout, kernel))
        elif index + 1 in _DECODER_CONVS:
            layers.append(nn.ReflectionPad2d(1))
        elif index in (3, 16, 23):
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), nn.ReLU())


class SkipDecoder(nn.Module):
    """A small decoder for CPUs: relu4_1 decoded upwards and joined, at 1/4 and 1/2 scale, by relu3_1 and
    relu2_1 (each given the style's statistics by AdaIN at run time), so the content's edges reach the
    output directly instead of being rebuilt from relu4_1 alone (1.38 M parameters against 3.51 M).

    `shift` is the cell the anti-aliased encoder's pooling moves each level by: its cell i at scale 2^L
    covers the image around 2^L i - (2^L - 1) / 2 px, so a nearest x2 upsampling lands one finer cell
    late, and dropping the first row and column of every upsampled map puts it back on the finer grid.
    The output is at least the input's size, aligned at the top left."""

    def __init__(self, shift: int) -> None:
        super().__init__()
        self.shift = shift
        self.head = _block(512, 128)
        self.fuse3 = nn.Sequential(_block(128 + 256, 128), _block(128, 128))
        self.fuse2 = nn.Sequential(_block(128 + 128, 64), _block(64, 64))
        self.out = nn.Sequential(_block(64, 32), nn.ReflectionPad2d(1), nn.Conv2d(32, 3, 3))

    def _up(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x[..., self.shift :, self.shift :]

    def forward(self, levels: Sequence[Tensor]) -> Tensor:
        relu2, relu3, relu4 = levels
        x = self._up(self.head(relu4))
        x = self.fuse3(torch.cat([x[..., : relu3.shape[-2], : relu3.shape[-1]], relu3], dim=1))
        x = self._up(x)
        x = self.fuse2(torch.cat([x[..., : relu2.shape[-2], : relu2.shape[-1]], relu2], dim=1))
        return self.out(self._up(x))


def mean_std(features: Tensor, eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std over H x W, shapes [B, C, 1, 1] (unbiased variance + eps)."""
    flat = features.flatten(2)
    return flat.mean(dim=2)[..., None, None], (flat.var(dim=2) + eps).sqrt()[..., None, None]


def adaptive_instance_norm(content: Tensor, style_mean: Tensor, style_std: Tensor) -> Tensor:
    """Content features normalised per channel, then given the style's mean and std."""
    mean, std = mean_std(content)
    return (content - mean) / std * style_std + style_mean


class AdaIN(nn.Module):
    """VGG encoder (relu4_1) + decoder. `forward(content, style)` is the reference `style_transfer`."""

    def __init__(self, config: AdaINConfig) -> None:
        super().__init__()
        self.feature_scale = FEATURE_SCALE.get(config.encoder, 1.0)
        self.skip = config.decoder == "skip"
        self.decode_offset = 0 if self.skip else DECODE_OFFSET.get(config.encoder, 0)
        if config.encoder in VGG16_POOLING:
            self.encoder = VGG16Features(VGG16_POOLING[config.encoder], last="relu4_1")
        else:
            self.encoder = _vgg_encoder()
        self.decoder = SkipDecoder(shift=int(config.encoder == "vgg16_blurpool")) if self.skip else _decoder()

    def encode(self, image: Tensor) -> Tensor:
        """relu4_1 features [B, 512, ~H/8, ~W/8] of RGB images in [0, 1] (ceil(H/8) for the reference VGG-19)."""
        features = self.encoder(image)
        return features * self.feature_scale if self.feature_scale != 1.0 else features

    def encode_levels(self, image: Tensor) -> list[Tensor]:
        """The encoder's relu1_1, relu2_1, relu3_1 and relu4_1 outputs (the last equals `encode`)."""
        if isinstance(self.encoder, VGG16Features):
            found = self.encoder.features(image, STYLE_LAYERS)
            return [found[name] * self.feature_scale for name in STYLE_LAYERS]
        out, x = [], image
        for index, layer in enumerate(self.encoder):
            x = layer(x)
            if index in _VGG19_STYLE_CHILDREN:
                out.append(x)
        return out

    def decoder_inputs(self, image: Tensor) -> list[Tensor]:
        """The features the decoder reads, coarsest last: [relu4_1], or relu2_1 .. relu4_1 for the skip decoder."""
        return self.encode_levels(image)[1:] if self.skip else [self.encode(image)]

    def decode(self, levels: Sequence[Tensor]) -> Tensor:
        """Images [B, 3, ~8h, ~8w] from `decoder_inputs`-like features, raw (not clamped), aligned with the
        encoder's input at the top left."""
        return run_decoder(self.decoder, levels, self.decode_offset)

    def forward(self, content: Tensor, style: Tensor | None = None, alpha: float = 1.0) -> Tensor:
        """decoder(alpha * adain(f_c, f_s) + (1 - alpha) * f_c) at every level the decoder reads; without a
        style, decoder(f_c)."""
        levels = self.decoder_inputs(content)
        if style is not None:
            stats = [mean_std(f) for f in self.decoder_inputs(style)]
            levels = stylised(levels, stats, alpha)
        return self.decode(levels)[..., : content.shape[-2], : content.shape[-1]]


def run_decoder(decoder: nn.Module, levels: Sequence[Tensor], offset: int) -> Tensor:
    """`decoder` (a `SkipDecoder` reads every level, the reference decoder relu4_1) on `levels`, cropped by
    `offset` px at the top and left (`AdaIN.decode_offset`)."""
    out = decoder(levels) if isinstance(decoder, SkipDecoder) else decoder(levels[-1])
    return out[..., offset:, offset:] if offset else out


def stylised(levels: Sequence[Tensor], stats: Sequence[tuple[Tensor, Tensor]], alpha: float = 1.0) -> list[Tensor]:
    """Each level's AdaIN with its (mean, std), mixed with the level itself: alpha 1 = all style."""
    out = []
    for feature, (mean, std) in zip(levels, stats, strict=True):
        moved = adaptive_instance_norm(feature, mean, std)
        out.append(moved if alpha == 1.0 else alpha * moved + (1.0 - alpha) * feature)
    return out


# --------------------------------------------------------------------------------------------------
# Foreign checkpoints: vgg_normalised.pth and decoder.pth of naoto0804/pytorch-AdaIN


def _has_convs(state_dict: StateDict, convs: dict[int, tuple[int, int, int]], extra: tuple[int, ...] = ()) -> bool:
    """True when the keys are exactly `<i>.weight`/`<i>.bias` of `convs` (plus optionally all of
    `extra`) with the reference shapes."""
    wanted = {f"{i}.{p}" for i in convs for p in ("weight", "bias")}
    later = {f"{i}.{p}" for i in extra for p in ("weight", "bias")}
    if set(state_dict) not in (wanted, wanted | later):
        return False
    return all(
        tuple(state_dict[f"{i}.weight"].shape) == (cout, cin, k, k) and tuple(state_dict[f"{i}.bias"].shape) == (cout,)
        for i, (cout, cin, k) in convs.items()
    )


def is_vgg(state_dict: StateDict) -> bool:
    """A `vgg_normalised.pth` state dict: children 0..30, or the whole VGG (later keys ignored)."""
    return _has_convs(state_dict, _VGG_CONVS, _VGG_LATER_CONVS)


def is_decoder(state_dict: StateDict) -> bool:
    """A pytorch-AdaIN `decoder.pth` state dict."""
    return _has_convs(state_dict, _DECODER_CONVS)


def _split_combined(state_dict: StateDict) -> tuple[StateDict, StateDict] | None:
    """(vgg part, decoder part) of a one-file state dict (`encoder.`/`vgg.` + `decoder.` keys), or None."""
    vgg: StateDict = {}
    decoder: StateDict = {}
    for key, value in state_dict.items():
        head, _, rest = key.partition(".")
        if head in ("encoder", "vgg"):
            vgg[rest] = value
        elif head == "decoder":
            decoder[rest] = value
        else:
            return None
    return (vgg, decoder) if is_vgg(vgg) and is_decoder(decoder) else None


def pair_state(vgg: StateDict, decoder: StateDict) -> tuple[AdaINConfig, StateDict]:
    """Config and state dict of ours from the two reference state dicts (VGG keys past child 30 dropped)."""
    if not is_vgg(vgg):
        hint = " (it is an AdaIN decoder: are the two files swapped?)" if is_decoder(vgg) else ""
        raise ValueError(f"the encoder file is not an AdaIN vgg_normalised state dict{hint}; keys: {list(vgg)[:6]}")
    if not is_decoder(decoder):
        hint = " (it is the AdaIN VGG encoder: are the two files swapped?)" if is_vgg(decoder) else ""
        raise ValueError(f"the decoder file is not an AdaIN decoder state dict{hint}; keys: {list(decoder)[:6]}")
    state = {f"encoder.{k}": v for k, v in vgg.items() if int(k.split(".")[0]) < ENCODER_CHILDREN}
    state.update({f"decoder.{k}": v for k, v in decoder.items()})
    return AdaINConfig(), state


def detect(state_dict: StateDict) -> bool:
    """True for the AdaIN VGG encoder, the decoder, or both in one state dict (see module doc)."""
    return is_vgg(state_dict) or is_decoder(state_dict) or _split_combined(state_dict) is not None


def convert(state_dict: StateDict) -> tuple[AdaINConfig, StateDict]:
    """A one-file encoder + decoder converts; a lone part is refused (it needs its partner)."""
    parts = _split_combined(state_dict)
    if parts is not None:
        return pair_state(*parts)
    part = "VGG encoder (vgg_normalised.pth)" if is_vgg(state_dict) else "decoder (decoder.pth)"
    raise ValueError(
        f"this is only the AdaIN {part}; an adain model needs both the VGG encoder and the decoder. Convert "
        "the two files together: models.weights.convert_adain_pair(vgg_path, decoder_path, dst)"
    )


SIZES = SizeRule(multiple=8, minimum=16)
"""The encoder works at 1/8 scale (relu4_1); smaller images give features under 2x2 px (no std)."""

ARCHITECTURE = Architecture(
    id="adain",
    config_cls=AdaINConfig,
    build=AdaIN,
    tasks=("stylize",),
    description="AdaIN arbitrary style transfer (Huang & Belongie 2017, pytorch-AdaIN): VGG-19 (reference) or "
    "VGG-16 encoder to relu4_1 + decoder in one file; any style image at run time",
    detect=detect,
    convert=convert,
    sizes=lambda config: SIZES,
    example_configs=(AdaINConfig(), AdaINConfig("vgg16_blurpool"), AdaINConfig("vgg16"),
                     AdaINConfig("vgg16_blurpool", "skip")),
)
