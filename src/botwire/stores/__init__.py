"""Backends. Each implements :class:`Store` (one ``batch`` primitive).

========= ===================================================================
module    use
========= ===================================================================
sqlite    the embedded default; WAL, safe for many processes on one host
memory    in-process, for tests and examples
========= ===================================================================
"""

from .base import Store

__all__ = ["Store"]
