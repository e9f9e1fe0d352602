"""`python -m nodes.train enhance`: train a restorer or auto-enhancer on photos (or on real pairs)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import typing

log = logging.getLogger(__name__)

PRESETS = ("restore", "enhance", "both")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .run_options import add_run_options, add_source_holdout

    parser = subparsers.add_parser(
        "enhance",
        help="train an enhance_unet restorer/enhancer (synthetic degradations of photos, or real pairs)",
        description="Train the residual U-Net of the GAN Enhance node. By default the pairs are made on the fly: "
        "crops of the photos in --data are the targets, the same crops degraded (models/degrade.py) the "
        "inputs. --preset restore: blur, resize, noise, JPEG (Real-ESRGAN-like); enhance: colour cast, "
        "exposure, contrast, saturation; both: all of them. Change any field of the preset with --degrade "
        "FIELD=VALUE (ranges as LOW,HIGH), e.g. --degrade noise_sigma=5,50 --degrade jpeg_probability=0. "
        "With --pairs the data are real pairs instead: --data holds folders A/ (degraded) and B/ (clean) with "
        "the same file names, or images that are degraded|clean side by side.",
    )
    g = parser.add_argument_group("data")
    g.add_argument("--data", required=True, help="folder of training photos, searched recursively")
    g.add_argument("--pairs", action="store_true",
                   help="the data are real pairs: folders A/ (degraded) and B/ (clean), or degraded|clean images")
    g.add_argument("--holdout", type=float, default=0.0,
                   help="fraction of images set aside by a stable hash of their path (never trained on)")
    add_source_holdout(g, scoring=False)
    g.add_argument("--max-side", type=int, default=1024, help="downscale larger images to this on load")
    d = parser.add_argument_group("degradations (synthetic pairs)")
    d.add_argument("--preset", choices=PRESETS, default="restore", help="the degradation mix to start from")
    d.add_argument("--degrade", action="append", default=[], metavar="FIELD=VALUE",
                   help="override one DegradeConfig field (repeatable); ranges as LOW,HIGH")
    m = parser.add_argument_group("model and losses")
    m.add_argument("--crop", type=int, default=128, help="training crop size")
    m.add_argument("--batch-size", type=int, default=16)
    m.add_argument("--no-zoom", action="store_true", help="crop at native scale only (synthetic pairs)")
    m.add_argument("--lr", type=float, default=2e-4, help="generator learning rate (Adam)")
    m.add_argument("--d-lr-ratio", type=float, default=0.5, help="discriminator lr = lr x this")
    m.add_argument("--adv-weight", type=float, default=0.005, help="weight of the adversarial loss (0 = L1 only)")
    m.add_argument("--base-channels", type=int, default=32, help="generator width after the 2x2 unshuffle")
    m.add_argument("--levels", type=int, default=2, help="stride-2 levels of the U-Net")
    m.add_argument("--blocks", type=int, default=2, help="residual blocks at the lowest resolution")
    m.add_argument("--no-context", action="store_true", help="drop the global curve/colour/FiLM context branch")
    m.add_argument("--curve-knots", type=int, default=0,
                   help="pieces of a global tone curve in the context branch (0 = none; 16 did not beat 0 in our "
                   "auto-enhancer runs)")
    m.add_argument("--guide", action="store_true",
                   help="classical guides: the network also sees two bilateral filters of the input, tuned to its "
                   "measured noise level, and a noise-level map, and mixes them into its output (needs the context "
                   "branch)")
    m.add_argument("--tone-knots", type=int, default=None,
                   help="a tone stage in front of the network (a curve of this many pieces per channel and a colour "
                   "matrix, from its own look at the whole image; 0 = none): blind exposure, contrast and colour "
                   "correction. With --init it may be added to a file without one (it starts as the identity)")
    m.add_argument("--block-guide", action="store_true",
                   help="with --guide: one more bilateral guide, its range the JPEG blocking measured on the image "
                   "(near 0 without JPEG, where the noise-level guides are copies of the input). With --init it may "
                   "be added to a guided file without one (it starts with most of the input's share of the mix)")
    m.add_argument("--tone-gate", action="store_true",
                   help="with a tone stage: it also learns a gate in [0, 1] that scales its whole correction, so a "
                   "photo it judges right passes through exactly. With --init it may be added to a trained stage "
                   "(it starts open)")
    m.add_argument("--tone-encoder", choices=("cnn", "vgg", "both"), default=None,
                   help="with a tone stage: what it reads the thumbnail with, its own small CNN (default), the "
                   "ImageNet-trained VGG-16 of stlpips-pytorch kept fixed (its weights go into the file), or both. "
                   "With --init it may be chosen for a stage added to a file without one, and 'both' widens a "
                   "trained CNN stage (it starts doing exactly what it did)")
    m.add_argument("--tone-gate-encoder", choices=("cnn", "vgg", "both"), default=None,
                   help="with --tone-gate: the gate gets a hidden layer of its own that reads with this, while the "
                   "curve keeps --tone-encoder's reading (default: the gate reads the curve's hidden layer). From a "
                   "trained CNN stage, 'both' starts from exactly what its gate did")
    m.add_argument("--tone-levels", action="store_true",
                   help="with a tone stage: it also measures classical level corrections on its thumbnail (each "
                   "channel's range stretched, the channels' common range stretched, grey-world gains) and learns "
                   "how much of each to apply before its curve. With --init it may be added to a trained stage: its "
                   "readers and gate keep what they learnt, while the curve and colour matrix start again from the "
                   "identity and the levels from none")
    m.add_argument("--tone-view", choices=("crop", "photo"), default="crop",
                   help="with --stage tone or gate: the stage reads the training crop, or the crop's whole photo "
                   "(degraded with the crop's faults; its correction is scored on the crop), as it reads whole "
                   "photos in use")
    m.add_argument("--gate-weight", type=float, default=0.0,
                   help="with --stage tone or gate and --tone-gate: weight of the gate's own target (1 where the "
                   "crop's colour fault alone costs the picture the stage reads more than 35 dB, else 0; L1). "
                   "0 = the gate learns only from the output's loss")
    m.add_argument("--stage", choices=("all", "tone", "gate"), default="all",
                   help="what trains: all of the network, only its tone stage (the rest frozen and not run), or only "
                   "the tone stage's gate (the curve stays as it is)")
    m.add_argument("--noise-estimator", choices=("mad", "blocks"), default=None,
                   help="with --guide: how the noise level is measured: 'mad' (median of a high-pass; fine texture "
                   "reads as noise) or 'blocks' (the quietest tenth of 8x8 squares); default mad, or the --init "
                   "file's")
    m.add_argument("--pixel-loss", choices=("l1", "psnr"), default="l1",
                   help="l1, or psnr: the mean over crops of log(MSE), so clean and lightly degraded crops weigh as "
                   "much as heavy ones (the scores are mean PSNRs)")
    m.add_argument("--psnr-ceiling", type=float, default=45.0, metavar="DB",
                   help="with --pixel-loss psnr: a crop restored past this PSNR earns little more (default 45). Lower "
                   "it (e.g. 40) so clean crops pull less against light JPEG and noise, which look like them")
    m.add_argument("--perceptual-weight", type=float, default=0.0,
                   help="weight of a VGG-16 feature loss (relu2_2 + relu3_3, relative L1; 0 = off, e.g. 0.05)")
    m.add_argument("--vgg", default=None, metavar="FILE",
                   help="VGG-16 weights for --perceptual-weight (torchvision vgg16-*.pth or the stlpips file) and "
                   "for --tone-encoder vgg (the stlpips file); default: the installed stlpips-pytorch package's")
    m.add_argument("--discriminator-width", type=int, default=32)
    m.add_argument("--init", default=None, metavar="FILE",
                   help="fine-tune: start the generator from this enhance model (its config replaces the width "
                   "options above)")
    add_run_options(parser, steps=4000)
    parser.set_defaults(func=run)

    join = subparsers.add_parser(
        "enhance-join", help="put the trained tone stage of one enhance model in front of another's restorer",
        description="Write the restorer of --restorer (an enhance model without a tone stage) behind the tone "
        "stage of --tone (one trained with --stage tone). That stage never runs the restorer in training, so it "
        "carries over unchanged to a retrained restorer. A fixed VGG-16 the stage reads with is stored in float16 "
        "(half the file; loading upcasts it).")
    join.add_argument("--restorer", required=True, metavar="FILE", help="the restorer (no tone stage)")
    join.add_argument("--tone", required=True, metavar="FILE", help="the enhance model whose tone stage is taken")
    join.add_argument("--out", required=True, metavar="FILE", help="the .safetensors file to write")
    join.set_defaults(func=run_join)
    return parser


def run_join(args: argparse.Namespace) -> int:
    from models import weights
    from models.train.enhance import join_tone_stage

    joined = join_tone_stage(weights.load(args.restorer), weights.load(args.tone))
    if joined.module.tone.vgg is not None:  # fixed ImageNet weights: float16 halves the file, loading upcasts
        joined.module.tone.vgg.half()
    path = weights.save(joined.module, args.out, joined.arch, joined.config, joined.task, joined.provenance)
    print(f"wrote {path}")
    return 0


def degradation_config(preset: str, overrides: list[str]):
    """The preset's DegradeConfig with FIELD=VALUE overrides applied (validated by DegradeConfig)."""
    from models.enhance import degrade

    base = {"restore": degrade.RESTORE, "enhance": degrade.ENHANCE}.get(preset)
    if base is None:  # both
        colour = {f: getattr(degrade.ENHANCE, f) for f in
                  ("colour_probability", "colour_cast", "exposure_gain", "gamma", "contrast", "saturation")}
        base = dataclasses.replace(degrade.RESTORE, **colour)
    hints = typing.get_type_hints(degrade.DegradeConfig)
    changes = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(degrade.DegradeConfig))
            raise ValueError(f"--degrade expects FIELD=VALUE with FIELD one of: {known}; got {item!r}")
        parts = [p.strip() for p in value.split(",") if p.strip()]
        kind = hints[name]
        if typing.get_origin(kind) is tuple:
            item_type = typing.get_args(kind)[0]
            changes[name] = tuple(p if item_type is str else item_type(float(p)) for p in parts)
        else:
            if len(parts) != 1:
                raise ValueError(f"--degrade {name} takes one number, got {value!r}")
            changes[name] = float(parts[0])
    return dataclasses.replace(base, **changes)


def run(args: argparse.Namespace) -> int:
    from .run_options import train

    return train(*prepare(args))


def prepare(args: argparse.Namespace):
    """The task and run options of this command's arguments (shared with the GAN Train node)."""
    from models.archs.enhance import EnhanceConfig
    from models.train.data import load_images, load_pairs
    from models.train.enhance import EnhanceSettings, EnhanceTask

    from .run_options import run_options

    if args.init:
        from models import weights

        net = weights.load(args.init).config
        if args.tone_knots is not None:
            net = dataclasses.replace(net, tone_knots=args.tone_knots)
        if args.block_guide:
            net = dataclasses.replace(net, block_guide=True)
        if args.tone_gate:
            net = dataclasses.replace(net, tone_gate=True)
        if args.tone_encoder is not None:
            net = dataclasses.replace(net, tone_encoder=args.tone_encoder)
        if args.tone_gate_encoder is not None:
            net = dataclasses.replace(net, tone_gate_encoder=args.tone_gate_encoder)
        if args.tone_levels:
            net = dataclasses.replace(net, tone_levels=True)
    else:
        net = EnhanceConfig(base_channels=args.base_channels, levels=args.levels, blocks=args.blocks,
                            context=not args.no_context, curve_knots=0 if args.no_context else args.curve_knots,
                            guide=args.guide, tone_knots=args.tone_knots or 0, block_guide=args.block_guide,
                            tone_gate=args.tone_gate, tone_encoder=args.tone_encoder or "cnn",
                            tone_gate_encoder=args.tone_gate_encoder or "", tone_levels=args.tone_levels)
    if args.noise_estimator is not None:
        net = dataclasses.replace(net, noise_estimator=args.noise_estimator)
    settings = EnhanceSettings(
        degradation=None if args.pairs else degradation_config(args.preset, args.degrade),
        net=net,
        batch_size=args.batch_size,
        crop=args.crop,
        zoom=not args.no_zoom,
        lr=args.lr,
        d_lr_ratio=args.d_lr_ratio,
        adv_weight=args.adv_weight,
        discriminator_width=args.discriminator_width,
        init=args.init,
        perceptual_weight=args.perceptual_weight,
        pixel_loss=args.pixel_loss,
        psnr_ceiling_db=args.psnr_ceiling,
        stage=args.stage,
        tone_view=args.tone_view,
        gate_weight=args.gate_weight,
    )
    vgg = tone_vgg = None
    if args.perceptual_weight > 0 or "vgg" in net.tone_reads:
        from models.archs.enhance import TONE_VGG_LAYER
        from models.pretrained import load_vgg16

        vgg = load_vgg16(args.vgg, last="relu3_3") if args.perceptual_weight > 0 else None
        tone_vgg = load_vgg16(args.vgg, last=TONE_VGG_LAYER) if "vgg" in net.tone_reads else None
    options = run_options(args)
    if args.pairs and args.holdout_sources:
        raise ValueError("--holdout-sources works on folders of photos, not on --pairs")
    if args.pairs:
        data = load_pairs(args.data, min_side=args.crop, max_side=args.max_side, holdout=args.holdout)
    else:
        data = load_images(args.data, min_side=32, max_side=args.max_side, holdout=args.holdout,
                           holdout_sources=args.holdout_sources)
    log.info("training on %d %s from %s (%d held out)", len(data), "pairs" if args.pairs else "images", args.data,
             len(data.held_out))
    return EnhanceTask(settings, data, vgg, tone_vgg), options
