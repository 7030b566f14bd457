"""The package layout a newcomer reads in one guess: layers that import only downwards, a root with only the
entry points, and modules short enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import semtok

PACKAGE = Path(semtok.__file__).parent
# Bottom to top: a module may import from its own layer and the layers before it.
LAYERS = [
    "errors",
    "config",
    "hub",
    "data",
    "metrics",
    "teachers",
    "text",
    "quantizers",
    "nn",
    "losses",
    "tokenizers",
    "generators",
    "visual",
    "evaluation",
    "training",
    "pipelines",
    "cli",
    "__init__",
    "__main__",
]


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_every_module_sits_in_a_known_layer():
    assert {layer_of(path) for path in modules()} <= set(LAYERS)


def test_imports_only_go_down_the_layers():
    rank = {name: index for index, name in enumerate(LAYERS)}
    upward = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("semtok")):
                continue
            parts = node.module.split(".")
            target = parts[1] if len(parts) > 1 else "__init__"
            if target == "__init__" and [alias.name for alias in node.names] == ["__version__"]:
                continue  # the version string is a constant, not a layer
            if rank[target] > rank[layer_of(path)]:
                upward.append(f"{path.relative_to(PACKAGE)} imports {node.module}")
    assert not upward, upward


def test_package_root_holds_only_entry_points_and_packages():
    files = {path.name for path in PACKAGE.glob("*.py")}
    assert files == {"__init__.py", "__main__.py", "config.py", "errors.py"}
    assert (PACKAGE / "cli" / "__init__.py").exists()


def test_no_module_is_longer_than_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in modules() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
