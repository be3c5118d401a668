"""An application the command tests point the busway command at: events, a projection, sagas."""

from __future__ import annotations

import os

import attrs

from busway import AsyncCommandBus, Command, CommandBus
from busway.eventstore import EventTypes, RecordedEvent
from busway.projections import Projection, when
from busway.sagas import Saga, starts


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


# -- sagas -----------------------------------------------------------------------------------

NOTES = "BUSWAY_TEST_NOTES"
"""The file the command handlers write to, one line a command: how a test sees them sent."""
LENIENT = "BUSWAY_TEST_LENIENT"
"""Set to 1 for sagas that take negative deposits too (for replaying parked ones)."""


@attrs.frozen
class Notify(Command[None]):
    account: str
    amount: int


@attrs.define
class Notifier(Saga):
    """Tells of each account's first deposit; refuses a negative one unless lenient."""

    account: str = ""

    @starts(Deposited, key="account")
    def deposited(self, event: Deposited) -> None:
        if event.amount < 0 and os.environ.get(LENIENT) != "1":
            raise ValueError(f"negative deposit of {event.amount}")
        self.account = event.account
        self.send(Notify(event.account, event.amount))


def _note(command: Notify) -> None:
    with open(os.environ[NOTES], "a", encoding="utf-8") as notes:
        notes.write(f"{command.account} {command.amount}\n")


def commands() -> CommandBus:
    """Return the bus Notifier's commands go to, which writes each to the notes file."""
    bus = CommandBus()
    bus.register(Notify, _note)
    return bus


def async_commands() -> AsyncCommandBus:
    """Return the async bus for Notifier's commands, which writes each to the notes file."""

    async def note(command: Notify) -> None:
        _note(command)

    bus = AsyncCommandBus()
    bus.register(Notify, note)
    return bus
