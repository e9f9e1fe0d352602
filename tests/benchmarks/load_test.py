"""Load test: many small prompts through one real ComfyUI server with this pack.

Run from the repository root: ``python tests/benchmarks/load_test.py [--prompts 200]``.

It starts its own ComfyServer, uploads the sample photos, and queues N prompts at once, cycling through a
mix of small-image workflows: mask generators (strokes, irregular, blocks, refine), Degrade Image, and one
workflow per shipped weights file in models/weights/ (GAN Inpaint with the starter inpainting model, GAN
Enhance after a seeded degradation when enhance weights are shipped, GAN Image to Image / GAN Stylize /
GAN Style Transfer / GAN Edit when such weights are shipped). Every prompt gets its own seed (mask, degradation), so
ComfyUI's cache cannot skip the work; the photos and the loaded models may come from its cache, as they
would in real use. It then checks that every prompt succeeded and produced every output it should (each
SaveImage node listed in its history entry, each listed file on disk) and prints:

* **prompts/s**: N / wall time from the first ``POST /prompt`` to the last prompt's completion.
* **execution time** of a prompt: ``execution_success`` minus ``execution_start``, the server's own
  timestamps (ms) in the prompt's history entry (``status.messages``).
* **overhead per prompt**: the server runs prompts one after another, so the wall time between two
  consecutive completions is the later prompt's execution time plus the time the server spends between
  prompts (finishing the previous one: history entry, cache clean-up; then taking the next one from the
  queue and setting up its execution). Overhead of prompt i = (success_i - success_{i-1}) - (success_i -
  start_i) = start_i - success_{i-1}, in execution order, averaged over prompts 2..N. Printed with the
  client-side view for comparison: (wall time - sum of execution times) / N, which also holds the first
  prompt's start-up and the polling delay at the end.
* **server RSS** (VmRSS of the ComfyUI process) once the first 20 prompts have completed and after all of
  them, and their ratio; the target is a final RSS within 10 % of the 20-prompt value.

The exit code is 1 when a prompt failed or lost an output, else 0 (the RSS target is reported, not enforced).
``--only KIND`` runs one workflow of the mix, to find which one moves the RSS. The server inherits this
process's environment: on CPU, RSS that grows with GAN Inpaint prompts and levels off after a few hundred is
oneDNN's primitive cache (one compiled convolution per input shape, and every hole gives its crop its own
shape; 1024 entries by default); ``ONEDNN_PRIMITIVE_CACHE_CAPACITY=0 python tests/benchmarks/load_test.py``
shows the RSS without it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models import weights  # noqa: E402
from nodes.harness.client import ComfyClient  # noqa: E402
from nodes.harness.server import ComfyServer  # noqa: E402

PHOTOS = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")
SIDE = (256, 192)  # width, height of every workflow's image
RSS_AFTER = 20
Prompt = dict[str, Any]


# -- the workflow mix ----------------------------------------------------------------------------------------
class Graph(dict):
    def add(self, class_type: str, **inputs: Any) -> list:
        node_id = str(len(self) + 1)
        self[node_id] = {"class_type": class_type, "inputs": inputs}
        return [node_id, 0]

    def save(self, link: list, prefix: str) -> None:
        self.add("SaveImage", images=link, filename_prefix=f"load/{prefix}")


def small_photo(g: Graph, seed: int) -> list:
    load = g.add("LoadImage", image=PHOTOS[seed % len(PHOTOS)])
    return g.add("ImageScale", image=load, upscale_method="bilinear", width=SIDE[0], height=SIDE[1], crop="center")


def blocks(g: Graph, image: list, seed: int) -> list:
    return g.add("GanEditRandomBlocksMask", width=SIDE[0], height=SIDE[1], batch_size=1, image=image, seed=seed,
                 count_min=1, count_max=3, size_min=0.1, size_max=0.3, max_coverage=0.4, coverage="any")  # fmt: skip


def masks_workflow(seed: int) -> Graph:
    g = Graph()
    image = small_photo(g, seed)
    strokes = g.add("GanEditStrokeMask", width=SIDE[0], height=SIDE[1], batch_size=2, image=image, seed=seed,
                    strokes_min=1, strokes_max=3, vertices_min=4, vertices_max=11, brush_min=12, brush_max=40,
                    coverage="any")  # fmt: skip
    irregular = g.add("GanEditIrregularMask", width=SIDE[0], height=SIDE[1], batch_size=1, seed=seed, preset="thick",
                      coverage="any", custom_strokes_min=4, custom_strokes_max=10, custom_max_width=40.0,
                      custom_max_length=80.0)  # fmt: skip
    refined = g.add("GanEditMaskRefine", mask=irregular, threshold=0.5, grow=4, feather=3, invert=False)
    g.save(g.add("MaskToImage", mask=strokes), "strokes")
    g.save([strokes[0], 1], "strokes_preview")
    g.save(g.add("MaskToImage", mask=refined), "refined")
    return g


def degrade_workflow(seed: int) -> Graph:
    g = Graph()
    image = small_photo(g, seed)
    g.save(g.add("GanEditDegradeImage", image=image, preset="restore", blur_sigma_max=2.0, noise_sigma_max=15.0,
                 jpeg_quality_min=50, resize_scale_min=1.0, colour_strength=0.0, seed=seed), "degraded")  # fmt: skip
    return g


def inpaint_workflow(model: str) -> Callable[[int], Graph]:
    def build(seed: int) -> Graph:
        g = Graph()
        image = small_photo(g, seed)
        filled = g.add("GanEditInpaint", image=image, mask=blocks(g, image, seed),
                       model=g.add("GanEditLoadModel", model_name=model), feather=4, context=0.5, working_size=1024,
                       colour_match=False, mask_size_mismatch="error")  # fmt: skip
        g.save(filled, "inpainted")
        return g

    return build


def enhance_workflow(model: str) -> Callable[[int], Graph]:
    def build(seed: int) -> Graph:
        g = Graph()
        image = small_photo(g, seed)
        noisy = g.add("GanEditDegradeImage", image=image, preset="restore", blur_sigma_max=2.0, noise_sigma_max=15.0,
                      jpeg_quality_min=50, resize_scale_min=1.0, colour_strength=0.0, seed=seed)  # fmt: skip
        g.save(g.add("GanEditEnhance", image=noisy, model=g.add("GanEditLoadModel", model_name=model), strength=1.0,
                     tile_size=512, tile_overlap=32), "enhanced")  # fmt: skip
        return g

    return build


def translate_workflow(model: str) -> Callable[[int], Graph]:
    def build(seed: int) -> Graph:
        g = Graph()
        image = g.add("GanEditDegradeImage", image=small_photo(g, seed), preset="enhance", blur_sigma_max=2.0,
                      noise_sigma_max=15.0, jpeg_quality_min=50, resize_scale_min=1.0, colour_strength=0.0,
                      seed=seed)  # fmt: skip  (a seeded input, so the node runs every time)
        g.save(g.add("GanEditImageToImage", image=image, model=g.add("GanEditLoadModel", model_name=model),
                     normalization="eval", size_handling="pad"), "translated")  # fmt: skip
        return g

    return build


def stylize_workflow(model: str) -> Callable[[int], Graph]:
    def build(seed: int) -> Graph:
        g = Graph()
        image = small_photo(g, seed)
        strength = 0.5 + (seed % 50) / 100  # a different strength per prompt: the node runs every time
        g.save(g.add("GanEditStylize", image=image, model=g.add("GanEditLoadModel", model_name=model),
                     strength=strength, tile=0, overlap=32), "stylized")  # fmt: skip
        return g

    return build


def style_transfer_workflow(model: str) -> Callable[[int], Graph]:
    def build(seed: int) -> Graph:
        g = Graph()
        content, style = small_photo(g, seed), small_photo(g, seed + 1)
        alpha = 0.5 + (seed % 50) / 100
        g.save(g.add("GanEditStyleTransfer", content=content, style=style, model=g.add("GanEditLoadModel",
                     model_name=model), alpha=alpha, preserve_colour=False, style_weight=1.0), "styled")  # fmt: skip
        return g

    return build


def edit_workflow(model: str, instructions: list[str]) -> Callable[[int], Graph]:
    usable = [i for i in instructions if i != "harmonise_paste"] or ["recolour"]  # no reference image here

    def build(seed: int) -> Graph:
        g = Graph()
        image = small_photo(g, seed)
        g.save(g.add("GanEditEdit", image=image, mask=blocks(g, image, seed), model=g.add("GanEditLoadModel",
                     model_name=model), instruction=usable[seed % len(usable)], colour="#1e90ff", strength=1.0,
                     amount=0.5, context=0.5, working_size=512, mask_size_mismatch="error"), "edited")  # fmt: skip
        return g

    return build


def shipped_workflows(weights_dir: Path) -> dict[str, Callable[[int], Graph]]:
    """One workflow per shipped weights file whose task has a node here; the file's metadata decides."""
    found: dict[str, Callable[[int], Graph]] = {}
    for path in sorted(weights_dir.glob("*.safetensors")):
        meta = weights.read_metadata(path)
        task, arch = meta["task"], meta["arch"]
        if task == "inpaint":
            found[path.stem] = inpaint_workflow(path.name)
        elif task == "enhance":
            found[path.stem] = enhance_workflow(path.name)
        elif task == "translate":
            found[path.stem] = translate_workflow(path.name)
        elif task == "stylize" and arch == "adain":
            found[path.stem] = style_transfer_workflow(path.name)
        elif task == "stylize":
            found[path.stem] = stylize_workflow(path.name)
        elif task == "edit":
            found[path.stem] = edit_workflow(path.name, json.loads(meta["config"]).get("instructions", []))
        else:
            print(f"  (no load-test workflow for {path.name}: task {task!r}, arch {arch!r})")
    return found


# -- running and measuring -----------------------------------------------------------------------------------
@dataclass
class Result:
    kind: str
    prompt_id: str
    savers: set[str]
    entry: dict[str, Any] | None = None

    def stamps(self) -> dict[str, int]:
        assert self.entry is not None
        return {name: data["timestamp"] for name, data in self.entry["status"]["messages"] if "timestamp" in data}


def problems(result: Result, output_dir: Path) -> list[str]:
    """What is wrong with a finished prompt: its status, missing SaveImage outputs, files not on disk."""
    entry = result.entry
    if entry is None:
        return ["no history entry"]
    status = entry.get("status", {})
    if status.get("status_str") != "success" or not status.get("completed"):
        messages = [m for m in status.get("messages", []) if m[0] in ("execution_error", "execution_interrupted")]
        return [f"status {status.get('status_str')!r}: {messages}"]
    wrong = []
    outputs = entry.get("outputs", {})
    for node_id in sorted(result.savers):
        images = outputs.get(node_id, {}).get("images", [])
        if not images:
            wrong.append(f"SaveImage {node_id} produced nothing")
        for image in images:
            path = output_dir / image.get("subfolder", "") / image["filename"]
            if not path.is_file() or path.stat().st_size == 0:
                wrong.append(f"SaveImage {node_id}: {path} is missing or empty")
    return wrong


def queue_remaining(client: ComfyClient) -> int:
    return int(client.get_json("/prompt")["exec_info"]["queue_remaining"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=200, help="how many prompts to queue (default 200)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for all of them")
    parser.add_argument("--only", action="append", default=[], metavar="KIND",
                        help="run only this workflow of the mix (repeatable; default: all)")
    args = parser.parse_args(argv)
    if args.prompts < RSS_AFTER + 1:
        parser.error(f"--prompts must be more than {RSS_AFTER}")

    kinds: dict[str, Callable[[int], Graph]] = {"masks": masks_workflow, "degrade": degrade_workflow}
    kinds.update(shipped_workflows(ROOT / "models" / "weights"))
    if args.only:
        unknown = set(args.only) - set(kinds)
        if unknown:
            parser.error(f"unknown workflow(s) {sorted(unknown)}; the mix has {list(kinds)}")
        kinds = {name: build for name, build in kinds.items() if name in args.only}
    print(f"workflow mix: {', '.join(kinds)}")
    with ComfyServer() as server:
        client = ComfyClient(server.url)
        for name in PHOTOS:
            client.upload_image(ROOT / "workflows" / "inputs" / name)
        print(f"ComfyUI {server.url} up after {server.startup_seconds:.1f} s; RSS {server.rss_bytes() / 2**20:.0f} MiB")

        results: list[Result] = []
        cycle = itertools.cycle(kinds.items())
        started = time.monotonic()
        for seed in range(args.prompts):
            kind, build = next(cycle)
            graph = build(1000 + seed)
            savers = {node_id for node_id, node in graph.items() if node["class_type"] == "SaveImage"}
            results.append(Result(kind, client.queue(graph), savers))
        queued = time.monotonic() - started
        rss_early = None
        done_early = 0
        trace: list[tuple[int, float]] = []  # (prompts done, RSS MiB) about every tenth of the run
        while True:
            remaining = queue_remaining(client)
            done = args.prompts - remaining
            if rss_early is None and done >= RSS_AFTER:
                rss_early, done_early = server.rss_bytes(), done
            if not trace or done - trace[-1][0] >= max(1, args.prompts // 10):
                trace.append((done, server.rss_bytes() / 2**20))
            if remaining == 0:
                break
            if time.monotonic() - started > args.timeout:
                print(f"timed out with {remaining} prompts left")
                return 1
            time.sleep(0.05)
        wall = time.monotonic() - started
        rss_final = server.rss_bytes()
        for result in results:
            result.entry = client.history(result.prompt_id)

        failures = {r.prompt_id: p for r in results if (p := problems(r, server.output_dir))}
        print(f"\n{args.prompts} prompts queued in {queued:.2f} s, all finished after {wall:.1f} s")
        if failures:
            for prompt_id, what in list(failures.items())[:10]:
                print(f"  FAILED {prompt_id}: {'; '.join(what)}")
            print(f"{len(failures)} of {args.prompts} prompts failed or lost outputs")
            return 1
        files = sum(len(r.entry["outputs"][n]["images"]) for r in results for n in r.savers)  # type: ignore[index]
        print(f"every prompt succeeded; {files} output files, all on disk")

        ordered = sorted(results, key=lambda r: r.stamps()["execution_start"])
        execution = [(r.stamps()["execution_success"] - r.stamps()["execution_start"]) / 1000 for r in ordered]
        gaps = [(b.stamps()["execution_start"] - a.stamps()["execution_success"]) / 1000
                for a, b in itertools.pairwise(ordered)]  # fmt: skip
        print(f"\nthroughput:               {args.prompts / wall:.2f} prompts/s")
        print(f"mean execution time:      {1000 * statistics.mean(execution):.1f} ms "
              f"(median {1000 * statistics.median(execution):.1f} ms)")  # fmt: skip
        slowest = max(range(len(gaps)), key=gaps.__getitem__)
        print(f"mean overhead per prompt: {1000 * statistics.mean(gaps):.1f} ms between prompts (server clock; "
              f"median {1000 * statistics.median(gaps):.1f} ms, max {1000 * gaps[slowest]:.1f} ms "
              f"before prompt {slowest + 2} of {len(ordered)})")  # fmt: skip
        print(f"                          {1000 * (wall - sum(execution)) / args.prompts:.1f} ms "
              "(client view: (wall - sum of execution) / N)")
        print("per workflow:")
        for kind in kinds:
            times = [t for r, t in zip(ordered, execution, strict=True) if r.kind == kind]
            print(f"  {kind:32s} {len(times):4d} prompts, mean {1000 * statistics.mean(times):7.1f} ms")
        assert rss_early is not None
        ratio = rss_final / rss_early
        verdict = "within" if abs(ratio - 1) <= 0.10 else "NOT within"
        print(f"\nserver RSS after {done_early} prompts: {rss_early / 2**20:.0f} MiB")
        print(f"server RSS after {args.prompts} prompts: {rss_final / 2**20:.0f} MiB")
        print(f"ratio final / early: {ratio:.3f} ({verdict} the 10 % target)")
        print("RSS along the run: " + ", ".join(f"{done}: {mib:.0f}" for done, mib in trace) + " (prompts: MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
