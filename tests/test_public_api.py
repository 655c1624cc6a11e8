"""The public surface: a sorted __all__, typed, and a light import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import botwire


def test_all_is_sorted_and_importable() -> None:
    assert botwire.__all__ == sorted(botwire.__all__)
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
