"""Shared fixtures: the repository root, and a real ComfyUI server for tests marked ``integration``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodes.harness.client import ComfyClient
from nodes.harness.env import ensure_env
from nodes.harness.env import repo_root as harness_repo_root
from nodes.harness.server import ComfyServer

# The repo root is the ComfyUI pack: its __init__.py imports ComfyUI, so pytest must not import it.
pytest_plugins = ["nodes.harness.pytest_plugin"]


@dataclass(frozen=True)
class Comfy:
    """A running ComfyUI with this pack loaded, and a client talking to it."""

    server: ComfyServer
    client: ComfyClient


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The pack's root folder (pyproject.toml, __init__.py, workflows/)."""
    return harness_repo_root()


@pytest.fixture(scope="session")
def comfy() -> Iterator[Comfy]:
    """One real ComfyUI server for the whole session; start-up failures error the tests, never skip."""
    with ComfyServer(ensure_env()) as server:
        yield Comfy(server=server, client=ComfyClient(server.url))
