"""Checks of the moments and durations that busway's public calls take."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from .errors import InvalidArgumentError

__all__ = ["aware", "duration", "from_micros", "later", "micros"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def aware(value: object, argument: str) -> datetime:
    """Return *value* in UTC if it is an aware datetime, else raise InvalidArgumentError."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidArgumentError(
            argument, value, "an aware datetime (give it a tzinfo, e.g. datetime.UTC)"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:  # its zone's offset takes it out of the calendar, in UTC
        raise InvalidArgumentError(
            argument, value, "a moment from year 1 to 9999 in UTC too"
        ) from None


def duration(value: object, argument: str) -> timedelta:
    """Return *value* as a timedelta if it is one or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return timedelta(seconds=value)
        except (ValueError, OverflowError):  # NaN, an infinity, or beyond timedelta.max
            pass
    raise InvalidArgumentError(
        argument, value, "a timedelta or a finite number of seconds, at most timedelta.max"
    )


def later(moment: datetime, delta: timedelta, argument: str, value: object) -> datetime:
    """Return *moment* + *delta*, or raise InvalidArgumentError if that leaves the calendar."""
    try:
        return moment + delta
    except OverflowError:
        raise InvalidArgumentError(
            argument, value, f"a time that lands before year 10000 from {moment.isoformat()}"
        ) from None


def micros(moment: datetime) -> int:
    """Return aware *moment* as whole microseconds since 1970 UTC: how SQLite stores it."""
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """Return the moment, in UTC, *value* microseconds after 1970 UTC.

    Raise OverflowError if that is before year 1 or after year 9999: no moment busway wrote.
    """
    return _EPOCH + value * _MICROSECOND
