"""What every store does about closing: once, for good, and on leaving a ``with`` block."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Self

from .errors import StoreClosedError

__all__ = ["Closeable"]


class Closeable:
    """A store that :meth:`close` shuts for good; :meth:`_check_open` guards every use.

    A subclass sets ``_lock`` (the lock its work runs under), names what it keeps in
    ``_holds`` (for the error after closing), and lets go of it in :meth:`_release`.
    """

    _lock: AbstractContextManager[object]
    _closed = False
    _holds = "events"

    def close(self) -> None:
        """Release the store's resources for good; closing twice is harmless."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._release()

    def _release(self) -> None:
        """Let go of what the store holds, once, under its lock; by default, nothing."""

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(self, holds=self._holds)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
