"""What every sync PostgreSQL store does around its flows: open once, run, close for good."""

from __future__ import annotations

import threading
from typing import TypeVar

from .._closeable import Closeable
from ._db import Database, Flow

__all__ = ["PostgresStore"]

T = TypeVar("T")


class PostgresStore(Closeable):
    """A store on a :class:`Database`; its flows run on the pool, side by side across threads.

    The lock only makes closing happen once: work does not wait on other threads' work
    here, but on the server's locks and the pool's connections.
    """

    def __init__(self, db: Database) -> None:
        self._lock = threading.Lock()
        self._db = db

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} {self._db.location}{state}>"

    def _run(self, flow: Flow[T]) -> T:
        """Run *flow* in one transaction, the tables checked (and made) on first use."""
        self._check_open()
        self._db.ready()
        return self._db.run(flow)

    def _release(self) -> None:
        self._db.close()
