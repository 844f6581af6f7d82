"""The host package's shape: folders are layers in data-flow order, and imports only go
down (or stay inside a layer); no module imports another that (directly or not) imports it.

Every import counts, also the ones inside functions (deferred to keep start-up fast): a
deferred upward import is still an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tinydrift

PACKAGE = Path(tinydrift.__file__).parent

# Lowest first. A module may import its own layer and the layers before it.
LAYERS = [
    ("errors", "atomic", "quiet", "child"),  # what everything may use
    ("firmware",),  # the firmware tree: layout, third-party C, build recipes
    ("modeldir",),  # the model folder's files
    ("frontend",),  # audio -> features (twin of firmware frontend/)
    ("data",),  # data sets
    ("model",),  # Keras model, int8 conversion, runtimes
    ("monitor",),  # the drift monitor's twin, calibration (twin of firmware monitor/)
    ("codegen",),  # C emission
    ("wakeword",),  # microWakeWord models: config checked against the model, int8 input blocks
    ("link",),  # the wire protocol (twin of firmware protocol/), the port, replay
    ("app",),  # the firmware app's twin
    ("logbook",),  # capture store, live view, report
    ("target",),  # where the firmware runs: this host, QEMU, PlatformIO boards, benchmarks
    ("fleet",),  # many devices: gateway (serial -> MQTT), collector (MQTT -> PostgreSQL), private servers
    ("pipeline",),  # data -> ... -> export -> verify -> demo
    ("cli", "__main__"),  # the command line; nothing imports it
]
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """tinydrift modules imported anywhere in the file (resolved to module names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tinydrift.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "tinydrift" or node.module.startswith("tinydrift."):
                # `from package import name`: name may be a submodule or an attribute.
                found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the package uses absolute imports")
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py") if "_firmware" not in p.parts}
    edges = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports_of(path):
            # `from tinydrift.x import y` may name a module or an attribute: take the longest module.
            while imported not in modules and "." in imported:
                imported = imported.rsplit(".", 1)[0]
            if imported in modules and imported != name:
                targets.add(imported)
        edges[name] = targets
    return edges


def layer(module: str) -> int:
    if module == "tinydrift":
        return 0  # __init__: the version and the quiet environment, nothing else
    top = module.split(".")[1]
    assert top in LAYER_OF, f"{module}: folder {top!r} is in no layer; add it to LAYERS in this test"
    return LAYER_OF[top]


def test_every_module_is_in_a_layer():
    for module in graph():
        layer(module)


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets if layer(b) > layer(a))


def test_no_upward_imports():
    upward = upward_imports(graph())
    assert not upward, "imports that go up the layers:\n  " + "\n  ".join(sorted(upward))


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_library_never_imports_the_cli():
    users = [a for a, targets in graph().items() if not a.startswith(("tinydrift.cli", "tinydrift.__main__"))
             and any(t.startswith("tinydrift.cli") for t in targets)]
    assert not users, f"library modules importing the CLI: {users}"


def test_the_checker_sees_a_violation(tmp_path):
    """The checks above can fail: an upward import in a made-up module is found."""
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from tinydrift.pipeline.export import export\n")
    assert "tinydrift.pipeline.export.export" in imports_of(fake)
    edges = {"tinydrift.monitor.twin": {"tinydrift.pipeline.export"}, "tinydrift.pipeline.export": set()}
    assert upward_imports(edges) == ["tinydrift.monitor.twin -> tinydrift.pipeline.export"]
