"""Time as busway reads it: a :class:`Clock` protocol, the system clock, and a fake one.

Anything that waits for a moment (saga deadlines, above all) asks a clock for the time
instead of calling :func:`datetime.now` itself, so that a test can hand it a
:class:`FakeClock` and move time by hand instead of sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol, final, runtime_checkable

from ._time import aware, duration, later
from .errors import InvalidArgumentError

__all__ = ["Clock", "FakeClock", "SystemClock"]

_START: Final = datetime(2000, 1, 1, tzinfo=UTC)


@runtime_checkable
class Clock(Protocol):
    """Tells the current time."""

    def now(self) -> datetime:
        """Return the current time as an aware datetime in UTC."""
        ...


@final
class SystemClock:
    """The operating system's clock."""

    def now(self) -> datetime:
        """Return the current time as an aware datetime in UTC."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


@final
class FakeClock:
    """A clock that stands still until told to move, for tests.

    It starts at 2000-01-01 00:00 UTC unless given another aware datetime. :meth:`advance`
    moves it forwards; :meth:`set` puts it anywhere, backwards too, as a system clock
    corrected by NTP may jump. Threads may share it.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _START if start is None else aware(start, "start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Return the time the clock shows."""
        with self._lock:
            return self._now

    def advance(self, by: timedelta | float) -> datetime:
        """Move the clock forwards *by* a timedelta or a number of seconds; return the new time."""
        delta = duration(by, "by")
        if delta < timedelta(0):
            raise InvalidArgumentError(
                "by", by, "zero or more (use set() to move the clock backwards)"
            )
        with self._lock:
            self._now = later(self._now, delta, "by", by)
            return self._now

    def set(self, when: datetime) -> datetime:
        """Put the clock at *when*, an aware datetime, earlier or later; return it in UTC."""
        moment = aware(when, "when")
        with self._lock:
            self._now = moment
            return moment

    def __repr__(self) -> str:
        return f"FakeClock({self.now().isoformat()})"
