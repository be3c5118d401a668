"""What a subscription does when its handlers fail on an event: stop, retry, or park it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeAlias, final

import attrs

from ..errors import InvalidArgumentError
from ..middleware import exponential_backoff

__all__ = ["OnError", "Park", "Retry", "Stop", "check_policy"]


@final
@attrs.frozen
class Stop:
    """Stop the subscription at the event (the default).

    Nothing of the event is kept and the checkpoint stays before it: the next run starts
    with it again, once the cause is fixed.
    """


@final
@attrs.frozen
class Park:
    """Set the event aside in the dead-letter table and go on with the next one.

    The event is listed by ``parked()`` until it is replayed; parking it and moving the
    checkpoint past it commit together, so it is never lost.
    """


_DEFAULT_BACKOFF: Final = exponential_backoff(initial=0.1, factor=2.0, maximum=10.0)


def _check_attempts(instance: object, attribute: object, value: object) -> None:
    if type(value) is not int or value < 1:
        raise InvalidArgumentError("attempts", value, "an int of 1 or more")


def _check_backoff(instance: object, attribute: object, value: object) -> None:
    if not callable(value):
        raise InvalidArgumentError(
            "backoff", value, "a function from the number of failures to seconds"
        )


def _check_then(instance: object, attribute: object, value: object) -> None:
    if not isinstance(value, Stop | Park):
        raise InvalidArgumentError("then", value, "Stop() or Park()")


@final
@attrs.frozen
class Retry:
    """Try the event again up to *attempts* more times, waiting *backoff(n)* seconds first.

    After the last failure, do what *then* says: stop there (the default) or park the
    event and go on. Events before it are kept meanwhile.
    """

    attempts: int = attrs.field(default=3, validator=_check_attempts)
    backoff: Callable[[int], float] = attrs.field(
        default=_DEFAULT_BACKOFF, validator=_check_backoff
    )
    then: Stop | Park = attrs.field(factory=Stop, validator=_check_then)


OnError: TypeAlias = Stop | Retry | Park
"""A subscription's failure policy."""


def check_policy(on_error: object) -> OnError:
    """Return *on_error* if it is a failure policy; raise InvalidArgumentError otherwise."""
    if not isinstance(on_error, Stop | Retry | Park):
        raise InvalidArgumentError("on_error", on_error, "Stop(), Retry(...) or Park()")
    return on_error
