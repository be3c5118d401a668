"""Checks for the moments and durations that busway takes as arguments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .errors import InvalidArgumentError

__all__ = ["aware", "duration"]


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
        return timedelta(seconds=value)
    raise InvalidArgumentError(argument, value, "a timedelta or a number of seconds")
