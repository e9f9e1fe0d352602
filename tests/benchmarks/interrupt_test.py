"""Interrupt latency: how fast ``POST /interrupt`` stops a long GAN Edit node in a real ComfyUI.

Run from the repository root: ``python tests/benchmarks/interrupt_test.py [--repeats 3]``.

It starts its own ComfyServer and, for each scenario, queues a long prompt, waits until it has been
running for ``--after`` seconds (default 1), posts ``/interrupt`` and measures:

* **latency**: from the interrupt request to the moment ``GET /history/<id>`` shows the prompt finished
  (polled every 10 ms), and the server's own view: its ``execution_interrupted`` timestamp minus the
  time of the request (same machine clock);
* **ran for**: ``execution_start`` -> ``execution_interrupted`` from the history entry, against the
  uninterrupted duration, estimated as the batch size times the time per item of a 2-item run;
* that the history entry says interrupted (not success), in which node, and that the next prompt succeeds.

Scenarios (random weights: the speed does not depend on them):

* ``enhance tiles``: GAN Enhance, default width, 64 px tiles over a batch of 768^2 photos; a progress
  update (an interrupt point) after every tile.
* ``inpaint batch``: GAN Inpaint with the shipped starter weights over a batch of 512^2 photos with stroke
  masks; a progress update after every image.
* ``enhance big batch``: as the first with a batch of 100 (about 700 MB of pixels). The node converts and
  checks the whole batch (layout copy, finite and range checks) before its first tile, and no interrupt
  point lies in there, nor in the core nodes that build the batch.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from load_test import Graph, masks_workflow  # noqa: E402

from models import weights  # noqa: E402
from models.archs.enhance import ARCHITECTURE, EnhanceConfig, EnhanceNet  # noqa: E402
from nodes.harness.client import ComfyClient, ExecutionInterrupted, raise_for_status  # noqa: E402
from nodes.harness.server import ComfyServer  # noqa: E402

ENHANCE_MODEL = "interrupt_enhance.safetensors"
INPAINT_MODEL = "context_encoder_anymask.safetensors"


def photo_batch(g: Graph, side: int, amount: int) -> list:
    load = g.add("LoadImage", image="coffee.jpg")
    scaled = g.add("ImageScale", image=load, upscale_method="bilinear", width=side, height=side, crop="center")
    return g.add("RepeatImageBatch", image=scaled, amount=amount)


def enhance_graph(amount: int) -> Graph:
    g = Graph()
    out = g.add("GanEditEnhance", image=photo_batch(g, 768, amount), model=g.add("GanEditLoadModel",
                model_name=ENHANCE_MODEL), strength=1.0, tile_size=64, tile_overlap=16)  # fmt: skip
    g.save(out, "interrupt_enhance")
    return g


def inpaint_graph(amount: int) -> Graph:
    g = Graph()
    image = photo_batch(g, 512, amount)
    mask = g.add("GanEditStrokeMask", width=512, height=512, batch_size=1, image=image, seed=3, strokes_min=1,
                 strokes_max=3, vertices_min=4, vertices_max=11, brush_min=12, brush_max=40, coverage="10-20%")
    out = g.add("GanEditInpaint", image=image, mask=mask, model=g.add("GanEditLoadModel", model_name=INPAINT_MODEL),
                feather=0, context=0.5, working_size=1024, colour_match=False, mask_size_mismatch="error")
    g.save(out, "interrupt_inpaint")
    return g


def stamps(entry: dict) -> dict[str, int]:
    return {name: data["timestamp"] for name, data in entry["status"]["messages"] if "timestamp" in data}


def seconds_per_item(client: ComfyClient, build: Callable[[int], Graph]) -> float:
    client.wait(client.queue(build(1)))  # warm-up: photo, scaling and model come from the cache afterwards
    entry = client.wait(client.queue(build(2)))
    s = stamps(entry)
    return (s["execution_success"] - s["execution_start"]) / 1000 / 2


def interrupt_once(client: ComfyClient, graph: Graph, after: float) -> dict:
    prompt_id = client.queue(graph)
    while client.queue_position(prompt_id)[0] != "running":
        time.sleep(0.01)
    time.sleep(after)
    wall_posted = time.time()
    posted = time.monotonic()
    client.interrupt()
    while (entry := client.history(prompt_id)) is None:
        time.sleep(0.01)
    latency = time.monotonic() - posted
    s = stamps(entry)
    try:
        raise_for_status(entry)
        node = "none: it finished"
    except ExecutionInterrupted as caught:
        node = str(caught.payload.get("node_type"))
    end = s.get("execution_interrupted", s.get("execution_success", s.get("execution_error", 0)))
    return {
        "latency": latency,
        "server_latency": end / 1000 - wall_posted,
        "ran_for": (end - s["execution_start"]) / 1000,
        "node": node,
        "interrupted": "execution_interrupted" in s and entry["status"]["status_str"] != "success",
    }


def next_prompt_succeeds(client: ComfyClient, seed: int) -> bool:
    try:
        client.wait(client.queue(masks_workflow(seed)), timeout=120)
        return True
    except RuntimeError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="interrupts per scenario (default 3)")
    parser.add_argument("--after", type=float, default=1.0, help="seconds of running before the interrupt")
    parser.add_argument("--seconds", type=float, default=30.0, help="uninterrupted length to aim for (default 30)")
    args = parser.parse_args(argv)
    failures = 0
    with ComfyServer() as server:
        client = ComfyClient(server.url)
        client.upload_image(ROOT / "workflows" / "inputs" / "coffee.jpg")
        for name in ("astronaut.jpg", "chelsea.jpg"):
            client.upload_image(ROOT / "workflows" / "inputs" / name)
        folder = server.base_dir / "models" / "gan_edit"
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        weights.save(EnhanceNet(EnhanceConfig()), folder / ENHANCE_MODEL, ARCHITECTURE.id, EnhanceConfig(), "enhance")
        print(f"ComfyUI {server.url}; interrupt after {args.after:.1f} s of running, {args.repeats} times each\n")
        # (label, graph, batch size: None = about --seconds of work)
        scenarios = [("enhance tiles", enhance_graph, None), ("inpaint batch", inpaint_graph, None),
                     ("enhance big batch", enhance_graph, 100)]  # fmt: skip
        for factor, (label, build, fixed) in enumerate(scenarios, 1):
            per_item = seconds_per_item(client, build)
            amount = fixed or max(4, math.ceil(args.seconds / per_item))
            rows = []
            for repeat in range(args.repeats):
                rows.append(interrupt_once(client, build(amount + repeat), args.after))  # a new batch: no cache
                rows[-1]["next_ok"] = next_prompt_succeeds(client, 5000 + len(rows) + 100 * factor)
            latencies = [r["latency"] for r in rows]
            server_side = [r["server_latency"] for r in rows]
            ok = all(r["interrupted"] and r["next_ok"] for r in rows)
            failures += not ok
            print(f"{label}: batch {amount}, {per_item * 1000:.0f} ms per item, uninterrupted about "
                  f"{amount * per_item:.1f} s")  # fmt: skip
            print(f"  latency (request -> history entry): median {statistics.median(latencies) * 1000:.0f} ms, "
                  f"max {max(latencies) * 1000:.0f} ms; server timestamp: median "
                  f"{statistics.median(server_side) * 1000:.0f} ms")  # fmt: skip
            ran = ", ".join(f"{r['ran_for']:.2f} s" for r in rows)
            nodes = ", ".join(sorted({r["node"] for r in rows}))
            print(f"  ran for: {ran}; stopped in {nodes}; interrupted status: {all(r['interrupted'] for r in rows)}; "
                  f"next prompt succeeded: {all(r['next_ok'] for r in rows)}")  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
