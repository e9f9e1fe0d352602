"""The README's training commands work as printed: through the harness, and with a clear message without torch."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from models import weights

FIRST_RUN = "python3 -m nodes.harness train enhance --data workflows/inputs"


def _readme_command(repo_root: Path) -> list[str]:
    lines = [line for line in (repo_root / "README.md").read_text(encoding="utf-8").splitlines()
             if line.startswith(FIRST_RUN)]
    assert len(lines) == 1, f"the README should print one first training run starting {FIRST_RUN!r}"
    return shlex.split(lines[0].split("#")[0])


def test_the_readmes_first_training_run_works_as_printed(repo_root: Path) -> None:
    command = _readme_command(repo_root)
    out = repo_root / command[command.index("--out") + 1]
    start = weights.load(repo_root / command[command.index("--init") + 1])
    out.unlink(missing_ok=True)
    try:
        done = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert f"wrote {out.relative_to(repo_root)}" in done.stdout
        trained = weights.load(out)
        assert trained.arch == start.arch and trained.provenance["steps"] == 20
        changed = [k for k, v in start.module.state_dict().items()
                   if not torch.equal(v, trained.module.state_dict()[k])]
        assert changed, "20 steps of fine-tuning left every weight as it was"
    finally:
        for suffix in ("", ".ckpt.pt", ".metrics.jsonl", ".log"):
            out.with_name(out.stem + suffix if suffix else out.name).unlink(missing_ok=True)
        shutil.rmtree(out.with_suffix(".previews"), ignore_errors=True)


def test_a_python_without_torch_is_told_what_to_run(repo_root: Path) -> None:
    # -S: no site-packages, so neither torch nor Pillow can be imported: a bare system python
    done = subprocess.run([sys.executable, "-S", "-m", "nodes.train", "enhance", "--data", "photos", "--out", "x"],
                          cwd=repo_root, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "lacks torch" in done.stderr
    assert "python3 -m nodes.harness train enhance --data photos --out x" in done.stderr
