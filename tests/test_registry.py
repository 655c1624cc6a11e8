"""URL resolution and the process-wide sharing of stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from botwire import InvalidURL, Memory, StoreClosed
from botwire._registry import open_store, resolve_url
from botwire.stores.memory import MemoryStore
from botwire.stores.sqlite import SqliteStore


def test_default_is_an_embedded_file_in_botwire_home(_isolated_home: Path) -> None:
    m = Memory("ns")
    m.set("k", 1)
    assert isinstance(m.store, SqliteStore)
    assert Path(m.store.path) == _isolated_home / "botwire.db"
    assert (_isolated_home.stat().st_mode & 0o777) == 0o700
    m.close()


def test_env_url_wins_over_default_and_argument_over_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOTWIRE_URL", f"sqlite:///{tmp_path}/env.db")
    assert resolve_url(None) == f"sqlite:///{tmp_path}/env.db"
    assert resolve_url("memory://") == "memory://"
    with Memory("ns") as m:
        m.set("k", 1)
    assert (tmp_path / "env.db").exists()


def test_sqlite_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rel = open_store("sqlite:///rel.db")
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db?synchronous=normal")
    assert Path(rel.path).resolve() == tmp_path / "rel.db"  # type: ignore[attr-defined]
    assert absolute.synchronous == "NORMAL"  # type: ignore[attr-defined]
    rel.close()
    absolute.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "nonsense",
        "sqlite://host/x.db",
        "sqlite:///x.db?synchronous=off",
        "sqlite:///x.db?journal=delete",
    ],
)
def test_bad_urls_raise_invalid_url(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        Memory("ns", url=url)
    assert "sqlite" in str(info.value)


def test_unknown_scheme_names_the_schemes_that_exist() -> None:
    with pytest.raises(InvalidURL, match=r"sqlite://, memory://"):
        Memory("ns", url="ftp://x")


def test_memories_on_one_url_share_one_store_until_the_last_closes() -> None:
    a, b = Memory("a", url="memory://shared"), Memory("b", url="memory://shared")
    assert a.store is b.store and isinstance(a.store, MemoryStore)
    a.set("k", 1)
    store = a.store
    a.close()
    a.close()  # idempotent
    with pytest.raises(StoreClosed):
        a.get("k")
    assert b.get("k") is None and Memory("a", url="memory://shared").get("k") == 1
    b.close()
    assert store.batch("a", []) == []  # one Memory is still open


def test_a_store_passed_in_is_left_open() -> None:
    store = MemoryStore()
    with Memory("ns", url=store) as m:
        m.set("k", 1)
    assert Memory("ns", url=store).get("k") == 1
