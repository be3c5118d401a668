"""Strategies derived from field types, and the aggregate machine catching broken aggregates."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from decimal import Decimal

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule, run_state_machine_as_test

from busway.aggregates import Aggregate, when
from busway.eventstore import EventTypes
from busway.testing import AggregateMachine, ScenarioError
from busway.testing.strategies import event_streams, histories, messages, strategy_for


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Part:
    name: str
    price: Decimal


@dataclasses.dataclass(frozen=True)
class Built:
    parts: tuple[Part, ...]
    colour: Colour
    weight: float
    note: str | None = None
    tags: frozenset[str] = frozenset()
    at: datetime | None = None
    extra: dict[str, int] = dataclasses.field(default_factory=dict)
    pair: tuple[int, str] = (0, "")
    sizes: list[int] = dataclasses.field(default_factory=list)


TYPES = EventTypes(Built)


@settings(max_examples=50)
@given(messages(Built, colour=Colour.RED))
def test_messages_survive_the_serializer(event: Built) -> None:
    """Every drawn message is storable and reads back equal; overrides may be plain values."""
    assert Colour.RED == event.colour
    name, version, payload = TYPES.encode(event)
    assert event == TYPES.decode(name, version, payload, position=0)


def test_messages_refuse_what_they_cannot_build() -> None:
    """Unknown fields and plain classes are refused with the fields to use."""
    with pytest.raises(ScenarioError, match=r"takes no field 'colour_' \(it takes: parts"):
        messages(Built, colour_=Colour.RED)
    with pytest.raises(ScenarioError, match="attrs classes and dataclasses"):
        messages(int)
    with pytest.raises(ScenarioError, match="at least one event class"):
        event_streams()  # type: ignore[call-overload]  # what an untyped caller meets
    assert strategy_for(set[int]) is not None


@settings(max_examples=20)
@given(event_streams(Part, Built, min_size=1, max_size=3, name="bolt"))
def test_event_streams_apply_overrides_where_the_field_exists(events: list[object]) -> None:
    """An override reaches every class that has the field."""
    assert 1 <= len(events) <= 3
    assert all(e.name == "bolt" for e in events if isinstance(e, Part))


@attrs.frozen
class Opened:
    owner: str


@attrs.frozen
class Deposited:
    amount: int


class Refused(Exception):
    pass


class Account(Aggregate):
    """An account whose deposits can be made to misbehave, to show what the machine catches."""

    owner: str
    balance: int
    sloppy = False  # deposit() also changes the balance outside @when
    stubborn = False  # a refused deposit still changes the balance

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner = ""
        self.balance = 0

    @classmethod
    def open(cls, owner: str) -> Account:
        account = cls("a-1")
        account.record(Opened(owner))
        return account

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            if self.stubborn:
                self.balance += 1
            raise Refused(amount)
        self.record(Deposited(amount))
        if self.sloppy:
            self.balance += 1

    @when(Opened)
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner

    @when(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount


class AccountMachine(AggregateMachine[Account]):
    types = EventTypes(Opened, Deposited)
    refused = (Refused,)

    @initialize(owner=st.sampled_from(["ann", ""]))
    def open(self, owner: str) -> None:
        self.create(lambda: Account.open(owner))

    @rule(amount=st.integers(-1, 5))
    def deposit(self, amount: int) -> None:
        self.attempt(lambda account: account.deposit(amount))

    def check_aggregate(self, aggregate: Account) -> None:
        assert aggregate.balance >= 0


FAST = settings(max_examples=30, suppress_health_check=list(HealthCheck), database=None)


def test_a_sound_aggregate_passes() -> None:
    """The machine passes an aggregate whose state comes only from its events."""
    run_state_machine_as_test(AccountMachine, settings=FAST)


def test_state_changed_outside_when_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that changes state outside @when makes a replay differ from the live one."""
    monkeypatch.setattr(Account, "sloppy", True)
    with pytest.raises(AssertionError, match="replaying the stored events gives another state"):
        run_state_machine_as_test(AccountMachine, settings=FAST)


def test_a_refusal_that_changes_state_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused command must leave the aggregate as it was."""
    monkeypatch.setattr(Account, "stubborn", True)
    with pytest.raises(AssertionError, match="balance: expected 0, got 1"):
        run_state_machine_as_test(AccountMachine, settings=FAST)


def test_the_machine_needs_types_and_an_aggregate() -> None:
    """A machine without types, or used before create(), says what to do."""

    class Untyped(AggregateMachine[Account]):
        @rule()
        def nothing(self) -> None:
            pass

    with pytest.raises(ScenarioError, match=r"set types = EventTypes"):
        Untyped()
    machine = AccountMachine()
    with pytest.raises(ScenarioError, match=r"create one with self\.create"):
        machine.aggregate  # noqa: B018 - the property raises
    assert not machine.attempt(lambda account: account.deposit(1))
    machine.create(lambda: Account.open("ann"))
    with pytest.raises(ScenarioError, match="call create\\(\\) once"):
        machine.create(lambda: Account.open("bob"))
    machine.teardown()


@settings(max_examples=20)
@given(
    histories(
        lambda: Account.open("ann"),
        st.builds(lambda n: lambda a: a.deposit(n), st.integers(-1, 3)),
        refused=Refused,
        max_steps=4,
    )
)
def test_histories_skip_refused_steps(history: list[object]) -> None:
    """A history holds only what the aggregate accepted."""
    assert Opened("ann") == history[0]
    assert all(isinstance(e, Deposited) and e.amount > 0 for e in history[1:])
