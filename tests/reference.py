"""The reference checkpoints of the public formats, kept in `tests/fixtures/checkpoints/`.

Each `<name>.pth` there was made with the public project's own model code and saved the way that
project saves it; `<name>.io.safetensors` holds a fixed input and the reference output, `<name>.json`
the provenance (source repository and commit, constructor arguments, keys, sha256 of every file).
The files are part of the repository: a missing one is an error, never a skip.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "checkpoints"
