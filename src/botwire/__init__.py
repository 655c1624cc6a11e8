"""botwire: persistent, namespaced key-value memory for AI agents.

from botwire import Memory
memory = Memory("my-agent")            # embedded SQLite, no server
memory.set("user_preferences", {"format": "json"}, ttl=604800)
memory.get("user_preferences", {})     # same answer in another process, tomorrow
"""

from ._errors import (
    BotwireError,
    Conflict,
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
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValueNotSerializable,
    ValueTooLarge,
    WriteLimitExceeded,
    WrongType,
)
from ._memory import AsyncMemory, Memory
from ._ops import Item

__version__ = "0.3.0.dev0"

__all__ = [
    "AsyncMemory",
    "BotwireError",
    "Conflict",
    "Forbidden",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "InvalidName",
    "InvalidRequest",
    "InvalidURL",
    "Item",
    "Memory",
    "NotFound",
    "QuotaExceeded",
    "RequestTooLarge",
    "StaleReadWarning",
    "StoreClosed",
    "StoreError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "ValueNotSerializable",
    "ValueTooLarge",
    "WriteLimitExceeded",
    "WrongType",
]
