"""The one retry policy every store uses (``stores/_backoff.py``)."""

from __future__ import annotations

import time

from botwire.stores._backoff import Backoff


def test_pauses_grow_with_full_jitter_up_to_the_cap() -> None:
    policy = Backoff(3600, base=0.01, cap=0.08)
    pauses = [policy.pause() for _ in range(200)]
    assert all(p is not None and 0 <= p <= 0.08 for p in pauses)
    assert max(p for p in pauses[:1] if p is not None) <= 0.01  # the first is within base
    assert policy.attempt == 200


def test_a_floor_is_kept_and_no_pause_ends_past_the_deadline() -> None:
    policy = Backoff(1.0, base=0.001, cap=0.002)
    assert policy.pause(floor=0.5) == 0.5  # Retry-After is a lower bound
    assert policy.pause(floor=5.0) is None  # it would end past the deadline
    assert Backoff(0.0, base=0.001, cap=0.002).pause() is None


def test_many_attempts_never_overflow() -> None:
    policy = Backoff(3600, base=0.05, cap=2.0)
    policy.attempt = 10_000
    pause = policy.pause()
    assert pause is not None and 0 <= pause <= 2.0
    assert policy.left() <= 3600 and policy.deadline > time.monotonic()
