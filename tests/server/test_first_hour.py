"""The server's first hour, as a new user meets it: `botwire serve`, `token` and `migrate`
run as commands, against real servers on loopback.

One default database for all three, named on standard error; no new empty token
database made by accident; `--db` takes store URLs and refuses what cannot be
served before creating anything; a missing extra is one line naming the pip
install; the 429 names the setting; serve says at start what it runs with; open
mode tells a client its key was ignored; token mode's 401 says what to set.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from botwire import Memory, Unauthorized, WriteLimitExceeded
from botwire_server.auth import NO_KEY

from .conftest import free_port


def botwire(
    *args: str, cwd: Path | None = None, block: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``botwire ARGS`` as a user would; ``block``: modules that fail to import, as
    they do where an extra is not installed."""
    code = (
        "import sys\n"
        f"for name in {block!r}: sys.modules[name] = None  # import raises ImportError\n"
        "from botwire.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=_env(),
    )


def _env() -> dict[str, str]:
    """The test's environment (its own BOTWIRE_HOME), without server settings or keys."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BOTWIRE_SERVER_") and k not in ("BOTWIRE_URL", "BOTWIRE_API_KEY")
    }


class Serve:
    """``botwire serve ARGS`` on a free loopback port, its standard error kept."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd.parent / f"serve-{self.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "botwire.cli", "serve", "--port", str(self.port), *args],
                cwd=cwd,
                env=_env(),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        for _ in range(600):  # up to 30 s; readiness, not a timing assertion
            if self.proc.poll() is not None:
                raise RuntimeError(self.stderr)
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(0.05)  # the pause between tries; returns at once if it exits
        raise TimeoutError(self.stderr)

    @property
    def stderr(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """An empty working directory: what a command leaves in it is seen."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


@pytest.fixture
def home() -> Path:
    return Path(os.environ["BOTWIRE_HOME"])


@pytest.fixture
def serving(cwd: Path) -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for server in started:
        server.stop()


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


# -- 1. one default database, named; no new empty token database by accident --------


def test_the_readme_token_steps_give_a_token_the_server_accepts(
    cwd: Path, home: Path, serving: list[Serve]
) -> None:
    default = home / "server.db"
    early = botwire("token", "create", "--namespaces", "user-*", cwd=cwd)
    one_line_error(early, f"no server database at {default} yet", "botwire serve", "--create")
    assert not default.exists() and list(cwd.iterdir()) == []

    server = Serve("--auth", "token", cwd=cwd)
    serving.append(server)
    assert f"database  {default} (SQLite" in server.stderr
    assert "auth      token: 0 live tokens (every request gets 401" in server.stderr

    made = botwire("token", "create", "--namespaces", "user-*", cwd=cwd)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert f"botwire: database {default} (SQLite)" in made.stderr
    assert "BOTWIRE_API_KEY" in made.stderr and "--auth token" in made.stderr
    listed = botwire("token", "list", cwd=cwd)
    assert secret.split("_")[1] in listed.stdout and str(default) in listed.stderr

    answer = httpx.put(
        server.url + "/v1/ns/user-42/keys/prefs",
        json={"value": 1},
        headers={"authorization": f"Bearer {secret}"},
    )
    assert answer.status_code == 200, answer.text
    with Memory("user-42", url=server.url, api_key=secret, cache=False) as memory:
        assert memory.get("prefs") == 1
    assert list(cwd.iterdir()) == []  # nothing was made where the commands ran


def test_token_refuses_a_database_serve_does_not_use(cwd: Path, home: Path) -> None:
    # The old README's `--db server.db`: a new file in the working directory, which
    # the server never reads, so its tokens only ever got 401.
    for args in (["create", "--namespaces", "user-*"], ["list"], ["revoke", "abc"]):
        result = botwire("token", *args, "--db", "server.db", cwd=cwd)
        one_line_error(
            result,
            f"no server database at {cwd / 'server.db'}",
            f"`botwire serve` without --db uses {home / 'server.db'}",
        )
        assert ("--create" in result.stderr) == (args[0] == "create")
    assert list(cwd.iterdir()) == []

    made = botwire("token", "create", "--namespaces", "a", "--db", "server.db", "--create", cwd=cwd)
    assert made.returncode == 0, made.stderr
    assert f"a new server database: {cwd / 'server.db'}" in made.stderr
    assert (cwd / "server.db").exists()
    assert botwire("token", "list", "--db", "server.db", cwd=cwd).stdout.count("\t") == 2


def test_migrate_uses_the_same_default_and_names_it(cwd: Path, home: Path) -> None:
    default = home / "server.db"
    one_line_error(botwire("migrate", cwd=cwd), f"no server database at {default} yet")
    assert not default.exists()
    botwire("token", "create", "--namespaces", "a", "--create", cwd=cwd)  # makes the default
    result = botwire("migrate", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert f"botwire: database {default} (SQLite)" in result.stderr
    assert "schema version" in result.stdout


@pytest.mark.skipif(
    not os.environ.get("BOTWIRE_TEST_POSTGRES_URL"), reason="set BOTWIRE_TEST_POSTGRES_URL"
)
def test_migrate_on_postgresql_names_it_without_its_password(cwd: Path) -> None:
    url = os.environ["BOTWIRE_TEST_POSTGRES_URL"]
    result = botwire("migrate", "--db", url, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "(PostgreSQL)" in result.stderr and "schema version" in result.stdout
    with_password = url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")
    with_password = with_password.replace(":5432/", ":1/")  # nothing listens on port 1
    down = botwire("migrate", "--db", with_password, cwd=cwd)
    assert down.returncode == 2 and "Traceback" not in down.stderr
    assert "could not be reached" in down.stderr and "postgres:***@" in down.stderr
    assert "hunter2" not in down.stderr


# -- 2. --db takes store URLs, refuses what cannot be served --------------------------


REFUSED = [
    ("http://127.0.0.1:8787", "is a botwire server's URL"),
    ("https://memory.example.com", "is a botwire server's URL"),
    ("memory://", "cannot be served"),
    ("ftp://host/x.db", "unknown scheme ftp://"),
    ("sqlite:x.db", "neither a path nor a URL"),
    ("sqlite://host/x.db", "write sqlite:///relative/path.db"),
    ("sqlite:///x.db?cache=shared", "unknown option(s) ['cache']"),
]
OTHERS = [["migrate"], ["token", "list"], ["token", "create", "--create"]]


# every refusal through serve; every other one through migrate and token
@pytest.mark.parametrize(
    ("command", "db", "reason"),
    [(["serve"], db, reason) for db, reason in REFUSED]
    + [(command, db, reason) for command in OTHERS for db, reason in REFUSED[::2]],
)
def test_db_refuses_what_cannot_be_served_before_creating_anything(
    cwd: Path, db: str, reason: str, command: list[str]
) -> None:
    extra = ["--namespaces", "a"] if "create" in command else []
    result = botwire(*command, *extra, "--db", db, cwd=cwd)
    one_line_error(result, reason)
    assert list(cwd.iterdir()) == []  # no folder `sqlite:`, no file `http:/...`


def test_serve_db_takes_sqlite_urls_and_paths(cwd: Path, serving: list[Serve]) -> None:
    relative = Serve("--db", "sqlite:///data/rel.db?synchronous=normal", cwd=cwd)
    serving.append(relative)
    assert f"database  {cwd / 'data' / 'rel.db'} (SQLite, synchronous=normal, new file)" in (
        relative.stderr
    )
    absolute = Serve("--db", f"sqlite:///{cwd}/abs.db", cwd=cwd)  # sqlite:////abs...
    serving.append(absolute)
    for server in serving:
        with Memory("agent", url=server.url, cache=False) as memory:
            memory.set("k", server.port)
    made = {p.name for p in cwd.iterdir()}
    assert {"abs.db", "data"} <= made and not any(":" in name for name in made), made
    assert made <= {"abs.db", "data", "abs.db-lock", "abs.db-wal", "abs.db-shm"}, made
    listed = botwire("token", "list", "--db", "data/rel.db", cwd=cwd)  # the same file, by path
    assert listed.returncode == 0 and f"database {cwd / 'data' / 'rel.db'}" in listed.stderr


# -- 3. missing extras: one line, the pip install, exit 2 ------------------------------


@pytest.mark.parametrize(
    ("args", "block", "install"),
    [
        (["serve"], ("uvicorn",), "pip install 'botwire[server]'"),
        (["serve"], ("fastapi",), "pip install 'botwire[server]'"),
        (["serve", "--db", "postgresql://h/db"], ("psycopg",), "pip install 'botwire[postgres]'"),
        (
            ["serve", "--db", "postgresql://h/db"],
            ("uvicorn", "psycopg"),
            "pip install 'botwire[server,postgres]'",
        ),
        (["migrate", "--db", "postgresql://h/db"], ("psycopg",), "pip install 'botwire[postgres]'"),
        (["token", "list", "--db", "postgresql://h/db"], ("psycopg",), "'botwire[postgres]'"),
    ],
)
def test_a_missing_extra_names_the_pip_install(
    cwd: Path, args: list[str], block: tuple[str, ...], install: str
) -> None:
    result = botwire(*args, cwd=cwd, block=block)
    one_line_error(result, install, *block)
    assert list(cwd.iterdir()) == []


def test_token_needs_no_fastapi(cwd: Path) -> None:
    made = botwire(
        "token", "create", "--namespaces", "a", "--create", cwd=cwd, block=("fastapi", "uvicorn")
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("bw_")
    listed = botwire("token", "list", cwd=cwd, block=("fastapi", "uvicorn"))
    assert listed.returncode == 0 and listed.stdout.count("\n") == 1


# -- 4. limits: named in the 429, printed at start, defaults in --help ---------------


def test_serve_prints_what_it_runs_with_and_the_429_names_the_setting(
    cwd: Path, home: Path, serving: list[Serve]
) -> None:
    server = Serve("--writes-per-day", "2", "--max-bytes", "0", cwd=cwd)
    serving.append(server)
    started = server.stderr
    assert f"botwire serve: {server.url}, 1 worker" in started
    assert f"database  {home / 'server.db'} (SQLite, synchronous=full, new file)" in started
    assert "auth      open: no key is checked" in started
    assert "per namespace: 2 writes a UTC day (a batch is one), no storage quota" in started
    assert "--writes-per-day" in started and "0 = off" in started

    with Memory("agent", url=server.url, cache=False) as memory:
        memory.set_many({"a": 1, "b": 2})  # a batch is one write
        memory.set("c", 3)
        with pytest.raises(WriteLimitExceeded) as raised:
            memory.set("d", 4)
    message = str(raised.value)
    assert "used its 2 writes for today" in message
    assert "--writes-per-day" in message and "BOTWIRE_SERVER_WRITES_PER_DAY" in message
    assert "0 = off" in message and raised.value.retry_after > 0


def test_serve_help_shows_every_default(cwd: Path, home: Path) -> None:
    result = botwire("serve", "--help", cwd=cwd)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines
    options = [w.strip("[]") for w in text.split() if w.startswith("[--")]
    options = sorted({o.split()[0] for o in options} - {"--help"})
    assert len(options) >= 17
    described = text.split("show this help message and exit", 1)[1]
    chunks = described.split(" --")[1:]
    for chunk in chunks:
        assert "default:" in chunk, chunk
    assert {"--" + c.split()[0] for c in chunks} >= set(options)
    for shown in (
        "(default: 1000, or $BOTWIRE_SERVER_WRITES_PER_DAY)",
        "(default: 8787, or $BOTWIRE_SERVER_PORT)",
        f"(default: {home / 'server.db'}, or $BOTWIRE_SERVER_DB)",
        "(default: open, or $BOTWIRE_SERVER_AUTH)",
    ):
        assert shown in text


# -- 5. open mode says a key was ignored; token mode's 401 says what to set -----------


def test_open_mode_answers_botwire_auth_open_when_a_key_was_sent(
    cwd: Path, serving: list[Serve]
) -> None:
    server = Serve("--max-body-bytes", "100", cwd=cwd)
    serving.append(server)
    key = {"authorization": "Bearer bw_something_secret"}
    with httpx.Client(base_url=server.url) as client:
        assert "botwire-auth" not in client.get("/v1/ns/a/keys/k").headers
        for answer in (
            client.get("/v1/ns/a/keys/k", headers=key),  # 404
            client.put("/v1/ns/a/keys/k", json={"value": 1}, headers=key),  # 200
            client.put("/v1/ns/a/keys/k", json={"value": "x" * 200}, headers=key),  # 413
            client.get("/memory/a/k", headers=key),  # the reference API
        ):
            assert answer.headers.get("Botwire-Auth") == "open", (answer.status_code, answer.text)
    assert answer.status_code == 200


def test_token_mode_401_says_what_a_python_user_sets(cwd: Path, serving: list[Serve]) -> None:
    server = Serve("--auth", "token", cwd=cwd)
    serving.append(server)
    answer = httpx.get(server.url + "/v1/ns/a/keys/k")
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == NO_KEY
    assert NO_KEY == (
        "set BOTWIRE_API_KEY or pass api_key= (CLI: --api-key); the server is in token mode"
    )
    assert "botwire-auth" not in answer.headers  # token mode checks keys: no notice
    with Memory("a", url=server.url, cache=False) as memory, pytest.raises(Unauthorized) as raised:
        memory.get("k")
    assert "BOTWIRE_API_KEY" in str(raised.value) and "api_key=" in str(raised.value)
