"""What the benchmark scripts share: wall-clock medians, and the steps/s of a short training run."""

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.train.engine import RunOptions, Task, Trainer  # noqa: E402


def median_ms(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of `runs` calls of `fn`, in ms, after one untimed warm-up (allocator, oneDNN caches)."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def steps_per_s(task: Task, steps: int, precision: str = "fp32") -> float:
    """Median steps/s of `steps` engine steps of `task` (the first, which warms up, excluded)."""
    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(out=Path(tmp) / "b.safetensors", steps=steps, checkpoint_every=10_000,
                             preview_every=10_000, log_every=1, progress=False, precision=precision)
        Trainer(task, options).run()
        rows = [json.loads(line) for line in options.sibling(".metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["steps_per_s"] for r in rows[1:])
