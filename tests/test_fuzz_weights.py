"""Over 1,000 hostile weights files through the loader: each a clear error, none a crash, no code run, memory bounded.

The files come from `tests/hostile.py`. They are loaded in a fresh process so that its peak memory
(ru_maxrss) measures the refusals alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
from hostile import make_hostile

from nodes.harness.env import repo_root

pytestmark = pytest.mark.unit

MEMORY_BOUND_MB = 64  # peak growth over a process that has imported the loader and loaded the good files

LOADER = r"""
import json, resource, sys
from models import weights
paths = json.loads(sys.stdin.read())
for good in paths["good"]:
    weights.load(good)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
results = []
for path in paths["hostile"]:
    try:
        weights.load(path)
        results.append(["loaded", ""])
    except (ValueError, FileNotFoundError) as exc:
        results.append(["error", str(exc)])
    except BaseException as exc:  # anything else is a crash of the loader
        results.append(["crash", f"{type(exc).__name__}: {exc}"])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"results": results, "growth_kb": peak - base}))
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    marker = tmp_path_factory.mktemp("marker") / "code_ran"
    files = make_hostile(folder, marker)
    good = [str(folder / "good" / "good.safetensors"), str(folder / "good" / "good.pth")]
    request = json.dumps({"good": good, "hostile": [str(path) for path, _, _ in files]})
    done = subprocess.run([sys.executable, "-c", LOADER], input=request, capture_output=True, text=True,
                          cwd=repo_root(), timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return files, report, marker


def test_there_are_over_a_thousand_of_every_kind(outcome):
    files, _, _ = outcome
    kinds = Counter(kind.split("_")[0] for _, kind, _ in files)
    assert len(files) >= 1000
    assert {"truncated", "bitflip", "header", "metadata", "pickle", "zip", "empty", "junk"} <= set(kinds)


def test_every_hostile_file_is_a_clear_error_and_none_crashes(outcome):
    files, report, _ = outcome
    crashes = [(path.name, message) for (path, _, _), (status, message) in zip(files, report["results"], strict=True)
               if status == "crash"]
    assert crashes == []
    wrongly_loaded = [path.name for (path, _, benign), (status, _) in zip(files, report["results"], strict=True)
                      if status == "loaded" and not benign]
    assert wrongly_loaded == []
    for (path, _, _), (status, message) in zip(files, report["results"], strict=True):
        if status == "error":
            assert path.name in message, f"the message must name the file: {message}"
    errors = sum(status == "error" for status, _ in report["results"])
    assert errors >= 0.9 * len(files)


def test_no_payload_ran_and_memory_stayed_bounded(outcome):
    _, report, marker = outcome
    assert not marker.exists(), "a pickle payload ran"
    assert report["growth_kb"] / 1024 <= MEMORY_BOUND_MB
