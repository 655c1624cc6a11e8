"""The one error tree of botwire.

Every class has a stable ``code`` (the ``error.code`` field of a server error
body) and the HTTP ``status`` the server answers with. The server maps
exceptions to responses through this table and the HTTP client maps bodies back
with :func:`error_for_code`, so the same failure raises the same class whether
the store is embedded or remote.

    BotwireError                              500 error
    ├── InvalidRequest (ValueError)           400 invalid_request
    │   ├── InvalidName                       400 invalid_name
    │   ├── ValueNotSerializable (TypeError)  400 value_not_serializable
    │   ├── InvalidURL                        400 invalid_url
    │   ├── AnswerTooLarge                    400 answer_too_large
    │   └── UnsupportedMediaType              415 unsupported_media_type
    ├── Unauthorized                          401 unauthorized
    ├── Forbidden                             403 forbidden
    ├── NotFound (KeyError)                   404 not_found
    ├── Conflict                              409 conflict
    ├── WrongType (TypeError)                 409 wrong_type
    ├── IdempotencyKeyInUse                   409 idempotency_key_in_use
    ├── ValueTooLarge                         413 value_too_large
    ├── RequestTooLarge                       413 request_too_large
    ├── IdempotencyKeyReused                  422 idempotency_key_reused
    ├── WriteLimitExceeded                    429 write_limit_exceeded
    ├── StoreError                            500 store_error
    │   ├── StoreClosed                       500 store_closed
    │   └── BadResponse                       502 bad_response
    ├── Unavailable                           503 unavailable
    │   ├── DiskFull                          503 disk_full
    │   └── TooManyWatchers                   503 too_many_watchers
    └── QuotaExceeded                         507 quota_exceeded

    UserWarning
    ├── StaleReadWarning      a read cache served a value the server could not vouch for
    └── ApiKeyIgnoredWarning  an open-mode server ignores the API key sent
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar


class BotwireError(Exception):
    """Base of every error botwire raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object of a server response body."""
        return {"code": self.code, "message": self.message, **self.details}


class InvalidRequest(BotwireError, ValueError):
    """An argument is out of range or malformed (a TTL of -1, a limit of 0...)."""

    code = "invalid_request"
    status = 400


class InvalidName(InvalidRequest):
    """A namespace or key breaks the naming rules; raised before any I/O."""

    code = "invalid_name"


class ValueNotSerializable(InvalidRequest, TypeError):
    """A value is not plain JSON or would change in a JSON round trip."""

    code = "value_not_serializable"


class InvalidURL(InvalidRequest):
    """A store URL has an unknown scheme or a malformed option."""

    code = "invalid_url"


class AnswerTooLarge(InvalidRequest):
    """The values a batch asked for add up to more than one answer may carry.

    ``limit`` is the server's ``max_answer_bytes``: ask for fewer keys, or page
    a scan with a smaller ``limit``.
    """

    code = "answer_too_large"


class UnsupportedMediaType(InvalidRequest):
    """A request body was not declared as JSON."""

    code = "unsupported_media_type"
    status = 415


class Unauthorized(BotwireError):
    """No valid API token was presented."""

    code = "unauthorized"
    status = 401


class Forbidden(BotwireError):
    """The token is valid but does not reach this namespace or operation."""

    code = "forbidden"
    status = 403


class NotFound(BotwireError, KeyError):
    """The key does not exist (or has expired) where one was required."""

    code = "not_found"
    status = 404

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return self.message


class Conflict(BotwireError):
    """A version check failed: someone else changed the key first.

    ``keys`` names every key whose version did not match.
    """

    code = "conflict"
    status = 409

    def __init__(self, message: str = "", *, keys: Iterable[str] = (), **details: Any) -> None:
        self.keys = list(keys)
        if not message:
            message = "version mismatch on " + ", ".join(repr(k) for k in self.keys)
        super().__init__(message, keys=self.keys, **details)


class WrongType(BotwireError, TypeError):
    """``incr`` on a non-number, or ``append`` on a non-list."""

    code = "wrong_type"
    status = 409


class IdempotencyKeyInUse(BotwireError):
    """A request with the same Idempotency-Key is still being processed."""

    code = "idempotency_key_in_use"
    status = 409


class ValueTooLarge(BotwireError):
    """One value is over the per-value size limit."""

    code = "value_too_large"
    status = 413


class RequestTooLarge(BotwireError):
    """A request body is over the configured maximum."""

    code = "request_too_large"
    status = 413


class IdempotencyKeyReused(BotwireError):
    """An Idempotency-Key was reused with a different request."""

    code = "idempotency_key_reused"
    status = 422


class WriteLimitExceeded(BotwireError):
    """The namespace used up its writes for the current UTC day.

    ``retry_after`` is the number of seconds until the window resets.
    """

    code = "write_limit_exceeded"
    status = 429

    def __init__(self, message: str = "", *, retry_after: float = 0.0, **details: Any) -> None:
        self.retry_after = float(retry_after)
        super().__init__(message, retry_after=self.retry_after, **details)


class StoreError(BotwireError):
    """The storage engine failed in a way botwire could not recover from."""

    code = "store_error"
    status = 500


class StoreClosed(StoreError):
    """The ``Memory`` (or its store) was closed."""

    code = "store_closed"


class BadResponse(StoreError):
    """The server's answer could not be read (not JSON, or not the expected shape).

    Seen behind a misconfigured proxy, or a ``BOTWIRE_URL`` that points at
    something other than a botwire server.
    """

    code = "bad_response"
    status = 502


class Unavailable(BotwireError):
    """The store could not be reached (or stayed locked) within the time budget."""

    code = "unavailable"
    status = 503


class DiskFull(Unavailable):
    """The disk (or database volume) holding the data is full; nothing was written.

    Writes succeed again once space is freed; ``retry_after`` (seconds) is a hint.
    Distinct from :class:`QuotaExceeded`, which is this namespace's own limit.
    """

    code = "disk_full"

    def __init__(self, message: str = "", *, retry_after: float = 5.0, **details: Any) -> None:
        self.retry_after = float(retry_after)
        super().__init__(message, retry_after=self.retry_after, **details)


class TooManyWatchers(Unavailable):
    """The server holds as many waiting watch requests as it allows (its own, or this
    token's share); ``retry_after`` (seconds) says when to ask again."""

    code = "too_many_watchers"

    def __init__(self, message: str = "", *, retry_after: float = 1.0, **details: Any) -> None:
        self.retry_after = float(retry_after)
        super().__init__(message, retry_after=self.retry_after, **details)


class QuotaExceeded(BotwireError):
    """The namespace would grow past its storage quota."""

    code = "quota_exceeded"
    status = 507


def _all_subclasses(cls: type[BotwireError]) -> list[type[BotwireError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


ERRORS_BY_CODE: dict[str, type[BotwireError]] = {c.code: c for c in _all_subclasses(BotwireError)}


def error_for_code(code: str, message: str = "", **details: Any) -> BotwireError:
    """Rebuild the exception a server error body describes (unknown codes give ``BotwireError``)."""
    cls = ERRORS_BY_CODE.get(code, BotwireError)
    try:
        return cls(message, **details)
    except (TypeError, ValueError):  # details that do not fit the class's keywords
        return cls(message)


class StaleReadWarning(UserWarning):
    """A read cache served a value it could not revalidate (the server was unreachable)."""


class ApiKeyIgnoredWarning(UserWarning):
    """The server runs in open mode: the API key this client sends is ignored.

    Given once per store, on the first answer that says so (``Botwire-Auth: open``).
    """
