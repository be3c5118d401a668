"""A small bank shared by the aggregate and snapshot tests: accounts that open and take deposits."""

from __future__ import annotations

from typing import Any

import attrs

from busway import Event
from busway.aggregates import Aggregate, when
from busway.eventstore import EventTypes


@attrs.frozen
class Opened(Event):
    owner: str


@attrs.frozen
class Deposited(Event):
    amount: int


@attrs.frozen
class BonusDeposited(Deposited):
    """A subclass: applied by the Deposited applier unless it has its own."""


@attrs.frozen
class Closed(Event):
    pass


@attrs.frozen
class Unhandled(Event):
    pass


class BankAccount(Aggregate):
    owner: str
    balance: int
    history: list[int]

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner = ""
        self.balance = 0
        self.history = []

    @classmethod
    def open(cls, id: str, owner: str) -> BankAccount:
        account = cls(id)
        account.record(Opened(owner))
        return account

    def deposit(self, amount: int) -> None:
        self.record(Deposited(amount))

    @when(Opened)
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner

    @when(Deposited)
    def _deposited(self, event: Deposited) -> None:
        if event.amount < 0:
            raise ValueError("a deposit is positive")
        self.balance += event.amount
        self.history.append(event.amount)


TYPES = EventTypes(Opened, Deposited, BonusDeposited, Closed, Unhandled)


def state(aggregate: Aggregate) -> dict[str, Any]:
    """Return what an aggregate is: its id, version and state, not its pending events."""
    return {k: v for k, v in vars(aggregate).items() if k != "_pending"}
