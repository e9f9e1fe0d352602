"""The one place that talks to ComfyUI's internals: model folders, devices, progress.

Everything else in `nodes/` uses these few functions; `models/` never sees ComfyUI at all.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch

from ..models import weights
from ..models.weights import LoadedModel

MODEL_FOLDER = "gan_edit"
MODEL_EXTENSIONS = {".safetensors", ".pth", ".pt"}


def register_model_folder(pack_weights_dir: str) -> None:
    """`gan_edit` = ComfyUI's models/gan_edit/ (plus extra paths users add) and the pack's weights."""
    folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER))
    folder_paths.add_model_folder_path(MODEL_FOLDER, pack_weights_dir)
    paths, _ = folder_paths.folder_names_and_paths[MODEL_FOLDER]
    # Without an explicit extension set a new folder name lists every file in it.
    folder_paths.folder_names_and_paths[MODEL_FOLDER] = (paths, set(MODEL_EXTENSIONS))


def model_names() -> list[str]:
    return folder_paths.get_filename_list(MODEL_FOLDER)


def model_path(name: str) -> str:
    return folder_paths.get_full_path_or_raise(MODEL_FOLDER, name)


@dataclass
class PatchedModel:
    """What flows along a GAN_MODEL wire: the loaded model and ComfyUI's handle to move it."""

    loaded: LoadedModel
    patcher: comfy.model_patcher.ModelPatcher

    @property
    def task(self) -> str:
        return self.loaded.task


def wrap_model(loaded: LoadedModel) -> PatchedModel:
    patcher = comfy.model_patcher.ModelPatcher(
        loaded.module, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )
    return PatchedModel(loaded=loaded, patcher=patcher)


def named_model(name: str) -> PatchedModel:
    """The model file `name` of the gan_edit folder, loaded once per file version (for nodes that use a starter
    model when none is connected)."""
    path = model_path(name)
    return _loaded(path, os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _loaded(path: str, version: int) -> PatchedModel:
    return wrap_model(weights.load(path))


def load_to_device(model: PatchedModel) -> tuple[torch.nn.Module, torch.device]:
    """Let ComfyUI make room and move the model to the compute device; returns (module, device)."""
    mm.load_models_gpu([model.patcher])
    return model.patcher.model, model.patcher.load_device


def intermediate_device() -> torch.device:
    return mm.intermediate_device()


def compute_device() -> torch.device:
    return mm.get_torch_device()


def progress(total: int) -> Callable[..., None]:
    """A callback `(done, total=None) -> None` backed by ComfyUI's ProgressBar; it raises on interrupt."""
    bar = comfy.utils.ProgressBar(total)

    def update(done: int, of: int | None = None) -> None:
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, of if of is not None else total)

    return update


def input_folder() -> str:
    return folder_paths.get_input_directory()


def user_model_folder() -> str:
    """ComfyUI's models/gan_edit/, where trained models are written (created when missing)."""
    path = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    os.makedirs(path, exist_ok=True)
    return path


def training_runs_folder() -> str:
    """ComfyUI's models/gan_edit_runs/: the checkpoints, metrics and previews of runs (not listed as models)."""
    return os.path.join(folder_paths.models_dir, f"{MODEL_FOLDER}_runs")


def raise_if_interrupted() -> None:
    mm.throw_exception_if_processing_interrupted()


def preview_progress(total: int) -> Callable[..., bool]:
    """A callback `(done, preview=None) -> interrupted`: ComfyUI's progress bar, showing a PIL `preview` image on
    the node; it returns True (instead of raising, as ComfyUI's hook does) once the user asked to stop."""
    bar = comfy.utils.ProgressBar(total)

    def update(done: int, preview=None) -> bool:
        if mm.processing_interrupted():
            return True
        try:
            bar.update_absolute(done, total, ("JPEG", preview, 512) if preview is not None else None)
        except mm.InterruptProcessingException:  # the interrupt came in between
            return True
        return False

    return update
