"""``botwire.namespaces()``: the namespaces of a store, with their sizes."""

from __future__ import annotations

from . import _registry
from ._validate import check_prefix
from .ops import NamespaceInfo
from .stores.base import namespaces as page_of

PAGE = 1000


def namespaces(
    url: str | None = None, *, api_key: str | None = None, prefix: str = "", timeout: float = 10.0
) -> list[NamespaceInfo]:
    """Every namespace holding live keys on the store ``url`` names (resolved as ``Memory``
    resolves it: ``$BOTWIRE_URL``, else the embedded file), in order, each with its keys,
    bytes and writes today; over a server, the namespaces the token reaches."""
    prefix = check_prefix(prefix)
    store = _registry.acquire(url, api_key=api_key, timeout=timeout)
    try:
        found: list[NamespaceInfo] = []
        after = None
        while True:
            page = page_of(store, prefix, after, PAGE)
            found += page
            if len(page) < PAGE:
                return found
            after = page[-1].namespace
    finally:
        if _registry.release(store):
            store.close()
