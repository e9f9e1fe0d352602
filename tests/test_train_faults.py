"""A real `python -m nodes.train` process killed with SIGKILL and resumed gives the uninterrupted weights.

tests/test_train_engine.py resumes after an exception raised inside the trainer; here the process is
killed from outside at a random step (possibly while it writes a checkpoint), twice, and each time
restarted with --resume. The final weights must equal those of a run that was never killed, bit for bit.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from gradients import gradient_folder
from safetensors.torch import load_file

from models import weights

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
STEPS, CHECKPOINT_EVERY = 100, 10
COMMANDS = {  # tiny, deterministic CPU runs: tens of milliseconds per step
    "inpaint": ["--crop", "48", "--batch-size", "3", "--base-channels", "4", "--downsamplings", "2",
                "--bottleneck-blocks", "1", "--width", "4"],
    "enhance": ["--crop", "48", "--batch-size", "3", "--base-channels", "4", "--levels", "1", "--blocks", "1",
                "--discriminator-width", "4"],
}  # fmt: skip


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return gradient_folder(tmp_path_factory.mktemp("photos"), size=(64, 80), texture=0.1)


def _command(task: str, photos: Path, out: Path, resume: bool = False) -> list[str]:
    return [sys.executable, "-m", "nodes.train", task, "--data", str(photos), "--out", str(out),
            "--steps", str(STEPS), "--checkpoint-every", str(CHECKPOINT_EVERY), "--log-every", "1", "--seed", "7",
            "--device", "cpu", "--threads", "1", "--no-progress", *COMMANDS[task],
            *(["--resume"] if resume else [])]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _last_logged_step(metrics: Path) -> int:
    try:
        lines = metrics.read_text().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue  # a line being written
    return 0


def _checkpoint_step(out: Path) -> int:
    return int(torch.load(out.with_suffix(".ckpt.pt"), weights_only=True)["step"])


def _kill_at(command: list[str], out: Path, step: int) -> int:
    """Start ``command``, SIGKILL it once its metrics show ``step`` or later; the checkpoint's step."""
    metrics = out.with_suffix(".metrics.jsonl")
    process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while _last_logged_step(metrics) < step:
            if process.poll() is not None:
                pytest.fail(f"the run ended (code {process.returncode}) before step {step}: "
                            f"{process.stderr.read().decode()[-2000:]}")  # fmt: skip
            assert time.monotonic() < deadline, f"step {step} not reached in time"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not out.exists(), "the killed run must not have exported its weights"
    return _checkpoint_step(out)


@pytest.mark.parametrize("task", sorted(COMMANDS))
def test_sigkill_at_random_steps_then_resume_equals_an_uninterrupted_run(task, photos, tmp_path):
    straight = tmp_path / "straight" / "model.safetensors"
    done = subprocess.run(_command(task, photos, straight), cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    rng = random.Random(f"{task}-kill-steps")
    first, second = sorted(rng.sample(range(CHECKPOINT_EVERY + 1, STEPS - 2 * CHECKPOINT_EVERY), 2))
    killed = tmp_path / "killed" / "model.safetensors"
    saved = _kill_at(_command(task, photos, killed), killed, first)
    assert CHECKPOINT_EVERY <= saved < STEPS and saved % CHECKPOINT_EVERY == 0, saved
    early = torch.load(killed.with_suffix(".ckpt.pt"), weights_only=True)["nets"]
    second = max(second, saved + CHECKPOINT_EVERY + 1)  # killed again after the resumed run's next checkpoint
    saved_again = _kill_at(_command(task, photos, killed, resume=True), killed, second)
    assert saved < saved_again < STEPS, (saved, saved_again)
    done = subprocess.run(_command(task, photos, killed, resume=True), cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from {killed.with_suffix('.ckpt.pt')} at step {saved_again}" in done.stderr

    expected, resumed = load_file(straight), load_file(killed)
    assert expected.keys() == resumed.keys() and len(expected) > 10
    for name, tensor in expected.items():
        assert resumed[name].dtype == tensor.dtype and torch.equal(resumed[name], tensor), name
    # training went on after the first kill: the exported network moved away from its state at that checkpoint
    (early_state,) = [state for state in early.values() if state.keys() == expected.keys()]
    assert any(not torch.equal(early_state[name], tensor) for name, tensor in expected.items())
    rows = [json.loads(line) for line in killed.with_suffix(".metrics.jsonl").read_text().splitlines()]
    assert {row["step"] for row in rows} == set(range(1, STEPS + 1))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_cleanly_with_a_checkpoint_and_the_weights_so_far(stop, photos, tmp_path):
    out = tmp_path / "model.safetensors"
    command = [*_command("enhance", photos, out)]
    command[command.index("--steps") + 1] = "100000"  # far more than the test waits for
    process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while _last_logged_step(out.with_suffix(".metrics.jsonl")) < 3:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "step 3 not reached in time"
            time.sleep(0.01)
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert "stopping after this step" in stderr.decode() and f"wrote {out}" in stdout.decode()
    stopped = _checkpoint_step(out)
    assert 3 <= stopped < 100000 and weights.load(out).provenance["steps"] == stopped
