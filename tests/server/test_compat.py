"""The reference BotWire endpoints answer with the reference shapes; 0.2 clients work unchanged."""

from __future__ import annotations

import importlib.util
import os
import sys
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from .conftest import LiveServer


def test_reference_shapes(client: TestClient) -> None:
    put = client.put("/memory/agent/user_name", json={"value": "Pedro ✓"})
    assert put.json() == {"namespace": "agent", "key": "user_name", "stored": True, "bytes": 9}
    got = client.get("/memory/agent/user_name").json()
    assert set(got) == {"namespace", "key", "value", "created_at", "updated_at"}
    assert got["value"] == "Pedro ✓" and datetime.fromisoformat(got["updated_at"]).tzinfo
    listed = client.get("/memory/agent", params={"limit": 10}).json()
    assert listed["namespace"] == "agent" and listed["count"] == 1
    assert set(listed["keys"][0]) == {"key", "bytes", "updated_at"}
    assert client.delete("/memory/agent/user_name").json() == {
        "deleted": True,
        "namespace": "agent",
        "key": "user_name",
    }
    assert client.get("/memory/agent/user_name").status_code == 404
    assert client.delete("/memory/agent/user_name").status_code == 404


def test_both_apis_see_one_store(client: TestClient) -> None:
    client.put("/memory/agent/legacy", json={"value": "text"})
    assert client.get("/v1/ns/agent/keys/legacy").json()["value"] == "text"
    client.put("/v1/ns/agent/keys/modern", json={"value": {"a": [1]}})
    assert client.get("/memory/agent/modern").json()["value"] == '{"a":[1]}'


def test_non_string_values_are_refused(client: TestClient) -> None:
    refused = client.put("/memory/agent/k", json={"value": {"not": "a string"}})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request"


def test_compat_writes_count_against_the_limits(make_client: Callable[..., TestClient]) -> None:
    client = make_client(writes_per_day=2)
    client.put("/memory/agent/a", json={"value": "1"})
    client.put("/v1/ns/agent/keys/b", json={"value": 1})
    over = client.put("/memory/agent/c", json={"value": "1"})
    assert over.status_code == 429 and over.headers["retry-after"].isdigit()


def _legacy_client() -> ModuleType:
    wheel = os.environ.get("BOTWIRE_TEST_LEGACY_CLIENT")
    if not wheel or not Path(wheel).exists():
        pytest.skip("set BOTWIRE_TEST_LEGACY_CLIENT to a botwire-0.2.x wheel (.ci/run does)")
    source = zipfile.ZipFile(wheel).read("botwire/memory.py")
    spec = importlib.util.spec_from_loader("legacy_botwire_memory", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["legacy_botwire_memory"] = module
    exec(compile(source, f"{wheel}!botwire/memory.py", "exec"), module.__dict__)
    return module


def test_the_real_botwire_0_2_client_works_unchanged(
    live_server: Callable[..., LiveServer],
) -> None:
    legacy = _legacy_client()
    server = live_server()
    mem = legacy.Memory("legacy-agent", base_url=server.url)
    mem.set("user_name", "Pedro")
    mem.set("prefs", {"format": "json", "n": [1, 2]})
    assert mem.get("user_name") == "Pedro"
    assert mem.get("prefs") == {"format": "json", "n": [1, 2]}
    assert mem.get("missing", "default") == "default"
    assert "user_name" in mem and "missing" not in mem
    assert sorted(k["key"] for k in mem.keys()) == ["prefs", "user_name"]  # noqa: SIM118
    assert mem.delete("user_name") is True
    assert mem.get("user_name") is None
    mem._client.close()
    server.stop()
    from botwire import Memory  # what it wrote is ordinary botwire data

    with Memory("legacy-agent", url=f"sqlite:///{server.db}") as stored:
        assert stored.get("prefs") == '{"format": "json", "n": [1, 2]}'  # it sends JSON text
