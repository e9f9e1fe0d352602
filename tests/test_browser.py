"""Every UI workflow in workflows/*.json, loaded into the real ComfyUI frontend in headless Chromium.

The frontend is the one the ``comfy`` server serves; Chromium is driven over the DevTools protocol by
``nodes.harness.cdp``. A workflow is loaded like a user's file (``app.loadGraphData``), then the test
asks the page what it drew. This frontend (1.32) marks a node whose type it does not know in two
ways: the graph holds a plain ``LGraphNode`` with ``has_errors = true`` (drawn red), and a dialog
"This workflow has missing nodes" lists the types. Both are checked, and the negative test proves
the check fails for a renamed node type. Screenshots go to pytest's tmp dir and output/screenshots/.
"""

from __future__ import annotations

import copy
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from nodes.harness.cdp import Chromium, Page
from nodes.harness.env import repo_root as harness_repo_root

pytestmark = pytest.mark.integration

WORKFLOWS = sorted((harness_repo_root() / "workflows").glob("*.json"))
VIEWPORT = (1920, 1080)  # CSS pixels
PIXEL_SCALE = 2  # screenshots at 3840 x 2160: node text stays legible at the zoom that fits a graph
SCREENSHOT_SIZE = (VIEWPORT[0] * PIXEL_SCALE, VIEWPORT[1] * PIXEL_SCALE)
MISSING_TYPE = "GanEditDoesNotExist"
OUR_PREFIX = "GanEdit"
# Frontend settings for a clean, readable editor: no templates dialog on first start, no workflow
# restored from an earlier tab, no minimap, full-detail nodes at any zoom, no fps overlay. The
# missing-nodes warning stays on (the default).
SETTINGS: dict[str, Any] = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Workflow.Persist": False,
    "Comfy.Minimap.Visible": False,
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,
    "Comfy.Graph.CanvasInfo": False,
    "Comfy.Workflow.ShowMissingNodesWarning": True,
}
# Local-storage flags the frontend reads at start-up: the "Nodes 2.0" banner stays dismissed.
LOCAL_STORAGE = {"vueNodesBannerDismissed": "true"}

APP_READY = (
    "window.app !== undefined && window.app.graph !== undefined && window.app.canvas !== undefined"
    " && window.LiteGraph !== undefined && 'GanEditBoxMask' in LiteGraph.registered_node_types"
)
NEXT_FRAMES = "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"
# What the page shows after loading: every node as the frontend holds it, the open dialogs, and how
# many nodes the canvas drew in its last frame.
GRAPH_REPORT = """(() => {
  const registered = LiteGraph.registered_node_types;
  const nodes = app.graph.nodes.map(node => ({
    id: String(node.id),
    type: node.type,
    registered: node.type in registered,
    own_class: node.constructor === registered[node.type],
    has_errors: Boolean(node.has_errors),
    widgets: (node.widgets || []).filter(w => w.serialize !== false).map(w => w.value),
    serialized: node.serialize().widgets_values ?? null,
  }));
  const dialogs = [...document.querySelectorAll('.p-dialog')].map(d => d.innerText);
  return {nodes, dialogs, drawn: (app.canvas.visible_nodes || []).length};
})()"""


def load_ui_workflow(path: Path) -> dict[str, Any]:
    """A UI-format workflow (``nodes`` and ``links`` lists) read from ``path``."""
    workflow = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list), f"{path} is not UI format"
    return workflow


def problems(workflow: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """Everything about the loaded graph that says a node of ``workflow`` is missing or wrong."""
    found: list[str] = []
    loaded = {node["id"]: node for node in report["nodes"]}
    for node in workflow["nodes"]:
        label = f"node {node['id']} ({node['type']})"
        shown = loaded.get(str(node["id"]))
        if shown is None:
            found.append(f"{label}: not in the loaded graph")
            continue
        if shown["type"] != node["type"]:
            found.append(f"{label}: loaded as type {shown['type']!r}")
        if not shown["registered"]:
            found.append(f"{label}: type not in LiteGraph.registered_node_types (missing node)")
        if shown["has_errors"] or not shown["own_class"]:
            found.append(f"{label}: flagged by the frontend (has_errors={shown['has_errors']}, not its node class)")
    if len(report["nodes"]) != len(workflow["nodes"]):
        found.append(f"the graph has {len(report['nodes'])} nodes, the workflow {len(workflow['nodes'])}")
    for text in report["dialogs"]:
        if "missing nodes" in text.lower():
            found.append("missing-nodes dialog: " + " | ".join(line for line in text.splitlines() if line.strip()))
    return found


def check_png(data: bytes, size: tuple[int, int]) -> None:
    """``data`` is a PNG of ``size`` with a drawn picture in it (not one flat colour)."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.size == size
    rgb = image.convert("RGB")
    assert any(low != high for low, high in rgb.getextrema()), "screenshot is one flat colour"
    colours = rgb.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 100, f"screenshot has only {len(colours)} colours: nothing drawn"


@pytest.fixture(scope="module")
def browser(comfy: Any, repo_root: Path) -> Iterator[Chromium]:
    """Headless Chromium next to the session's ComfyUI, whose frontend settings are prepared first."""
    for name, value in SETTINGS.items():
        comfy.client.post_json(f"/api/settings/{name}", value)
    for image in sorted((repo_root / "workflows" / "inputs").glob("*.jpg")):
        comfy.client.upload_image(image)  # LoadImage nodes then show their pictures
    with Chromium() as chromium:
        print(f"\nChromium DevTools ready in {chromium.startup_seconds:.2f} s")
        yield chromium


@pytest.fixture(scope="module")
def screenshot_dirs(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> tuple[Path, Path]:
    """(pytest's tmp folder, output/screenshots under the repository root) for the PNGs."""
    kept = repo_root / "output" / "screenshots"
    kept.mkdir(parents=True, exist_ok=True)
    return tmp_path_factory.mktemp("screenshots"), kept


@contextmanager
def open_editor(browser: Chromium, url: str) -> Iterator[Page]:
    """A new tab with the ComfyUI editor loaded and its node types registered; closed afterwards."""
    page = browser.new_page(*VIEWPORT, scale=PIXEL_SCALE)
    try:
        setup = "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});" for k, v in LOCAL_STORAGE.items())
        page.cdp.call("Page.addScriptToEvaluateOnNewDocument", {"source": setup})
        page.navigate(url + "/")
        page.wait_for(APP_READY, timeout=60)
        yield page
    finally:
        page.close()


def load_into_editor(page: Page, workflow: dict[str, Any]) -> dict[str, Any]:
    """Load ``workflow`` as a user's file, wait until the canvas has drawn it, return GRAPH_REPORT."""
    page.cdp.events.clear()
    page.evaluate(f"app.loadGraphData({json.dumps(workflow)}).then(() => true)")
    count = len(workflow["nodes"])
    page.wait_for(f"app.graph.nodes.length === {count}", timeout=30)
    page.evaluate(NEXT_FRAMES)  # the frontend fits the view in the next frame, then draws
    page.evaluate("app.canvas.draw(true, true); true")
    page.wait_for(f"(app.canvas.visible_nodes || []).length === {count}", timeout=30)
    page.evaluate(NEXT_FRAMES)  # the dialog (if any) is rendered by now too
    return page.evaluate(GRAPH_REPORT)


def page_exceptions(page: Page) -> list[str]:
    """Uncaught JavaScript exceptions the page reported since the last ``events.clear()``."""
    return [
        event["params"]["exceptionDetails"].get("exception", {}).get("description", "?")
        for event in page.cdp.events
        if event["method"] == "Runtime.exceptionThrown"
    ]


def test_there_are_ui_workflows() -> None:
    assert WORKFLOWS, "workflows/*.json holds no UI-format workflow"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[path.stem for path in WORKFLOWS])
def test_workflow_loads_in_the_frontend(
    path: Path, comfy: Any, browser: Chromium, screenshot_dirs: tuple[Path, Path]
) -> None:
    workflow = load_ui_workflow(path)
    started = time.monotonic()
    with open_editor(browser, comfy.server.url) as page:
        opened = time.monotonic()
        report = load_into_editor(page, workflow)
        loaded = time.monotonic()
        exceptions = page_exceptions(page)
        png = page.screenshot()
    print(f"\n{path.name}: editor open {opened - started:.2f} s, workflow drawn {loaded - opened:.2f} s")

    assert problems(workflow, report) == []
    assert report["drawn"] == len(workflow["nodes"])
    assert exceptions == []
    shown = {node["id"]: node for node in report["nodes"]}
    ours = [node for node in workflow["nodes"] if node["type"].startswith(OUR_PREFIX)]
    for node in ours:
        expected = node.get("widgets_values", [])
        loaded_node = shown[str(node["id"])]
        assert loaded_node["widgets"] == expected, f"node {node['id']} ({node['type']}): widget values"
        assert loaded_node["serialized"] == expected, f"node {node['id']} ({node['type']}): saved widget values"
    for folder in screenshot_dirs:
        (folder / f"{path.stem}.png").write_bytes(png)
    check_png(png, SCREENSHOT_SIZE)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[path.stem for path in WORKFLOWS])
def test_a_renamed_node_type_is_reported_missing(
    path: Path, comfy: Any, browser: Chromium, screenshot_dirs: tuple[Path, Path]
) -> None:
    workflow = copy.deepcopy(load_ui_workflow(path))
    renamed = next((node for node in workflow["nodes"] if node["type"].startswith(OUR_PREFIX)), None)
    assert renamed is not None, f"{path.name} uses no {OUR_PREFIX}* node"
    renamed["type"] = MISSING_TYPE
    with open_editor(browser, comfy.server.url) as page:
        report = load_into_editor(page, workflow)
        png = page.screenshot()
    (screenshot_dirs[0] / f"{path.stem}-missing-node.png").write_bytes(png)

    found = problems(workflow, report)
    label = f"node {renamed['id']} ({MISSING_TYPE})"
    assert f"{label}: type not in LiteGraph.registered_node_types (missing node)" in found
    assert any(item.startswith(f"{label}: flagged by the frontend (has_errors=True") for item in found)
    assert any(item.startswith("missing-nodes dialog:") and MISSING_TYPE in item for item in found)
    assert len(found) == 3, found  # nothing else is wrong: only the renamed node is missing
    check_png(png, SCREENSHOT_SIZE)
