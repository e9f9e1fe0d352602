"""Turn an API-format workflow into the UI format the ComfyUI frontend opens.

The API format (what `/prompt` takes) has no layout; the UI format (what users drag into the
editor) needs nodes with positions, sockets, links and widget values in the order of the node's
schema. The schema comes from a running server's `/object_info`, so the result always matches the
nodes as they are. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
COLUMN_WIDTH = 400
ROW_GAP = 40


def _is_widget(spec: list[Any]) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _ordered_inputs(info: Mapping[str, Any]) -> list[tuple[str, list[Any]]]:
    specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    order = info.get("input_order") or {}
    names = [*order.get("required", []), *order.get("optional", [])] or list(specs)
    return [(name, specs[name]) for name in names if name in specs]


def _depths(prompt: Mapping[str, Any]) -> dict[str, int]:
    depths: dict[str, int] = {}

    def depth(node_id: str, seen: frozenset[str] = frozenset()) -> int:
        if node_id in depths:
            return depths[node_id]
        if node_id in seen:
            raise ValueError(f"workflow has a cycle through node {node_id}")
        parents = [v[0] for v in prompt[node_id]["inputs"].values() if _is_link(v)]
        depths[node_id] = 1 + max((depth(p, seen | {node_id}) for p in parents), default=-1)
        return depths[node_id]

    for node_id in prompt:
        depth(node_id)
    return depths


IMAGE_PREVIEW_HEIGHT = 320  # LoadImage-style nodes grow to show the picked image


def _estimated_height(info: Mapping[str, Any]) -> int:
    inputs = _ordered_inputs(info)
    preview = any(len(spec) > 1 and isinstance(spec[1], dict) and spec[1].get("image_upload") for _, spec in inputs)
    return 60 + 26 * (len(inputs) + len(info.get("output", []))) + (IMAGE_PREVIEW_HEIGHT if preview else 0)


def api_to_ui(prompt: Mapping[str, Any], object_info: Mapping[str, Any]) -> dict[str, Any]:
    """The UI-format workflow for `prompt`; node ids are kept (as integers)."""
    missing = sorted({n["class_type"] for n in prompt.values()} - set(object_info))
    if missing:
        raise ValueError(f"the server does not know these node types: {missing}")
    depths = _depths(prompt)
    ids = {node_id: int(node_id) for node_id in prompt}
    links: list[list[Any]] = []
    outputs: dict[str, list[dict[str, Any]]] = {}
    for node_id, node in prompt.items():
        info = object_info[node["class_type"]]
        names = info.get("output_name") or info["output"]
        outputs[node_id] = [
            {"name": name, "type": kind, "links": [], "slot_index": i}
            for i, (name, kind) in enumerate(zip(names, info["output"], strict=True))
        ]
    column_y: dict[int, int] = {}
    nodes = []
    for order, node_id in enumerate(sorted(prompt, key=lambda n: (depths[n], ids[n]))):
        node = prompt[node_id]
        info = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, spec in _ordered_inputs(info):
            value = node["inputs"].get(name)
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            linked_widget = _is_widget(spec) and _is_link(value)
            if _is_widget(spec):
                # a linked widget keeps its slot in widgets_values (the default) and gets an input socket
                widgets.append(options.get("default") if value is None or linked_widget else value)
                if options.get("control_after_generate"):
                    widgets.append("fixed")
                if options.get("image_upload"):
                    widgets.append("image")
                if not linked_widget:
                    continue
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            entry: dict[str, Any] = {"name": name, "type": kind, "link": None}
            if linked_widget:
                entry["widget"] = {"name": name}
            if _is_link(value):
                link_id = len(links) + 1
                source, slot = value
                links.append([link_id, ids[source], slot, ids[node_id], len(inputs), kind])
                outputs[source][slot]["links"].append(link_id)
                entry["link"] = link_id
            inputs.append(entry)
        column = depths[node_id]
        y = column_y.get(column, 60)
        height = _estimated_height(info)
        column_y[column] = y + height + ROW_GAP
        entry = {
            "id": ids[node_id],
            "type": node["class_type"],
            "pos": [60 + column * COLUMN_WIDTH, y],
            "size": [340, height],
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": inputs,
            "outputs": outputs[node_id],
            "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": widgets,
        }
        title = node.get("_meta", {}).get("title")
        if title and title != info.get("display_name"):
            entry["title"] = title
        nodes.append(entry)
    return {
        "last_node_id": max(ids.values()),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


def thumbnail(images: list[Path], out: Path, tile: int = 256) -> Path:
    """A 2x2 contact sheet (JPEG) of up to four workflow outputs; needs Pillow (the venv has it)."""
    from PIL import Image

    if not images:
        raise ValueError("a thumbnail needs at least one output image")
    sheet = Image.new("RGB", (2 * tile, 2 * tile), (24, 24, 24))
    for i, path in enumerate(images[:4]):
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((tile, tile))
            sheet.paste(im, ((i % 2) * tile + (tile - im.width) // 2, (i // 2) * tile + (tile - im.height) // 2))
    sheet.save(out, quality=88)
    return out


def first_outputs(files: list[Path]) -> list[Path]:
    """The first saved image of each output node, in node order (names are <stem>_<node>_<i>.<ext>)."""
    firsts: dict[int, Path] = {}
    for path in files:
        _, node, index = path.stem.rsplit("_", 2)
        if index == "0":
            firsts[int(node)] = path
    return [firsts[k] for k in sorted(firsts)]
