"""Stateful sagas run by a SagaManager: routing, state, commands, compensation, ending."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import attrs
import pytest

from busway import CommandBus, EventBus, HandlerNotFoundError, RegistrationError
from busway.clock import FakeClock
from busway.errors import (
    InvalidArgumentError,
    SagaConcurrencyError,
    SagaError,
    SerializationError,
    UnknownEventTypeError,
)
from busway.eventstore import EventTypes, InMemoryEventStore
from busway.sagas import (
    Deadline,
    InMemorySagaStore,
    Saga,
    SagaManager,
    SagaRecord,
    SagaStore,
    StoredMessage,
    Write,
    handles,
    starts,
)
from busway.subscriptions import Advance

from .model import (
    Booking,
    ChargePayment,
    OrderCancelled,
    OrderPlaced,
    PaymentCharged,
    RejectOrder,
    ReleaseStock,
    ReserveStock,
    Services,
    ShipOrder,
    StockReserved,
)


def test_an_event_starts_a_saga_that_issues_a_command(
    manager: SagaManager, services: Services
) -> None:
    """A @starts event creates a saga, stores its state, and sends what it issued."""
    manager.handle(OrderPlaced("o-1", 25))
    assert [ReserveStock("o-1")] == services.executed
    [booking] = manager.find(Booking, "order_id", "o-1")
    assert Booking("o-1", 25, "reserving") == booking


def test_later_events_reach_the_saga_by_its_associations(
    manager: SagaManager, services: Services
) -> None:
    """@handles routes by key; a value associated later (a payment id) routes too."""
    manager.handle(OrderPlaced("o-1"))
    manager.handle(StockReserved("o-1"))
    manager.handle(PaymentCharged("pay-o-1"))
    assert [ReserveStock("o-1"), ChargePayment("pay-o-1", 10), ShipOrder("o-1")] == (
        services.executed
    )
    assert [] == manager.find(Booking, "order_id", "o-1")


def test_sagas_run_side_by_side(manager: SagaManager, services: Services) -> None:
    """Each saga instance gets only the events carrying its own key."""
    for order in ("o-1", "o-2", "o-3"):
        manager.handle(OrderPlaced(order))
    manager.handle(StockReserved("o-2"))
    steps = {o: manager.find(Booking, "order_id", o)[0].step for o in ("o-1", "o-2", "o-3")}
    assert {"o-1": "reserving", "o-2": "charging", "o-3": "reserving"} == steps


def test_an_event_no_saga_takes_is_ignored_and_logged(
    manager: SagaManager, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """An event that matches no live saga and starts none changes nothing; a debug line says so."""
    with caplog.at_level(logging.DEBUG, logger="busway.sagas"):
        manager.handle(StockReserved("nobody"))
        manager.handle("not even an event")
    assert [] == services.executed
    assert [
        "StockReserved matches no live saga and starts none; ignored",
        "str matches no live saga and starts none; ignored",
    ] == [r.getMessage() for r in caplog.records]


def test_a_second_start_for_a_live_saga_is_ignored(
    manager: SagaManager, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """A duplicate start does not create a second saga for the same key."""
    manager.handle(OrderPlaced("o-1"))
    with caplog.at_level(logging.DEBUG, logger="busway.sagas"):
        manager.handle(OrderPlaced("o-1"))
    assert 1 == len(manager.find(Booking, "order_id", "o-1"))
    assert [ReserveStock("o-1")] == services.executed
    assert "duplicate start ignored" in caplog.text


def test_an_ended_saga_gets_nothing_more(manager: SagaManager, services: Services) -> None:
    """After end(), events for the saga's keys are ignored, and its record is gone."""
    manager.handle(OrderPlaced("o-1"))
    manager.handle(OrderCancelled("o-1"))
    manager.handle(StockReserved("o-1"))
    assert [ReserveStock("o-1"), ReleaseStock("o-1"), RejectOrder("o-1", "cancelled")] == (
        services.executed
    )
    assert [] == manager.store.pending()


def test_a_failed_command_is_compensated(manager: SagaManager, services: Services) -> None:
    """@compensates gets the command and its error, and may issue compensating commands."""
    manager.handle(OrderPlaced("o-1", amount=500))
    manager.handle(StockReserved("o-1"))
    assert [
        ReserveStock("o-1"),
        ChargePayment("pay-o-1", 500),
        ReleaseStock("o-1"),
        RejectOrder("o-1", "declined: 500 is too much"),
    ] == services.executed
    assert [] == manager.find(Booking, "order_id", "o-1")


def test_a_failure_without_compensation_is_raised_after_the_rest_is_sent(
    store: SagaStore, clock: FakeClock
) -> None:
    """A command failing with no @compensates is raised once the other commands went out."""
    commands = CommandBus()
    sent: list[object] = []
    commands.register(ShipOrder, sent.append)

    @attrs.define
    class Shipper(Saga):
        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None:
            self.send(ReserveStock(event.order_id))  # nobody handles it
            self.send(ShipOrder(event.order_id))
            self.send(ReleaseStock(event.order_id))  # nor this

    manager = SagaManager(Shipper, store=store, commands=commands, clock=clock)
    with pytest.raises(ExceptionGroup) as info:
        manager.handle(OrderPlaced("o-1"))
    assert [ShipOrder("o-1")] == sent
    assert [HandlerNotFoundError, HandlerNotFoundError] == [type(e) for e in info.value.exceptions]
    assert [] == store.pending()


def test_a_failing_saga_method_stores_nothing(
    manager: SagaManager, services: Services, store: SagaStore
) -> None:
    """When a saga method raises, no state is stored and no command sent."""

    @attrs.define
    class Broken(Saga):
        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None:
            self.send(ReserveStock(event.order_id))
            raise RuntimeError("broken")

    broken = SagaManager(Broken, store=store, commands=services.commands)
    with pytest.raises(RuntimeError, match="broken"):
        broken.handle(OrderPlaced("o-1"))
    assert ([], []) == (services.executed, broken.find(Broken, "order_id", "o-1"))


def test_attached_to_an_event_bus(manager: SagaManager, services: Services) -> None:
    """attach() subscribes the manager to the bus for the events its sagas take."""
    events = EventBus()
    attachment = manager.attach(events)
    assert {OrderPlaced, StockReserved, PaymentCharged, OrderCancelled} == set(events.registered())
    events.publish(OrderPlaced("o-1"))
    attachment.detach()
    attachment.detach()
    events.publish(OrderPlaced("o-2"))
    assert ([ReserveStock("o-1")], False) == (services.executed, attachment.active)
    assert "detached" in repr(attachment)


def test_events_published_by_a_command_wait_for_the_current_step(
    store: SagaStore, clock: FakeClock
) -> None:
    """An event a command handler publishes reaches the saga after its step was stored."""
    events = EventBus()
    services = Services()
    commands = services.commands
    with commands.override(ReserveStock, lambda c: events.publish(StockReserved(c.order_id))):
        manager = SagaManager(Booking, store=store, commands=commands, clock=clock)
        with manager.attach(events):
            events.publish(OrderPlaced("o-1"))
    assert [ChargePayment("pay-o-1", 10)] == services.executed
    assert [] == store.pending()


def test_events_queued_during_a_failure_are_still_handled(
    store: SagaStore, clock: FakeClock
) -> None:
    """A failing command does not lose the events published before it failed."""
    events = EventBus()
    services = Services(decline_over=0)

    def reserve(command: ReserveStock) -> None:
        events.publish(StockReserved(command.order_id))
        raise RuntimeError("warehouse is down")

    with services.commands.override(ReserveStock, reserve):
        manager = SagaManager(Booking, store=store, commands=services.commands, clock=clock)
        manager.attach(events)
        with pytest.raises(RuntimeError, match="warehouse is down"):
            events.publish(OrderPlaced("o-1"))
    assert [ChargePayment("pay-o-1", 10), ReleaseStock("o-1")] == services.executed[:2]


def test_failures_follow_the_event_bus_error_policy(manager: SagaManager) -> None:
    """With on_error, a saga's failure goes to the hook and publish succeeds."""
    failures: list[BaseException] = []
    events = EventBus(on_error=lambda exc, event, handler: failures.append(exc))
    manager.attach(events)
    events.publish(OrderPlaced("o-1"))
    with manager.commands.override(ReserveStock, lambda c: 1 / 0):
        events.publish(OrderPlaced("o-2"))
    assert [ZeroDivisionError] == [type(f) for f in failures]


def test_find_rejects_a_saga_class_the_manager_does_not_run(manager: SagaManager) -> None:
    """find() names the sagas the manager runs."""

    @attrs.define
    class Other(Saga):
        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None: ...

    with pytest.raises(SagaError, match="it runs: Booking"):
        manager.find(Other, "order_id", "o-1")


def test_two_saga_classes_share_one_store(store: SagaStore, services: Services) -> None:
    """Sagas of several classes react to the same event, each in its own instance."""

    @attrs.define
    class Audit(Saga):
        orders: list[str] = attrs.field(factory=list)

        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None:
            self.orders.append(event.order_id)

    manager = SagaManager(Booking, Audit, store=store, commands=services.commands)
    manager.handle(OrderPlaced("o-1"))
    assert [["o-1"]] == [a.orders for a in manager.find(Audit, "order_id", "o-1")]
    assert 1 == len(manager.find(Booking, "order_id", "o-1"))
    assert "Booking, Audit" in repr(manager)


def test_association_values_are_compared_as_text(store: SagaStore) -> None:
    """Keys may be ints or UUIDs; other values are refused with advice."""

    @attrs.frozen
    class Numbered:
        number: Any

    @attrs.define
    class Counter(Saga):
        hits: int = 0

        @starts(Numbered, key="number")
        def first(self, event: Numbered) -> None:
            self.hits += 1

    manager = SagaManager(Counter, store=store, commands=CommandBus())
    manager.handle(Numbered(7))
    assert [1] == [c.hits for c in manager.find(Counter, "number", "7")]
    with pytest.raises(SagaError, match=r"Numbered.number is 1.5, of type float") as info:
        manager.handle(Numbered(1.5))
    assert isinstance(info.value.__cause__, InvalidArgumentError)
    with pytest.raises(SagaError, match="needs a value"):
        manager.handle(Numbered(None))
    with pytest.raises(InvalidArgumentError, match="a str, an int or a UUID"):
        manager.find(Counter, "number", 1.5)
    with pytest.raises(InvalidArgumentError, match="key must be a non-empty str"):
        manager.find(Counter, "", "7")


@pytest.mark.parametrize(("key", "value"), [("order_id", 1.5), ("order_id", None), (7, "x")])
def test_associate_with_refuses_bad_arguments(store: SagaStore, key: Any, value: Any) -> None:
    """associate_with() takes a non-empty str key and a str, int or UUID value."""

    @attrs.define
    class Sloppy(Saga):
        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None:
            self.associate_with(key, value)

    manager = SagaManager(Sloppy, store=store, commands=CommandBus())
    with pytest.raises(InvalidArgumentError):
        manager.handle(OrderPlaced("o-1"))
    assert [] == manager.find(Sloppy, "order_id", "o-1")


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [({"clock": "now"}, r"clock=\.\.\.\) takes a clock"), ({"types": {}}, "EventTypes")],
)
def test_the_manager_refuses_a_clock_or_types_of_the_wrong_kind(
    store: SagaStore, kwargs: dict[str, Any], says: str
) -> None:
    """A clock without now() or types that are no EventTypes are refused when built."""
    with pytest.raises(RegistrationError, match=says):
        SagaManager(Booking, store=store, commands=CommandBus(), **kwargs)


def test_catch_up_refuses_what_is_no_event_store(manager: SagaManager) -> None:
    """catch_up() takes an EventStore and a subscription name, and says so."""
    with pytest.raises(RegistrationError, match="catches up with an EventStore"):
        manager.catch_up([])  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="catches up with an EventStore"):
        manager.background(events="events.db")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="subscription"):
        manager.catch_up(InMemoryEventStore(types=EventTypes()), subscription="")


def test_an_optional_key_that_is_none_routes_nowhere(manager: SagaManager) -> None:
    """A @handles key that is None on the event matches no saga."""

    @attrs.frozen
    class Maybe:
        order_id: str | None

    @attrs.define
    class Optional(Saga):
        @starts(OrderPlaced, key="order_id")
        def placed(self, event: OrderPlaced) -> None: ...

        @handles(Maybe, key="order_id")
        def maybe(self, event: Maybe) -> None:
            raise AssertionError("not routed")

    other = SagaManager(Optional, store=InMemorySagaStore(), commands=CommandBus())
    other.handle(Maybe(None))


def test_the_manager_checks_its_arguments(services: Services) -> None:
    """The wrong kind of bus or store is refused, naming what is wanted."""
    with pytest.raises(RegistrationError, match="takes the CommandBus"):
        SagaManager(Booking, store=InMemorySagaStore(), commands=EventBus())  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="takes a saga store"):
        SagaManager(Booking, store={}, commands=services.commands)  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="takes an EventBus"):
        SagaManager(Booking, store=InMemorySagaStore(), commands=services.commands).attach(
            CommandBus()  # type: ignore[arg-type]
        )


def test_commands_are_registered_by_name_and_found_again_by_the_bus(
    services: Services,
) -> None:
    """A fresh manager decodes pending commands of classes only its command bus knows."""
    store = InMemorySagaStore()
    first = SagaManager(Booking, store=store, commands=services.commands)
    with services.commands.override(ReserveStock, _crash), pytest.raises(_Crash):
        first.handle(OrderPlaced("o-1"))
    types = EventTypes()
    second = SagaManager(Booking, store=store, commands=services.commands, types=types)
    assert ReserveStock not in types
    assert 1 == second.recover()
    assert [ReserveStock("o-1")] == services.executed


class _Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing handles it."""


def _crash(command: object) -> None:
    raise _Crash


def test_a_crash_between_store_and_send_is_recovered(store: SagaStore, services: Services) -> None:
    """Commands stored but not sent are sent by recover(): at least once."""
    manager = SagaManager(Booking, store=store, commands=services.commands)
    manager.handle(OrderPlaced("o-1", amount=500))
    with services.commands.override(ChargePayment, _crash), pytest.raises(_Crash):
        manager.handle(StockReserved("o-1"))
    assert [ReserveStock("o-1")] == services.executed
    assert 1 == len(store.pending())
    assert 1 == manager.recover()
    assert 0 == manager.recover()
    assert [
        ReserveStock("o-1"),
        ChargePayment("pay-o-1", 500),
        ReleaseStock("o-1"),
        RejectOrder("o-1", "declined: 500 is too much"),
    ] == services.executed


class _Flaky:
    """A store whose next *n* commits fail as if another worker had written first."""

    def __init__(self, store: SagaStore, conflicts: Sequence[bool]) -> None:
        self.store = store
        self.conflicts = list(conflicts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def commit(self, writes: Sequence[Write], *, checkpoint: Advance | None = None) -> None:
        if self.conflicts and self.conflicts.pop(0):
            raise SagaConcurrencyError(writes[0].record.saga_id, 1, 2)
        self.store.commit(writes, checkpoint=checkpoint)

    def find(self, saga_type: str, key: str, value: str) -> list[SagaRecord]:
        return self.store.find(saga_type, key, value)


def test_a_conflicting_write_is_retried_on_fresh_state(services: Services) -> None:
    """After a concurrency conflict the manager reloads, reruns the method and commits."""
    flaky = _Flaky(InMemorySagaStore(), [True, False, True, False])
    manager = SagaManager(Booking, store=flaky, commands=services.commands)
    manager.handle(OrderPlaced("o-1"))
    assert [ReserveStock("o-1")] == services.executed
    assert [] == flaky.store.pending()


def test_persistent_conflicts_are_raised(services: Services) -> None:
    """A saga that keeps changing under the manager raises SagaConcurrencyError."""
    flaky = _Flaky(InMemorySagaStore(), [True] * 10)
    manager = SagaManager(Booking, store=flaky, commands=services.commands)
    with pytest.raises(SagaConcurrencyError, match="nothing was written"):
        manager.handle(OrderPlaced("o-1"))
    assert [] == services.executed


def test_a_stored_state_that_no_longer_fits_is_reported(store: SagaStore) -> None:
    """A saga whose stored state cannot be decoded names the saga and the problem."""
    manager = SagaManager(Booking, store=store, commands=Services().commands)
    manager.handle(OrderPlaced("o-1"))
    [record] = store.find("Booking", "order_id", "o-1")
    broken = attrs.evolve(record, version=record.version + 1, state='{"amount": "lots"}')
    store.commit([Write(broken, record.version)])
    with pytest.raises(SerializationError, match=f"saga '{record.saga_id}' holds a 'Booking'"):
        manager.handle(StockReserved("o-1"))


def test_an_unknown_pending_command_is_reported(store: SagaStore) -> None:
    """A pending command of a class nobody registered names the saga and the fix."""
    manager = SagaManager(Booking, store=store, commands=Services().commands)
    manager.handle(OrderPlaced("o-1"))
    [record] = store.find("Booking", "order_id", "o-1")
    odd = StoredMessage("m-1", "Vanished", 1, "{}")
    store.commit(
        [Write(attrs.evolve(record, version=record.version + 1, outbox=(odd,)), record.version)]
    )
    with pytest.raises(UnknownEventTypeError, match=r"holds a 'Vanished'.*types.add"):
        manager.recover()


def test_sagas_of_other_managers_are_left_alone(store: SagaStore, clock: FakeClock) -> None:
    """recover() and fire_due() skip records of saga classes this manager does not run."""
    other = SagaRecord(
        saga_id="x",
        saga_type="Elsewhere",
        version=1,
        schema_version=1,
        state="{}",
        deadlines=(Deadline(clock.now(), StoredMessage("d", "Tick", 1, '{"n":1}')),),
        outbox=(StoredMessage("m", "Tick", 1, '{"n":1}'),),
    )
    store.commit([Write(other, 0)])
    manager = SagaManager(Booking, store=store, commands=Services().commands, clock=clock)
    assert (0, 0) == (manager.recover(), manager.fire_due())


def test_a_command_may_drive_the_manager_it_came_from(
    manager: SagaManager, services: Services, clock: FakeClock
) -> None:
    """Calling fire_due() from a command sent by the manager runs inline, without deadlock."""
    manager.handle(OrderPlaced("o-1"))
    manager.handle(StockReserved("o-1"))
    clock.advance(3600)
    with services.commands.override(ReleaseStock, lambda c: manager.fire_due()):
        manager.handle(OrderCancelled("o-1"))
    assert RejectOrder("o-1", "cancelled") == services.executed[-1]


def test_a_conflict_while_firing_a_deadline_is_retried(clock: FakeClock) -> None:
    """fire_due() reloads and refires on a conflict; a deadline gone meanwhile is skipped."""
    services = Services()
    inner = InMemorySagaStore()
    SagaManager(Booking, store=inner, commands=services.commands, clock=clock).handle(
        OrderPlaced("o-1")
    )
    flaky = _Flaky(inner, [])
    manager = SagaManager(Booking, store=flaky, commands=services.commands, clock=clock)
    manager.handle(StockReserved("o-1"))
    clock.advance(3600)
    flaky.conflicts = [True]
    assert 1 == manager.fire_due()
    assert RejectOrder("o-1", "overdue") == services.executed[-1]
