"""Every item under a prefix, a page at a time: the loop adapters use to read a key range."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ._errors import AnswerTooLarge
from .ops import Op, Record, Scan


def scan_all(
    batch: Callable[[list[Op]], list[Any]], prefix: str, *, after: str | None = None, page: int
) -> Iterator[tuple[str, Record]]:
    """Every live item under ``prefix`` (after ``after``) through ``batch`` (``Memory.batch``),
    ``page`` at a time; a page is halved while its answer is over the store's
    ``max_answer_bytes``."""
    while True:
        try:
            (rows,) = batch([Scan(prefix, after=after, limit=page)])
        except AnswerTooLarge:
            if page == 1:
                raise
            page = max(1, page // 2)
            continue
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1][0]
