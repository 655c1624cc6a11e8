"""How limits are told to clients: ``Retry-After`` and the IETF RateLimit headers.

The limits themselves are enforced by the store, inside each write's own
transaction (``botwire.stores.base.Limits``), so no race across workers or
replicas lets one more write through.
"""

from __future__ import annotations

import math

from botwire import WriteLimitExceeded

WINDOW = 86400  # one UTC day
# The store knows the limit, not where it is set: the server's 429 says it (the
# move from embedded, which has no limit, to a server meets it first).
WRITE_LIMIT_SETTING = (
    "the server's --writes-per-day / BOTWIRE_SERVER_WRITES_PER_DAY sets it (0 = off)"
)


def rate_limit_headers(exc: WriteLimitExceeded) -> dict[str, str]:
    limit = int(exc.details.get("limit", 0))
    reset = max(1, math.ceil(exc.retry_after))
    return {
        "Retry-After": str(reset),
        "RateLimit-Policy": f'"writes";q={limit};w={WINDOW}',
        "RateLimit": f'"writes";r=0;t={reset}',
    }
