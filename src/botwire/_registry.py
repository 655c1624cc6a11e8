"""Store URLs, and the process-wide table of open stores.

Every ``Memory`` for the same URL in a process shares one store (one SQLite
connection per thread, later one HTTP pool and one cache), so creating a
``Memory`` per user costs a dict look-up. A store is closed when the last
``Memory`` using it is closed.

URL resolution: the ``url`` argument, then ``$BOTWIRE_URL``, then an embedded
SQLite file ``botwire.db`` in ``$BOTWIRE_HOME`` or the platform's user data
directory (``~/.local/share/botwire`` on Linux).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

from ._errors import InvalidURL
from .stores.base import Store


class CacheSettings(NamedTuple):
    """How a remote store's read cache behaves (see ``botwire.stores.cached``)."""

    enabled: bool = True
    max_stale: float = 1.0
    stale_if_error: bool = False


DEFAULT_CACHE = CacheSettings()
_lock = threading.Lock()
_open: dict[tuple[str, str | None, float, CacheSettings | None], list[Store | int]] = {}


def resolve_url(url: str | None) -> str:
    """The URL a ``Memory`` with ``url=url`` uses."""
    return url or os.environ.get("BOTWIRE_URL") or _default_url(os.environ.get("BOTWIRE_HOME"))


@lru_cache(maxsize=8)
def _default_url(home: str | None) -> str:
    return "sqlite:///" + default_home(home) + "/botwire.db"


def default_home(home: str | None = None) -> str:
    """``home``, else ``$BOTWIRE_HOME``, else the user data directory; created 0700."""
    from pathlib import Path

    home = home or os.environ.get("BOTWIRE_HOME")
    if not home:
        import platformdirs  # only needed for the default location

        home = platformdirs.user_data_dir("botwire", appauthor=False)
    path = Path(home).absolute()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return str(path)


def acquire(
    url: str | None,
    *,
    api_key: str | None = None,
    timeout: float = 10.0,
    cache: CacheSettings = DEFAULT_CACHE,
) -> Store:
    """The shared store for ``url``, opened on first use; pair with :func:`release`."""
    resolved = resolve_url(url)
    remote = resolved.partition(":")[0].lower() in _REMOTE
    if remote:  # the credentials in force, however given: they key the store and its cache
        api_key = effective_api_key(api_key)
    key = (resolved, api_key, timeout, cache if remote else None)
    with _lock:
        entry = _open.get(key)
        if entry is None:
            try:
                store = open_store(resolved, timeout=timeout, api_key=api_key, cache=cache)
            except InvalidURL as exc:
                if url or not os.environ.get("BOTWIRE_URL"):
                    raise
                raise InvalidURL(f"{exc} (the URL came from $BOTWIRE_URL)") from None
            entry = _open[key] = [store, 0]
        entry[1] += 1  # type: ignore[operator]
        return entry[0]  # type: ignore[return-value]


def _close_all() -> None:
    """At exit: close what is still open (``Memory`` objects nobody closed), cleanly."""
    with _lock:
        stores = [entry[0] for entry in _open.values()]
        _open.clear()
    for store in stores:
        with contextlib.suppress(Exception):  # exiting anyway: never mask the real exit
            store.close()  # type: ignore[union-attr]


atexit.register(_close_all)


def release(store: Store) -> bool:
    """Drop one use of ``store``; ``True`` when that was the last (the caller closes it)."""
    with _lock:
        for key, entry in _open.items():
            if entry[0] is store:
                entry[1] -= 1  # type: ignore[operator]
                if entry[1] == 0:
                    del _open[key]
                    return True
                return False
    return False


def open_store(
    url: str,
    *,
    timeout: float = 10.0,
    api_key: str | None = None,
    cache: CacheSettings = DEFAULT_CACHE,
) -> Store:
    """A new store for ``url`` (not shared); raises :class:`InvalidURL`.

    A remote store uses ``api_key``, else ``$BOTWIRE_API_KEY``, and gets a read
    cache of its own for those credentials unless ``cache.enabled`` is false.
    """
    scheme = url.partition(":")[0].lower()
    opener = _SCHEMES.get(scheme)
    if opener is None or "://" not in url:
        known = ", ".join(f"{s}://" for s in _SCHEMES)
        guess = suggest_url(url)
        if guess:
            raise InvalidURL(f"{url!r} is not a store URL: did you mean {guess!r}? ({known})")
        raise InvalidURL(f"unknown store URL {url!r}: the schemes are {known}")
    if scheme in _REMOTE:
        api_key = effective_api_key(api_key)
    store = opener(url, timeout, api_key)
    if scheme not in _REMOTE or not cache.enabled:
        return store
    from .stores.cached import CachedStore

    return CachedStore(
        store,
        cache_dir(url, api_key),
        max_stale=cache.max_stale,
        stale_if_error=cache.stale_if_error,
    )


_HOST_PORT = re.compile(r"[A-Za-z0-9.\-]+:[0-9]{1,5}(/.*)?")
_DRIVE = re.compile(r"[A-Za-z]:[\\/].*")  # C:\agent.db


def suggest_url(url: str) -> str | None:
    """The store URL ``url`` was probably meant to be, or ``None``.

    A bare path (``agent.db``, ``./agent.db``, ``/srv/a.db``, ``~/a.db``) is a SQLite
    file; ``host:8787`` a server; ``sqlite:agent.db`` lacks its slashes.
    """
    text = url.strip()
    if not text or "://" in text:
        return None
    scheme, _, rest = text.partition(":")
    if scheme.lower() == "sqlite" and rest:
        return "sqlite:///" + rest
    if _HOST_PORT.fullmatch(text):
        return "http://" + text
    if text.lower() == "memory":
        return "memory://"
    if ":" in text and not _DRIVE.fullmatch(text):
        return None
    return "sqlite:///" + os.path.expanduser(text)


def cache_dir(url: str, api_key: str | None, root: str | None = None) -> str:
    """Where the read cache of ``url`` lives: one directory per server and credential.

    ``root``, else ``$BOTWIRE_CACHE_DIR``, else the user cache directory (``~/.cache/botwire``
    on Linux), then a hash of the URL and API key, so a token never reads what
    another token cached.
    """
    import hashlib

    root = root or os.environ.get("BOTWIRE_CACHE_DIR")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("botwire", appauthor=False)
    digest = hashlib.sha256(f"{url}\n{api_key or ''}".encode()).hexdigest()[:20]
    return os.path.join(root, digest)


def _open_sqlite(url: str, timeout: float, api_key: str | None) -> Store:
    from urllib.parse import parse_qsl, urlsplit

    from .stores.sqlite import SqliteStore

    parts = urlsplit(url)
    # sqlite:///relative.db and sqlite:////absolute/path.db, as in SQLAlchemy
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        guess = f"; did you mean 'sqlite:///{parts.netloc}{parts.path}'?" if parts.netloc else ""
        raise InvalidURL(
            f"{url!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db{guess}"
        )
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    synchronous = options.pop("synchronous", "full")
    if options:
        raise InvalidURL(f"{url!r}: unknown option(s) {sorted(options)}; known: synchronous")
    return SqliteStore(parts.path[1:], synchronous=synchronous, timeout=timeout)


def _open_memory(url: str, timeout: float, api_key: str | None) -> Store:
    from .stores.memory import MemoryStore

    return MemoryStore()


def _open_postgres(url: str, timeout: float, api_key: str | None) -> Store:
    try:
        from .stores.postgres import PostgresStore
    except ImportError:
        raise InvalidURL(f"{url!r} needs psycopg: pip install 'botwire[postgres]'") from None

    return PostgresStore(url, timeout=timeout)


def _open_http(url: str, timeout: float, api_key: str | None) -> Store:
    from .stores.http import HttpStore

    return HttpStore(url, api_key=api_key, timeout=timeout)


def effective_api_key(api_key: str | None) -> str | None:
    """The API key a remote store sends: the argument, else ``$BOTWIRE_API_KEY``."""
    return api_key or os.environ.get("BOTWIRE_API_KEY") or None


_SCHEMES: dict[str, Callable[[str, float, str | None], Store]] = {
    "sqlite": _open_sqlite,
    "memory": _open_memory,
    "http": _open_http,
    "https": _open_http,
    "postgresql": _open_postgres,
    "postgres": _open_postgres,
}
_REMOTE = {"http", "https"}
# the schemes whose stores get a read cache
