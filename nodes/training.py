"""`GAN Train`: train or fine-tune a model on a folder of photos inside the graph, on the CLI's engine."""

from __future__ import annotations

import dataclasses
import gc
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from comfy_api.v0_0_2 import io
from PIL import Image

from ..models import layout, weights
from ..models.train import curves, quick
from ..models.train.data import step_generator
from ..models.train.engine import RunOptions, StepReport, Trainer, write_atomically
from . import comfy, schema

TRAIN_CATEGORY = f"{schema.CATEGORY}/train"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
NONE = "none"


def _run_name(text: str) -> str:
    name = text.strip().removesuffix(".safetensors")
    if not NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"output_name must be 1-100 letters, digits, '_', '-' or '.' (a file name without a "
                         f"folder), got {text!r}")
    return name


def _in_input_folder(text: str, what: str, *, folder: bool) -> Path:
    """A folder (or file) inside ComfyUI's input folder ('' is the input folder itself); nothing outside it."""
    root = Path(comfy.input_folder()).resolve()
    path = (root / text.strip()).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"{what} must name a {'folder' if folder else 'file'} inside ComfyUI's input folder ({root}), "
                         f"got {text!r}")
    if not (path.is_dir() if folder else path.is_file()):
        kind = "folder" if folder else "file"
        raise ValueError(f"{what}: no {kind} {text!r} in ComfyUI's input folder ({root}); put it there")
    return path


def _pil(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _check_resumable(trainer: Trainer, name: str) -> bool:
    """True when a checkpoint of this very run exists; a clear error when one of another run does."""
    path = trainer.checkpoint_path
    if not path.is_file():
        return False
    identity = torch.load(path, map_location="cpu", weights_only=True).get("identity")
    if identity != trainer.identity:
        raise ValueError(f"a run named {name!r} with other settings (task, photos, steps, batch size, crop, learning "
                         f"rate, start model or seed) is in {path.parent}; choose another output_name to start a "
                         "new run, or delete that folder to start this one over")
    return True


def _publish(source: Path, name: str) -> Path:
    """Copy the run's weights into models/gan_edit/ atomically (Load GAN Model lists them at once)."""
    target = Path(comfy.user_model_folder()) / f"{name}.safetensors"
    write_atomically(target, lambda tmp: shutil.copyfile(source, tmp))
    return target


class GanTrain(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GanEditTrain",
            display_name="GAN Train",
            category=TRAIN_CATEGORY,
            description="Train a model on your own photos, or fine-tune a starting model, with the same engine as "
            "`python -m nodes.train`. The result is written to models/gan_edit/<output_name>.safetensors (listed "
            "by Load GAN Model at once) and comes out as a model. Cancel stops cleanly: the weights so far are "
            "saved, and running the same settings again continues exactly where it stopped.",
            inputs=[
                io.Combo.Input("task", options=list(quick.TASKS), default="enhance",
                               tooltip="enhance: a restorer (noise, blur, JPEG) from clean photos; inpaint: an any-"
                               "mask Context Encoder; edit: the instruction editor (remove, recolour, relight ...); "
                               "colorize / poster: pix2pix from grey copies / poster renderings of the photos; "
                               "style: fast neural style for one style image; adain: any-style transfer."),
                io.String.Input("images", default="",
                                tooltip="A folder of photos inside ComfyUI's input folder (searched recursively; "
                                "empty = the input folder itself). They are the clean targets; degradations, "
                                "holes and pairs are made from them on the fly."),
                io.String.Input("style", default="",
                                tooltip="style: a style image in ComfyUI's input folder (e.g. starry_night.jpg); "
                                "adain: a folder of style images there. Other tasks: leave empty."),
                io.Combo.Input("start_model", options=[NONE, *comfy.model_names()], default=NONE,
                               tooltip="Fine-tune this model instead of starting from random weights (enhance "
                               "models), e.g. the shipped restorer on your own camera's photos."),
                io.Int.Input("steps", default=200, min=1, max=1_000_000,
                             tooltip="Optimisation steps. A CPU does about one step per second at batch 4, crop "
                             "128; a first fine-tune needs a few hundred, a model from scratch many thousands."),
                io.Int.Input("batch_size", default=4, min=1, max=256, tooltip="Crops per step."),
                io.Int.Input("crop", default=128, min=32, max=1024, step=32,
                             tooltip="Side of the random training crops in pixels."),
                io.Float.Input("learning_rate", default=1e-4, min=1e-7, max=1e-2, step=1e-5,
                               tooltip="Adam's learning rate (1e-4 suits fine-tuning, 2e-4 training from scratch)."),
                io.Combo.Input("precision", options=["fp32", "bf16"], default="fp32",
                               tooltip="bf16 autocast is faster on GPUs and CPUs with bf16 units; fp32 elsewhere."),
                io.Int.Input("training_seed", default=0, min=0, max=2**63 - 1,
                             tooltip="Seed of the initial weights, crops and degradations: the same settings and "
                             "seed give the same model."),
                io.String.Input("output_name", default="my_restorer",
                                tooltip="File name of the trained model in models/gan_edit/ (no folder). The same "
                                "name with the same settings continues an interrupted run."),
                io.Int.Input("preview_every", default=25, min=1, max=100_000,
                             tooltip="Steps between the live previews on the node (input, output, target)."),
            ],
            outputs=[
                schema.GanModel.Output("model", tooltip="The trained model, ready for the task's node."),
                io.Image.Output("preview", tooltip="The final model on a batch of training crops: rows of "
                                "(input, output, target)."),
                io.Image.Output("loss_curve", tooltip="The losses over the steps, each scaled to its own range."),
                io.String.Output("model_name", tooltip="The file written in models/gan_edit/."),
            ],
        )

    @classmethod
    def execute(cls, **inputs) -> io.NodeOutput:
        # ComfyUI runs nodes under inference mode; training needs autograd (and tensors made outside that mode)
        with torch.inference_mode(False), torch.enable_grad():
            return cls.train(**inputs)

    @classmethod
    def train(cls, task, images, style, start_model, steps, batch_size, crop, learning_rate, precision,
              training_seed, output_name, preview_every) -> io.NodeOutput:
        # not named "seed": the editor would add a randomising control to it, and another seed is another run
        seed = training_seed
        name = _run_name(output_name)
        photos = _in_input_folder(images, "images", folder=True)
        style_path = None
        if style.strip():
            style_path = _in_input_folder(style, "style", folder=task == "adain")
        init = None if start_model == NONE else comfy.model_path(start_model)
        job = quick.make_task(task, photos, batch_size=batch_size, crop=crop, lr=learning_rate, init=init,
                              style=style_path)
        out = Path(comfy.training_runs_folder()) / name / f"{name}.safetensors"
        device = "cuda" if comfy.compute_device().type == "cuda" else "cpu"
        options = RunOptions(out=out, steps=steps, seed=seed, checkpoint_every=max(1, min(500, steps // 4)),
                             preview_every=preview_every, log_every=max(1, steps // 200), precision=precision,
                             device=device, progress=False)
        trainer = Trainer(job, options)
        if _check_resumable(trainer, name):
            options = dataclasses.replace(options, resume=True)
            trainer = Trainer(job, options)
        progress = comfy.preview_progress(steps)

        def on_step(report: StepReport) -> bool:  # True: stop; the engine checkpoints and exports, we raise below
            return progress(report.step, _pil(report.preview) if report.preview is not None else None)

        trained = trainer.run(on_step)
        final = trainer.write_preview(job.make_batch(step_generator(seed, 0)))
        published = _publish(trained, name)
        curve = curves.plot(curves.read_metrics(options.sibling(f".metrics.{options.metrics_format}")))
        preview = layout.bchw_to_image(layout.from_u8(np.asarray(_pil(final))))
        del trainer, job
        gc.collect()
        comfy.raise_if_interrupted()  # after saving: an interrupted run leaves its weights and checkpoint
        model = comfy.wrap_model(weights.load(published))
        return io.NodeOutput(model, preview.to(comfy.intermediate_device()),
                             layout.bchw_to_image(curve).to(comfy.intermediate_device()), published.name)


NODES = [GanTrain]
