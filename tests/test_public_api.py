"""The public surface: a sorted __all__, typed, and a light import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import botwire


def test_all_is_sorted_and_importable() -> None:
    def isort_style(name: str) -> tuple[int, str]:  # ruff's RUF022: CONSTANTS, Classes, functions
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert botwire.__all__ == sorted(botwire.__all__, key=isort_style)
    for name in botwire.__all__:
        assert getattr(botwire, name) is not None


def test_py_typed_is_shipped() -> None:
    assert (Path(botwire.__file__).parent / "py.typed").exists()


def test_import_botwire_leaves_heavy_modules_unloaded() -> None:
    heavy = ["orjson", "asyncio", "sqlite3", "platformdirs", "httpx", "diskcache", "wrapt"]
    code = (
        f"import sys, json, botwire; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


# Layers above the core speak only public names (issue 12): the server, the CLI,
# every adapter, the examples and the benchmarks.
_OUTSIDE_CORE = [
    "server/botwire_server",
    "src/botwire/integrations",
    "src/botwire/cli.py",
    "examples",
    "benchmarks",
]


def _private_imports(path: Path) -> list[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = "botwire.integrations" if "integrations" in path.parts else "botwire"
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this file's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("botwire") and any(p.startswith("_") for p in name.split(".")):
                found.append(f"{path}:{node.lineno}: {name}")
    return found


def test_no_layer_above_the_core_imports_a_private_name() -> None:
    root = Path(__file__).parent.parent
    files: list[Path] = []
    for entry in _OUTSIDE_CORE:
        target = root / entry
        files += [target] if target.is_file() else sorted(target.rglob("*.py"))
    assert len(files) > 20
    found = [hit for path in files for hit in _private_imports(path)]
    assert found == [], "\n".join(found)
