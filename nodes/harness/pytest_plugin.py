"""pytest plugin (loaded by tests/conftest.py): collect the pack root as a plain folder, not a package.

The repository root is the ComfyUI pack, so it holds an ``__init__.py`` that imports ComfyUI. pytest
would collect the root as a package and import that ``__init__.py`` before every test, which fails
outside ComfyUI. Collected as a plain folder, the root's ``__init__.py`` is left to ComfyUI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .env import repo_root

try:
    import pytest

    hookimpl = pytest.hookimpl
except ImportError:  # imported without pytest (e.g. by a bare python3): the hook is never called
    pytest = None  # type: ignore[assignment]

    def hookimpl(**_kwargs: Any) -> Any:
        return lambda function: function


@hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: Any) -> Any:
    """A ``pytest.Dir`` for the pack root; None (pytest's default) for every other folder."""
    if Path(path) == repo_root():
        return pytest.Dir.from_parent(parent, path=Path(path))
    return None
