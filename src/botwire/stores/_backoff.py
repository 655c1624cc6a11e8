"""The one retry policy: capped exponential backoff with full jitter, inside one deadline.

Every loop that retries (SQLite while the file is locked, PostgreSQL after a
deadlock or a lost connection, HTTP after a 429/5xx or a transport error, the
read cache while another process opens it, a compare-and-set that lost a race)
asks a :class:`Backoff` how long to wait; it says ``None`` when waiting would
end past the call's deadline, and the caller then raises what it last saw.
"""

from __future__ import annotations

import random
import time


class Backoff:
    """Pauses for one call's retries: attempt ``n`` waits ``uniform(0, min(cap, base * 2**n))``.

    ``floor`` (a server's ``Retry-After``) is a lower bound for one pause.
    """

    __slots__ = ("attempt", "base", "cap", "deadline")

    def __init__(self, timeout: float, *, base: float, cap: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.base = base
        self.cap = cap
        self.attempt = 0

    def left(self) -> float:
        """Seconds until the deadline (negative once past it)."""
        return self.deadline - time.monotonic()

    def pause(self, floor: float = 0.0) -> float | None:
        """How long to wait before the next attempt, or ``None``: it would end too late."""
        jitter = random.uniform(0, min(self.cap, self.base * 2 ** min(self.attempt, 32)))
        self.attempt += 1
        wait = max(floor, jitter)
        return None if wait > self.left() else wait


def after_lost_race() -> Backoff:
    """Between the retries of a compare-and-set that lost to another writer (``update``, a
    history's append): jittered pauses growing to 0.1 s, bounded by the caller's attempts."""
    return Backoff(float("inf"), base=0.001, cap=0.1)
