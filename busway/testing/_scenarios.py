"""Given/when/then scenarios for aggregates, command handlers and sagas.

A scenario is an immutable builder: ``given`` and ``when`` return new scenarios, so a
common start can be shared, and a ``then`` method runs the whole scenario and raises
``AssertionError`` with a field-by-field report when the outcome is not the expected one.
They are plain function calls: no runner, no fixture, any test framework.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Generic, Self, final, overload
from unittest.mock import ANY

import attrs
from typing_extensions import TypeVar

from .._buses import CommandBus
from .._messages import Command
from ..aggregates import Aggregate
from ..clock import FakeClock
from ..errors import HandlerNotFoundError
from ..eventstore import EventStore, EventTypes
from ..sagas import InMemorySagaStore, Saga, SagaManager
from ._diff import Like, ScenarioError, diff_sequences, find_subsequence, short

__all__ = ["AggregateScenario", "CommandScenario", "SagaScenario", "Scheduled"]

A = TypeVar("A", bound=Aggregate)
E = TypeVar("E", bound=BaseException)
R = TypeVar("R", default=Any)
T = TypeVar("T")

_UNSET: Final = object()


def _check_same(expected: Sequence[object], actual: Sequence[object], headline: str) -> None:
    if len(expected) != len(actual) or find_subsequence(expected, actual) is None:
        raise AssertionError(f"{headline}\n{diff_sequences(expected, actual)}")


def _check_error(error: BaseException | None, expected: type[E], match: str | None, what: str) -> E:
    if error is None:
        raise AssertionError(f"expected {what} to raise {expected.__qualname__}, but it did not")
    if not isinstance(error, expected):
        raise AssertionError(
            f"expected {what} to raise {expected.__qualname__}, but it raised "
            f"{type(error).__qualname__}: {error}"
        ) from error
    if match is not None and not re.search(match, str(error)):
        raise AssertionError(
            f"{what} raised {type(error).__qualname__} as expected, but its message does not "
            f"match {match!r}:\n  {error}"
        ) from error
    return error


def _unexpected(error: BaseException, what: str, expected: str) -> AssertionError:
    failure = AssertionError(
        f"expected {expected}, but {what} raised {type(error).__qualname__}: {error}"
    )
    failure.__cause__ = error
    return failure


class _Builder:
    """Copy-on-change for the scenario classes: each step returns a new scenario."""

    def _with(self, **changes: Any) -> Self:
        new = copy.copy(self)
        for name, value in changes.items():
            setattr(new, name, value)
        return new


def _check_round_trip(types: EventTypes | None, events: Iterable[object]) -> None:
    if types is None:
        return
    for event in events:
        name, version, payload = types.encode(event)
        back = types.decode(name, version, payload, position=0)
        if back != event:
            raise AssertionError(
                f"{type(event).__qualname__} does not survive serialization: stored as "
                f"{payload}, it reads back as {short(back)}, not {short(event)}"
            )


@final
class AggregateScenario(_Builder, Generic[A]):
    """Given past events, when the aggregate is asked to do something, then these events.

    ``AggregateScenario(Order, id="o-1").given(OrderPlaced(...)).when(lambda order:
    order.cancel("late")).then(OrderCancelled("o-1", "late"))``. The aggregate is rebuilt
    from the given events; the action gets it, and the events it records are compared with
    the expected ones. An action that returns an aggregate (a creating classmethod such as
    ``Order.place``) is checked on that one instead. With *types*, every given and new event
    must also survive a trip through the serializer.
    """

    def __init__(
        self, aggregate_type: type[A], *, id: str = "1", types: EventTypes | None = None
    ) -> None:
        if not (isinstance(aggregate_type, type) and issubclass(aggregate_type, Aggregate)):
            raise ScenarioError(
                f"AggregateScenario() takes an Aggregate subclass, e.g. "
                f"AggregateScenario(Order), not {aggregate_type!r}"
            )
        self.aggregate_type = aggregate_type
        self.id = id
        self.types = types
        self._given: tuple[object, ...] = ()
        self._action: Callable[[A], object] | None = None

    def __repr__(self) -> str:
        return (
            f"<AggregateScenario {self.aggregate_type.__qualname__} {self.id!r} "
            f"given {len(self._given)} events>"
        )

    def given(self, *events: object) -> AggregateScenario[A]:
        """Return this scenario with *events* added to the aggregate's history."""
        return self._with(_given=(*self._given, *events))

    def when(self, action: Callable[[A], object]) -> AggregateScenario[A]:
        """Return this scenario with *action* as what the aggregate is asked to do."""
        if not callable(action):
            raise ScenarioError(
                f"when() takes a callable that gets the aggregate, e.g. "
                f"when(lambda order: order.cancel('late')), not {action!r}"
            )
        return self._with(_action=action)

    def _run(self) -> tuple[A, BaseException | None]:
        if self._action is None:
            raise ScenarioError(
                "the scenario has no action: call .when(lambda aggregate: ...) before .then...()"
            )
        _check_round_trip(self.types, self._given)
        aggregate = self.aggregate_type.from_history(self.id, self._given)
        try:
            made = self._action(aggregate)
        except Exception as exc:
            return aggregate, exc
        if isinstance(made, self.aggregate_type):
            aggregate = made
        return aggregate, None

    def then(self, *events: object) -> A:
        """Check that the action recorded exactly *events*, in order; return the aggregate.

        Expected events may be :class:`Like` matchers.
        """
        aggregate, error = self._run()
        if error is not None:
            raise _unexpected(error, "the action", f"{len(events)} new events")
        actual = list(aggregate.pending_events)
        _check_same(
            events,
            actual,
            f"{self.aggregate_type.__qualname__} recorded other events than expected",
        )
        _check_round_trip(self.types, actual)
        return aggregate

    def then_nothing(self) -> A:
        """Check that the action recorded no event and raised nothing; return the aggregate."""
        return self.then()

    def then_raises(self, error: type[E], *, match: str | None = None) -> E:
        """Check that the action raised *error* (its message matching *match*); return it."""
        _, raised = self._run()
        return _check_error(raised, error, match, "the action")


@final
class CommandScenario(_Builder, Generic[R]):
    """Given stored events, when a command is executed, then these new events, or this error.

    ``CommandScenario(commands, store).given("order-o-1", OrderPlaced(...))
    .when(CancelOrder("o-1", "late")).then(OrderCancelled("o-1", "late"))``. Running it
    appends the given events to *store*, executes the command on *commands*, and compares the
    events appended after the given ones (in every stream, in store order) with the expected
    ones. It writes to *store*: give each scenario a fresh one (the ``event_store`` fixture
    is). ``then`` returns what the command's handler returned: for a ``Command[str]``, a
    ``str``.
    """

    def __init__(self, commands: CommandBus, store: EventStore) -> None:
        if not isinstance(commands, CommandBus):
            raise ScenarioError(f"CommandScenario() takes a CommandBus first, not {commands!r}")
        self.commands = commands
        self.store = store
        self._given: tuple[tuple[str, tuple[object, ...]], ...] = ()
        self._command: object = _UNSET

    def __repr__(self) -> str:
        return f"<CommandScenario given {len(self._given)} appends>"

    def given(self, stream_id: str, *events: object) -> CommandScenario[R]:
        """Return this scenario with *events* stored in *stream_id* before the command runs."""
        if not isinstance(stream_id, str):
            raise ScenarioError(
                f"given() takes the stream id first, then its events: "
                f"given('order-o-1', OrderPlaced(...)), not {stream_id!r}"
            )
        return self._with(_given=(*self._given, (stream_id, events)))

    @overload
    def when(self, command: Command[T]) -> CommandScenario[T]: ...
    @overload
    def when(self, command: object) -> CommandScenario[Any]: ...
    def when(self, command: object) -> CommandScenario[Any]:
        """Return this scenario with *command* as the command to execute."""
        return self._with(_command=command)

    def _run(self) -> tuple[R, list[object], BaseException | None]:
        if self._command is _UNSET:
            raise ScenarioError(
                "the scenario has no command: call .when(command) before .then...()"
            )
        for stream_id, events in self._given:
            self.store.append(stream_id, events)
        head = self.store.head_position()
        result: Any = None
        error: BaseException | None = None
        try:
            result = self.commands.execute(self._command)
        except Exception as exc:
            error = exc
        new = [r.event for r in self.store.read_all(from_position=head + 1)]
        return result, new, error

    def then(self, *events: object) -> R:
        """Check that exactly *events* were stored, in order; return the command's result."""
        result, new, error = self._run()
        name = type(self._command).__qualname__
        if error is not None:
            raise _unexpected(error, name, f"{len(events)} new events")
        _check_same(events, new, f"{name} stored other events than expected")
        return result

    def then_nothing(self) -> R:
        """Check that the command succeeded and stored no event; return its result."""
        return self.then()

    def then_raises(self, error: type[E], *, match: str | None = None) -> E:
        """Check that the command raised *error* and stored nothing; return the error."""
        _, new, raised = self._run()
        name = type(self._command).__qualname__
        found = _check_error(raised, error, match, name)
        if new:
            raise AssertionError(
                f"{name} raised {type(found).__qualname__} as expected, but stored events "
                f"first:\n{diff_sequences([], new)}"
            )
        return found


@final
@attrs.frozen
class Scheduled:
    """A deadline: *message*, due *after* this long from the scenario clock's current time."""

    message: object
    after: timedelta


@final
class SagaScenario(_Builder):
    """Given events, when one more arrives or time passes, then these commands and deadlines.

    ``SagaScenario(Booking).given(BookingRequested(...)).when(StockReserved("o-1"))
    .then(ChargePayment(...), deadlines=[Scheduled(PaymentOverdue(...), timedelta(minutes=15))])``.
    The sagas run in a :class:`~busway.sagas.SagaManager` with an in-memory store, a
    :class:`~busway.clock.FakeClock` (at *start*) and a command bus that only records what
    it is sent. A command whose class is in *fails* raises that error instead, to test
    compensation. The bus learns the command classes as the sagas send them; list in *sends*
    those that a ``@compensates`` method for a base class would otherwise take as failed.
    """

    sends: tuple[type, ...]
    start: datetime

    def __init__(
        self,
        *sagas: type[Saga],
        sends: Iterable[type] = (),
        fails: Mapping[type, Exception] | None = None,
        start: datetime | None = None,
        types: EventTypes | None = None,
    ) -> None:
        if not sagas:
            raise ScenarioError(
                "SagaScenario() takes the saga classes to run, e.g. SagaScenario(Booking)"
            )
        self.sagas = sagas
        self.sends = tuple(sends)
        self.fails: Mapping[type, Exception] = dict(fails or {})
        self.start = datetime(2000, 1, 1, tzinfo=UTC) if start is None else start
        self.types = types
        self._given: tuple[object, ...] = ()
        self._step: tuple[str, object] | None = None

    def __repr__(self) -> str:
        names = ", ".join(s.__qualname__ for s in self.sagas)
        return f"<SagaScenario {names} given {len(self._given)} events>"

    def given(self, *events: object) -> SagaScenario:
        """Return this scenario with *events* handled first (their commands are not checked)."""
        return self._with(_given=(*self._given, *events))

    def given_time_passed(self, by: timedelta) -> SagaScenario:
        """Return this scenario with the clock moved *by*, and due deadlines fired, first."""
        return self._with(_given=(*self._given, _Advance(by)))

    def when(self, event: object) -> SagaScenario:
        """Return this scenario with *event* as the event under test."""
        return self._with(_step=("event", event))

    def when_time_passes(self, by: timedelta) -> SagaScenario:
        """Return this scenario with the clock moved *by*, firing what comes due, under test."""
        return self._with(_step=("time", _Advance(by)))

    def then(self, *commands: object, deadlines: Sequence[object] | None = None) -> None:
        """Check that exactly *commands* were sent, in order, and, if given, the *deadlines*.

        *deadlines* lists every deadline pending afterwards, earliest first: a message (any
        due time) or :class:`Scheduled` (message and how long until it is due).
        """
        if self._step is None:
            raise ScenarioError(
                "the scenario has no step: call .when(event) or .when_time_passes(delta) first"
            )
        extra = [c.cls if isinstance(c, Like) else type(c) for c in commands]
        sent, pending, error = self._run(extra)
        what = "the event" if self._step[0] == "event" else "the time passing"
        if error is not None:
            raise _unexpected(error, what, f"{len(commands)} commands")
        _check_same(commands, sent, f"the sagas sent other commands than expected after {what}")
        if deadlines is not None:
            wanted = [d if isinstance(d, Scheduled) else Scheduled(d, ANY) for d in deadlines]
            if len(wanted) != len(pending) or find_subsequence(wanted, pending) is None:
                raise AssertionError(
                    f"the pending deadlines are not the expected ones after {what}\n"
                    + diff_sequences(wanted, pending, what="deadlines")
                )

    def then_nothing(self) -> None:
        """Check that no command was sent (deadlines are not checked)."""
        self.then()

    def then_raises(self, error: type[E], *, match: str | None = None) -> E:
        """Check that handling the step raised *error*; return it."""
        if self._step is None:
            raise ScenarioError("the scenario has no step: call .when(event) first")
        _, _, raised = self._run([])
        return _check_error(raised, error, match, "the step")

    def _run(self, extra: list[type]) -> tuple[list[object], list[Scheduled], BaseException | None]:
        from ..sagas._saga import SagaSpec

        known: dict[type, None] = dict.fromkeys([*self.sends, *extra, *self.fails])
        for saga in self.sagas:
            known.update(dict.fromkeys(SagaSpec.of(saga).compensations))
        while True:
            # Sagas are state transitions without I/O, so a run can be repeated from scratch
            # once it has shown which command classes the recording bus must take.
            try:
                return self._run_once(known)
            except _Unknown as unknown:
                if unknown.command_type in known:  # pragma: no cover - the bus has a handler
                    raise unknown.__cause__ from None  # type: ignore[misc]
                known[unknown.command_type] = None

    def _run_once(
        self, known: Iterable[type]
    ) -> tuple[list[object], list[Scheduled], BaseException | None]:
        assert self._step is not None
        sent: list[object] = []
        commands = CommandBus()
        for cls in known:
            commands.register(cls, self._handler(cls, sent))
        clock = FakeClock(self.start)
        with InMemorySagaStore() as store:
            manager = SagaManager(
                *self.sagas, store=store, commands=commands, clock=clock, types=self.types
            )

            def step(item: object) -> None:
                if isinstance(item, _Advance):
                    clock.advance(item.by)
                    manager.fire_due()
                else:
                    manager.handle(item)

            for item in self._given:
                _guard(step, item)
            before = len(sent)
            error: BaseException | None = None
            try:
                _guard(step, self._step[1])
            except _Unknown:
                raise
            except Exception as exc:
                error = exc
            pending = self._deadlines(manager, store, clock.now())
        return sent[before:], pending, error

    def _handler(self, cls: type, sent: list[object]) -> Callable[[object], None]:
        failure = self.fails.get(cls)

        def handle(command: object) -> None:
            sent.append(command)
            if failure is not None:
                raise failure

        return handle

    def _deadlines(
        self, manager: SagaManager, store: InMemorySagaStore, now: datetime
    ) -> list[Scheduled]:
        found: list[tuple[datetime, int, Scheduled]] = []
        for record in store.due(datetime.max.replace(tzinfo=UTC)):
            for deadline in record.deadlines:
                stored = deadline.message
                message = manager.types.decode(
                    stored.type, stored.schema_version, stored.data, position=0
                )
                found.append((deadline.due, len(found), Scheduled(message, deadline.due - now)))
        return [s for *_, s in sorted(found, key=lambda f: (f[0], f[1]))]


@attrs.frozen
class _Advance:
    by: timedelta


class _Unknown(Exception):
    """A saga sent a command of a class the recording bus has no handler for yet."""

    def __init__(self, command_type: type) -> None:
        self.command_type = command_type


def _guard(step: Callable[[object], None], item: object) -> None:
    try:
        step(item)
    except HandlerNotFoundError as exc:
        raise _Unknown(exc.message_type) from exc
    except ExceptionGroup as group:
        found, _ = group.split(HandlerNotFoundError)
        if found is None:
            raise
        first = found.exceptions[0]
        assert isinstance(first, HandlerNotFoundError)
        raise _Unknown(first.message_type) from group
