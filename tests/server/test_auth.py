"""Tokens, and the BOLA matrix: a token for one namespace never reaches another."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from botwire_server.auth import Tokens

SECRET_VALUE = "secret-of-namespace-B-0123456789"


@pytest.fixture
def token_client(make_client: Callable[..., TestClient]) -> tuple[TestClient, dict[str, str]]:
    client = make_client(auth="token")
    tokens: Tokens = client.app.state.tokens  # type: ignore[attr-defined]
    made = {
        "a": tokens.create(["team-a"])[0],
        "a_ro": tokens.create(["team-a"], read_only=True)[0],
        "b": tokens.create(["team-b", "user-*"])[0],
    }
    b = {"authorization": f"Bearer {made['b']}"}
    client.put("/v1/ns/team-b/keys/k", json={"value": SECRET_VALUE}, headers=b)
    client.put("/memory/team-b/legacy", json={"value": SECRET_VALUE}, headers=b)
    return client, made


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def test_missing_bad_and_revoked_tokens(token_client: tuple[TestClient, dict[str, str]]) -> None:
    client, made = token_client
    assert client.get("/v1/ns/team-a/keys/k").status_code == 401
    assert client.get("/v1/ns/team-a/keys/k", headers=bearer("bw_nope_nope")).status_code == 401
    assert (
        client.get("/v1/ns/team-a/keys/k", headers={"authorization": made["a"]}).status_code == 401
    )
    assert client.get("/v1/ns/team-a/keys/k", headers=bearer(made["a"])).status_code == 404
    tampered = made["a"][:-2] + ("AA" if not made["a"].endswith("AA") else "BB")
    assert client.get("/v1/ns/team-a/keys/k", headers=bearer(tampered)).status_code == 401
    tokens: Tokens = client.app.state.tokens  # type: ignore[attr-defined]
    token_id = made["a"].split("_")[1]
    assert tokens.revoke(token_id)
    assert client.get("/v1/ns/team-a/keys/k", headers=bearer(made["a"])).status_code == 401


def test_patterns_and_read_only(token_client: tuple[TestClient, dict[str, str]]) -> None:
    client, made = token_client
    assert (
        client.put(
            "/v1/ns/user-42/keys/k", json={"value": 1}, headers=bearer(made["b"])
        ).status_code
        == 200
    )
    assert (
        client.put(
            "/v1/ns/USER-42/keys/k", json={"value": 1}, headers=bearer(made["b"])
        ).status_code
        == 403
    )
    assert (
        client.put(
            "/v1/ns/team-a/keys/k", json={"value": 1}, headers=bearer(made["a_ro"])
        ).status_code
        == 403
    )
    assert client.get("/v1/ns/team-a/keys", headers=bearer(made["a_ro"])).status_code == 200
    reads = {"ops": [{"op": "list"}]}
    assert (
        client.post("/v1/ns/team-a/batch", json=reads, headers=bearer(made["a_ro"])).status_code
        == 200
    )
    writes = {"ops": [{"op": "incr", "key": "n"}]}
    assert (
        client.post("/v1/ns/team-a/batch", json=writes, headers=bearer(made["a_ro"])).status_code
        == 403
    )


# Every route and method, aimed at team-b with team-a's token, with tricks on the name.
ROUTES = [
    ("GET", "/v1/ns/{ns}/keys/k", None),
    ("PUT", "/v1/ns/{ns}/keys/k", {"value": 1}),
    ("DELETE", "/v1/ns/{ns}/keys/k", None),
    ("GET", "/v1/ns/{ns}/keys", None),
    ("DELETE", "/v1/ns/{ns}/keys", None),
    ("POST", "/v1/ns/{ns}/incr/k", {"by": 1}),
    ("POST", "/v1/ns/{ns}/append/k", {"items": [1]}),
    ("POST", "/v1/ns/{ns}/touch/k", {"ttl": 5}),
    ("POST", "/v1/ns/{ns}/batch", {"ops": [{"op": "get", "key": "k"}]}),
    ("GET", "/v1/ns/{ns}/stats", None),
    ("GET", "/v1/ns/{ns}/changes", None),
    ("GET", "/memory/{ns}/legacy", None),
    ("PUT", "/memory/{ns}/legacy", {"value": "x"}),
    ("DELETE", "/memory/{ns}/legacy", None),
    ("GET", "/memory/{ns}", None),
]
NAMES = [
    "team-b",
    "TEAM-B",
    "Team-b",
    "team-b%20",
    "team-a%2F..%2Fteam-b",
    "team-a/../team-b",
    "team-a%2f..%2fteam-b",
    "..%2Fteam-b",
    "team-%62",
    "team-a%00team-b",
    "team-a,team-b",
    "team-*",
    "team-?",
    "%74eam-b",
]


@pytest.mark.parametrize(
    ("method", "route", "body"), ROUTES, ids=[f"{m} {r}" for m, r, _ in ROUTES]
)
def test_bola_matrix(
    token_client: tuple[TestClient, dict[str, str]], method: str, route: str, body: object
) -> None:
    client, made = token_client
    for name in NAMES:
        response = client.request(
            method, route.format(ns=name), json=body, headers=bearer(made["a"])
        )
        assert SECRET_VALUE not in response.text
        if response.status_code < 300:
            # Only where the path decodes to the token's own namespace, as in
            # /memory/team-a/../team-b/legacy: namespace team-a, key "../team-b/legacy".
            assert name.lower().startswith(("team-a%2f", "team-a/")), (name, response.text)
        else:
            assert response.status_code in (400, 403, 404, 405), (name, response.status_code)
    # team-b is untouched: same keys, same values, for its owner
    owner = bearer(made["b"])
    assert client.get("/v1/ns/team-b/keys", headers=owner).json()["keys"] == ["k", "legacy"]
    assert client.get("/v1/ns/team-b/keys/k", headers=owner).json()["value"] == SECRET_VALUE
    assert client.get("/v1/ns/team-b/keys/legacy", headers=owner).json()["value"] == SECRET_VALUE


def test_token_cli_round_trip(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = str(tmp_path / "t.db")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "botwire.cli", "token", *args, "--db", db],
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = cli("create", "--create", "--namespaces", "user-*,team-a", "--read-only")
    secret = made.stdout.strip()
    assert made.returncode == 0 and secret.startswith("bw_") and "Shown once" in made.stderr
    listed = cli("list").stdout
    _, token_id, token_secret = secret.split("_", 2)  # the secret may hold "_" itself
    assert f"{token_id}\tread-only\tuser-*,team-a" in listed and token_secret not in listed
    assert cli("revoke", token_id).returncode == 0
    assert "revoked" in cli("list").stdout
    assert cli("revoke", "nope").returncode == 1
    raw = (
        Path(db).read_bytes() + Path(db + "-wal").read_bytes()
        if Path(db + "-wal").exists()
        else Path(db).read_bytes()
    )
    assert token_secret.encode() not in raw  # only the hash is stored


def test_a_revocation_reaches_other_workers_within_the_token_cache_time(
    token_client: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tokens are cached per worker for TOKEN_CACHE_SECONDS: no lookup per request, and a
    revocation made elsewhere (another worker, replica or the CLI) holds after that."""
    from botwire_server import auth

    client, made = token_client
    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    assert client.get("/v1/ns/team-a/keys/k", headers=bearer(made["a"])).status_code == 404
    tokens: Tokens = client.app.state.tokens  # type: ignore[attr-defined]
    elsewhere = Tokens(tokens.store)  # another worker's view of the same database
    assert elsewhere.revoke(made["a"].split("_")[1])
    now[0] += auth.TOKEN_CACHE_SECONDS - 1
    assert client.get("/v1/ns/team-a/keys/k", headers=bearer(made["a"])).status_code == 404
    now[0] += 1
    assert client.get("/v1/ns/team-a/keys/k", headers=bearer(made["a"])).status_code == 401
