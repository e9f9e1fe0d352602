"""The import graph of the pack: no cycles, and only the directions the design allows.

Read from the source with `ast` (nothing is imported), so an import inside a function counts as much as
one at the top of a file: a lazy import that closes a cycle is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "nodes")
COMFY = ("comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "execution")


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported name, line, relative?) for every import statement of `module`, at any depth."""
    path, is_package = MODULES[module]
    here = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, False) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in MODULES else target, node.lineno, bool(node.level)))
    return found


def _graph() -> dict[str, set[str]]:
    return {m: {name for name, _, _ in _imports(m) if name in MODULES and name != m} for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_the_checker_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_reads_lazy_and_relative_imports():
    graph = _graph()
    assert "models.registry" in graph["models.weights"]  # relative, top level
    assert "models.train.engine" in graph["nodes.train.run_options"]  # absolute, inside a function


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def _violations(modules: list[str], allowed) -> list[str]:
    return [
        f"{MODULES[m][0].relative_to(ROOT)}:{line} imports {name}"
        for m in modules
        for name, line, relative in _imports(m)
        if not allowed(m, name, relative)
    ]


def _top(name: str) -> str:
    return name.split(".")[0]


def test_the_core_never_imports_comfyui_or_the_nodes():
    core = [m for m in MODULES if _top(m) == "models"]
    assert _violations(core, lambda m, name, rel: _top(name) not in (*COMFY, "nodes")) == []


def test_the_core_imports_itself_relatively():
    core = [m for m in MODULES if _top(m) == "models"]
    assert _violations(core, lambda m, name, rel: rel or _top(name) != "models") == []


def test_architecture_files_do_no_file_io():
    """An architecture is a config and modules; reading files is models.checkpoint / weights / pretrained."""
    archs = [m for m in MODULES if m.startswith("models.archs.")]
    io_modules = ("os", "pathlib", "io", "shutil", "tempfile", "safetensors", "models.weights", "models.checkpoint",
                  "models.pretrained", "models.registry")

    def allowed(m: str, name: str, rel: bool) -> bool:
        return not any(name == x or name.startswith(x + ".") for x in io_modules)

    assert _violations(archs, allowed) == []
    for module in archs:
        tree = ast.parse(MODULES[module][0].read_text())
        calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
        names = {ast.unparse(f) for f in calls}
        assert not names & {"open", "torch.load", "torch.save", "safe_open", "save_file"}, module


def test_architectures_import_only_architecture_pieces():
    archs = [m for m in MODULES if m.startswith("models.archs.")]

    def allowed(m: str, name: str, rel: bool) -> bool:
        return _top(name) != "models" or name in ("models.architecture", "models.archs") or name.startswith(
            "models.archs.")

    assert _violations(archs, allowed) == []


def test_the_training_entry_point_reaches_the_core_by_absolute_name_and_never_comfyui():
    cli = [m for m in MODULES if m == "nodes.train" or m.startswith("nodes.train.")]

    def allowed(m: str, name: str, rel: bool) -> bool:
        if _top(name) in COMFY or name == "nodes.comfy":
            return False
        return not (rel and _top(name) == "models")

    assert _violations(cli, allowed) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _top(m) == "nodes" and m not in (
    "nodes.train", "nodes.harness") and not m.startswith(("nodes.train.", "nodes.harness."))))
def test_nodes_reach_the_core_relatively(module):
    """Inside ComfyUI `import models` is ComfyUI's weights folder: a node must say `..models`."""
    assert _violations([module], lambda m, name, rel: rel or _top(name) not in ("models", "nodes")) == []


def test_the_harness_does_not_need_the_core():
    harness = [m for m in MODULES if m.startswith("nodes.harness")]
    assert _violations(harness, lambda m, name, rel: _top(name) != "models") == []
