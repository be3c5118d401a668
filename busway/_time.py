"""Checks of the moments and durations that busway's public calls take."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .errors import InvalidArgumentError

__all__ = ["aware", "duration", "later"]


def aware(value: object, argument: str) -> datetime:
    """Return *value* in UTC if it is an aware datetime, else raise InvalidArgumentError."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidArgumentError(
            argument, value, "an aware datetime (give it a tzinfo, e.g. datetime.UTC)"
        )
    return value.astimezone(UTC)


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
