"""botwire: persistent, namespaced key-value memory for AI agents.

from botwire import Memory
memory = Memory("my-agent")            # embedded SQLite, no server
memory.set("user_preferences", {"format": "json"}, ttl=604800)
memory.get("user_preferences", {})     # same answer in another process, tomorrow
"""

from collections.abc import Callable
from typing import Any

from ._errors import (
    AnswerTooLarge,
    ApiKeyIgnoredWarning,
    BadResponse,
    BotwireError,
    Conflict,
    DiskFull,
    Forbidden,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidName,
    InvalidRequest,
    InvalidURL,
    NotFound,
    QuotaExceeded,
    RequestTooLarge,
    StaleReadWarning,
    StoreClosed,
    StoreError,
    TooManyWatchers,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValueNotSerializable,
    ValueTooLarge,
    WriteLimitExceeded,
    WrongType,
)
from ._memory import AsyncMemory, Memory
from ._namespaces import namespaces
from ._session import AsyncSession, Session
from .ops import NOT_PROVIDED, Change, ChangePage, Item, NamespaceInfo, NamespaceStats, NotProvided

__version__ = "0.3.0.dev0"

__all__ = [
    "NOT_PROVIDED",
    "AnswerTooLarge",
    "ApiKeyIgnoredWarning",
    "AsyncMemory",
    "AsyncSession",
    "BadResponse",
    "BotwireError",
    "Change",
    "ChangePage",
    "Conflict",
    "DiskFull",
    "Forbidden",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "InvalidName",
    "InvalidRequest",
    "InvalidURL",
    "Item",
    "Memory",
    "NamespaceInfo",
    "NamespaceStats",
    "NotFound",
    "NotProvided",
    "QuotaExceeded",
    "RequestTooLarge",
    "Session",
    "StaleReadWarning",
    "StoreClosed",
    "StoreError",
    "TooManyWatchers",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "ValueNotSerializable",
    "ValueTooLarge",
    "WriteLimitExceeded",
    "WrongType",
    "namespaces",
    "remember",
]


def remember(
    key: str,
    *,
    namespace: str,
    url: str | None = None,
    api_key: str | None = None,
    **options: Any,
) -> Callable[[Any], Any]:
    """``Memory(namespace, url=url).remember(key, **options)`` without a Memory in scope.

    The memory is opened on the first call, not at import.
    """
    from ._remember import remember as decorator
    from ._validate import check_namespace

    check_namespace(namespace)
    opened: list[Memory] = []

    def memory() -> Memory:
        if not opened:
            opened.append(Memory(namespace, url=url, api_key=api_key))
        return opened[0]

    return decorator(memory, key, **options)
