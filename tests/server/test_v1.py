"""The /v1 API route by route, in process."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ..conftest import FakeClock

NS = "/v1/ns/agent"


def test_put_get_delete_one_item(client: TestClient) -> None:
    put = client.put(f"{NS}/keys/prefs", json={"value": {"tone": "brief"}, "ttl": 60})
    assert put.status_code == 200 and put.headers["etag"] == f'"{put.json()["version"]}"'
    got = client.get(f"{NS}/keys/prefs")
    body = got.json()
    assert body["value"] == {"tone": "brief"} and body["version"] == put.json()["version"]
    assert body["expires_at"] == pytest.approx(body["updated_at"] + 60)
    assert (
        client.get(f"{NS}/keys/prefs", headers={"if-none-match": got.headers["etag"]}).status_code
        == 304
    )
    assert client.delete(f"{NS}/keys/prefs").json() == {"deleted": True}
    assert client.delete(f"{NS}/keys/prefs").json() == {"deleted": False}
    missing = client.get(f"{NS}/keys/prefs")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("key", ["a/b/c", "spaces and ünïcode", "..", "q?x", "100%", "#frag"])
def test_keys_travel_percent_encoded(client: TestClient, key: str) -> None:
    from botwire.wire import key_path

    path = f"{NS}/keys/{key_path(key)}"
    assert client.put(path, json={"value": key}).status_code == 200
    assert client.get(path).json()["key"] == key
    assert client.get(f"{NS}/keys").json()["keys"] == [key]


def test_stored_null_is_not_missing(client: TestClient) -> None:
    client.put(f"{NS}/keys/n", json={"value": None})
    assert client.get(f"{NS}/keys/n").json()["value"] is None


def test_compare_and_set_by_header_and_body(client: TestClient) -> None:
    v1 = client.put(f"{NS}/keys/k", json={"value": 1}, headers={"if-none-match": "*"}).json()[
        "version"
    ]
    again = client.put(f"{NS}/keys/k", json={"value": 2}, headers={"if-none-match": "*"})
    assert again.status_code == 409 and again.json()["error"]["keys"] == ["k"]
    stale = client.put(f"{NS}/keys/k", json={"value": 2}, headers={"if-match": f'"{v1 + 9}"'})
    assert stale.status_code == 409
    assert client.put(f"{NS}/keys/k", json={"value": 2, "if_version": v1}).status_code == 200
    assert client.delete(f"{NS}/keys/k", headers={"if-match": '"1"'}).status_code == 409


def test_incr_append_touch(client: TestClient, clock: FakeClock) -> None:
    assert client.post(f"{NS}/incr/n", json={"by": 5}).json() == {"value": 5}
    assert client.post(f"{NS}/incr/n", json={}).json() == {"value": 6}
    assert client.post(f"{NS}/append/l", json={"items": [1, 2, 3], "max_len": 2}).json() == {
        "length": 2
    }
    assert client.get(f"{NS}/keys/l").json()["value"] == [2, 3]
    assert client.post(f"{NS}/touch/l", json={"ttl": 30}).json() == {"touched": True}
    assert client.post(f"{NS}/touch/none", json={"ttl": 30}).json() == {"touched": False}
    wrong = client.post(f"{NS}/incr/l", json={})
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "wrong_type"


def test_list_with_prefix_and_cursor_then_clear(client: TestClient) -> None:
    for i in range(5):
        client.put(f"{NS}/keys/user:{i}", json={"value": i})
    client.put(f"{NS}/keys/other", json={"value": 0})
    page = client.get(f"{NS}/keys", params={"prefix": "user:", "limit": 3}).json()
    assert page == {"keys": ["user:0", "user:1", "user:2"], "next": "user:2"}
    rest = client.get(f"{NS}/keys", params={"prefix": "user:", "after": page["next"]}).json()
    assert rest == {"keys": ["user:3", "user:4"], "next": None}
    assert client.delete(f"{NS}/keys", params={"prefix": "user:"}).json() == {"deleted": 5}
    assert client.get(f"{NS}/keys").json()["keys"] == ["other"]


def test_batch_is_atomic(client: TestClient) -> None:
    ops = [
        {"op": "put", "key": "a", "value": 1},
        {"op": "incr", "key": "n", "by": 2},
        {"op": "get", "key": "a"},
        {"op": "list"},
    ]
    results = client.post(f"{NS}/batch", json={"ops": ops}).json()["results"]
    assert results[1] == 2 and results[2]["value"] == 1 and results[3] == ["a", "n"]
    bad = [
        {"op": "put", "key": "b", "value": 1},
        {"op": "incr", "key": "a", "by": 1},
        {"op": "put", "key": "c", "value": "x", "if_version": 0},
        {"op": "put", "key": "a", "value": 1, "if_version": 999},
    ]
    refused = client.post(f"{NS}/batch", json={"ops": bad})
    assert refused.status_code == 409 and refused.json()["error"]["keys"] == ["a"]
    assert client.get(f"{NS}/keys").json()["keys"] == ["a", "n"]


def test_stats_and_changes(client: TestClient) -> None:
    client.put(f"{NS}/keys/a", json={"value": "x"})
    client.delete(f"{NS}/keys/a")
    client.put(f"{NS}/keys/b", json={"value": [1]})
    stats = client.get(f"{NS}/stats").json()
    assert stats["keys"] == 1 and stats["bytes"] == 1 + 3 and stats["writes_today"] == 2
    assert stats["limits"] == {
        "writes_per_day": 1000,
        "max_bytes": 50_000_000,
        "max_value_bytes": 1_048_576,
        "max_answer_bytes": 16_777_216,
    }
    feed = client.get(f"{NS}/changes", params={"since": 0}).json()
    assert [(c["key"], c["deleted"]) for c in feed["changes"]] == [("a", True), ("b", False)]
    assert client.get(f"{NS}/changes", params={"since": feed["next"]}).json()["changes"] == []


def test_operations_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"ok": True}
    client.get(f"{NS}/keys/missing")
    metrics = client.get("/metrics").text
    assert (
        'botwire_requests_total{method="GET",route="/v1/ns/{namespace}/keys/{key:key}",status="404"}'
        in metrics
    )
    assert 'botwire_errors_total{code="not_found"}' in metrics
    assert "process_resident_memory_bytes" in metrics
    spec = client.get("/openapi.json").json()
    put = spec["paths"]["/v1/ns/{namespace}/keys/{key}"]["put"]
    assert {"409", "413", "429", "507"} <= set(put["responses"])
    assert client.get("/docs").status_code == 200
