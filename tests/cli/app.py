"""An application the command tests point the busway command at: its events and a projection."""

from __future__ import annotations

import attrs

from busway.eventstore import EventTypes, RecordedEvent
from busway.projections import Projection, when


@attrs.frozen
class Deposited:
    account: str
    amount: int


TYPES = EventTypes(Deposited)

TOTALS: dict[str, int] = {}


class Totals(Projection):
    """Sums deposits per account; refuses negative ones (which then get parked) if strict."""

    name = "totals"

    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict

    @when(Deposited)
    def on_deposit(self, event: Deposited, recorded: RecordedEvent) -> None:
        if event.amount < 0 and self.strict:
            raise ValueError(f"negative deposit of {event.amount}")
        TOTALS[event.account] = TOTALS.get(event.account, 0) + event.amount

    def reset(self) -> None:
        TOTALS.clear()


def forgiving() -> Totals:
    """Return a Totals that takes negative deposits too (for replaying parked ones)."""
    return Totals(strict=False)


class Interrupted(Projection):
    """A projection whose handler is stopped as if by Ctrl-C."""

    name = "interrupted"

    @when(Deposited)
    def on_deposit(self, event: Deposited, recorded: RecordedEvent) -> None:
        raise KeyboardInterrupt

    def reset(self) -> None:
        pass
