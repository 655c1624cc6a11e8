"""Backends. Each implements :class:`Store` (one ``batch`` primitive).

========= ===================================================================
module    use
========= ===================================================================
sqlite    the embedded default; WAL, safe for many processes on one host
postgres  many server replicas (``pip install 'botwire[postgres]'``)
http      the client of a botwire server
cached    a read cache in front of a remote store
memory    in-process, for tests and examples
========= ===================================================================

``default_home()`` is where embedded stores live (``$BOTWIRE_HOME`` or the
user data directory).
"""

from ._backoff import Backoff, after_lost_race
from .base import (
    DAY,
    AsyncClosing,
    Clocked,
    GroupCommit,
    GroupItem,
    Limits,
    Listing,
    LocalIO,
    Revalidating,
    Store,
    Sweeping,
    aclose,
    namespaces,
    now,
    utc_day,
)

__all__ = [
    "DAY",
    "AsyncClosing",
    "Backoff",
    "Clocked",
    "GroupCommit",
    "GroupItem",
    "Limits",
    "Listing",
    "LocalIO",
    "Revalidating",
    "Store",
    "Sweeping",
    "aclose",
    "after_lost_race",
    "default_home",
    "namespaces",
    "now",
    "utc_day",
]


def default_home(home: str | None = None) -> str:
    """``home``, else ``$BOTWIRE_HOME``, else the user data directory; created 0700."""
    from .._registry import default_home as find  # (the registry imports this package)

    return find(home)
