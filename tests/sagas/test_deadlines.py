"""Deadlines: scheduled against the manager's clock, stored with the saga, fired once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from busway import CommandBus, RegistrationError
from busway.clock import Clock, FakeClock, SystemClock
from busway.errors import InvalidArgumentError, SagaError, StoreClosedError
from busway.sagas import InMemorySagaStore, Saga, SagaManager, SagaStore, on_deadline, starts
from busway.subscriptions import Park

from .model import (
    Booking,
    ChargePayment,
    OrderPlaced,
    PaymentCharged,
    PaymentOverdue,
    Record,
    RejectOrder,
    ReleaseStock,
    ReserveStock,
    Services,
    ShipOrder,
    StockReserved,
    Tick,
    recorder,
)


@attrs.frozen
class Plan:
    """Schedule a Tick for each delay in seconds (negative: an absolute time that far back)."""

    key: str
    delays: tuple[float, ...]
    cancel: tuple[int, ...] = ()


@attrs.define
class Planner(Saga):
    key: str = ""

    @starts(Plan, key="key")
    def plan(self, plan: Plan) -> None:
        self.key = plan.key
        ids = [
            self.schedule(delay, Tick(n))
            if n % 2
            else self.schedule(timedelta(seconds=delay), Tick(n))
            for n, delay in enumerate(plan.delays)
        ]
        for n in plan.cancel:
            self.cancel_deadline(ids[n])

    @on_deadline(Tick)
    def ticked(self, tick: Tick) -> None:
        self.send(Record(self.key, tick.n))


def planner(store: SagaStore, clock: Clock) -> tuple[SagaManager, list[Record]]:
    commands, recorded = recorder()
    return SagaManager(Planner, store=store, commands=commands, clock=clock), recorded


def test_a_deadline_fires_when_due_and_only_once(store: SagaStore, clock: FakeClock) -> None:
    """Nothing fires early; a due deadline fires on the next fire_due(), never again."""
    manager, recorded = planner(store, clock)
    manager.handle(Plan("a", (60, 30)))
    assert 0 == manager.fire_due()
    clock.advance(30)
    assert (1, [Record("a", 1)]) == (manager.fire_due(), recorded)
    clock.advance(timedelta(minutes=5))
    assert (1, 0) == (manager.fire_due(), manager.fire_due())
    assert [Record("a", 1), Record("a", 0)] == recorded


def test_due_deadlines_fire_in_due_order(store: SagaStore, clock: FakeClock) -> None:
    """Deadlines due together fire by due time; equal times in scheduling order."""
    manager, recorded = planner(store, clock)
    manager.handle(Plan("a", (30, 10, 20, 10)))
    manager.handle(Plan("b", (15,)))
    clock.advance(60)
    assert 5 == manager.fire_due()
    assert [("a", 1), ("a", 3), ("b", 0), ("a", 2), ("a", 0)] == [(r.key, r.n) for r in recorded]


def test_a_deadline_at_an_absolute_time(store: SagaStore, clock: FakeClock) -> None:
    """schedule() takes an aware datetime too; one in the past is due at once."""

    @attrs.define
    class At(Saga):
        @starts(Plan, key="key")
        def plan(self, plan: Plan) -> None:
            self.schedule(datetime(1999, 12, 31, tzinfo=UTC), Tick(0))

        @on_deadline(Tick)
        def ticked(self, tick: Tick) -> None:
            self.send(Record("at", tick.n))

    commands, recorded = recorder()
    manager = SagaManager(At, store=store, commands=commands, clock=clock)
    manager.handle(Plan("a", ()))
    assert (1, [Record("at", 0)]) == (manager.fire_due(), recorded)


def test_cancelled_deadlines_do_not_fire(store: SagaStore, clock: FakeClock) -> None:
    """cancel_deadline() takes the id schedule() returned, or a message class."""
    manager, recorded = planner(store, clock)
    manager.handle(Plan("a", (10, 20, 30), cancel=(0, 2)))
    clock.advance(60)
    assert (1, [Record("a", 1)]) == (manager.fire_due(), recorded)


def test_a_paid_booking_cancels_its_payment_deadline(
    manager: SagaManager, services: Services, clock: FakeClock
) -> None:
    """Cancelling by class removes the booking's payment deadline."""
    manager.handle(OrderPlaced("o-1"))
    manager.handle(StockReserved("o-1"))
    manager.handle(PaymentCharged("pay-o-1"))
    clock.advance(timedelta(hours=1))
    assert 0 == manager.fire_due()
    assert ShipOrder("o-1") == services.executed[-1]


def test_an_overdue_payment_is_compensated(
    manager: SagaManager, services: Services, clock: FakeClock
) -> None:
    """The deadline method may issue commands and end the saga."""
    manager.handle(OrderPlaced("o-1"))
    manager.handle(StockReserved("o-1"))
    clock.advance(timedelta(minutes=15))
    assert 1 == manager.fire_due()
    assert [
        ReserveStock("o-1"),
        ChargePayment("pay-o-1", 10),
        ReleaseStock("o-1"),
        RejectOrder("o-1", "overdue"),
    ] == services.executed
    manager.handle(PaymentCharged("pay-o-1"))
    assert RejectOrder("o-1", "overdue") == services.executed[-1]


def test_an_ended_saga_drops_its_deadlines(store: SagaStore, clock: FakeClock) -> None:
    """Once a saga ends, none of its deadlines fire."""
    services = Services()
    manager = SagaManager(Booking, store=store, commands=services.commands, clock=clock)
    manager.handle(OrderPlaced("o-1", amount=500))
    manager.handle(StockReserved("o-1"))  # declined: compensated and ended
    clock.advance(timedelta(days=1))
    assert (0, []) == (manager.fire_due(), store.due(clock.now()))


def test_a_failing_deadline_method_keeps_its_deadline(store: SagaStore, clock: FakeClock) -> None:
    """A deadline whose method raises stays, to be fired again; the others still fire."""
    manager, recorded = planner(store, clock)
    manager.handle(Plan("a", (1,)))
    manager.handle(Plan("b", (2,)))
    clock.advance(5)
    fail = {"a"}

    def record(r: Record) -> None:
        if r.key in fail:
            raise RuntimeError(f"cannot record {r.key}")
        recorded.append(r)

    with manager.commands.override(Record, record), pytest.raises(RuntimeError, match="record a"):
        manager.fire_due()
    assert [Record("b", 0)] == recorded
    fail.clear()
    assert 0 == manager.fire_due()  # the deadline fired; its command failed and was dropped


def test_a_deadline_method_that_raises_is_retried_later(store: SagaStore, clock: FakeClock) -> None:
    """If the deadline method itself raises, the deadline stays for the next fire_due()."""
    attempts: list[int] = []

    @attrs.define
    class Fragile(Saga):
        @starts(Plan, key="key")
        def plan(self, plan: Plan) -> None:
            self.schedule(1, Tick(0))

        @on_deadline(Tick)
        def ticked(self, tick: Tick) -> None:
            attempts.append(tick.n)
            if len(attempts) == 1:
                raise RuntimeError("not yet")

    manager = SagaManager(Fragile, store=store, commands=CommandBus(), clock=clock)
    manager.handle(Plan("a", ()))
    clock.advance(1)
    with pytest.raises(RuntimeError, match="not yet"):
        manager.fire_due()
    assert (1, 0, [0, 0]) == (manager.fire_due(), manager.fire_due(), attempts)


def test_scheduling_needs_a_deadline_method(store: SagaStore, clock: FakeClock) -> None:
    """A message class with no @on_deadline method cannot be scheduled."""

    @attrs.define
    class Forgetful(Saga):
        @starts(Plan, key="key")
        def plan(self, plan: Plan) -> None:
            self.schedule(1, PaymentOverdue("p"))

    manager = SagaManager(Forgetful, store=store, commands=CommandBus(), clock=clock)
    with pytest.raises(SagaError, match=r"no @on_deadline\(PaymentOverdue\) method"):
        manager.handle(Plan("a", ()))


@pytest.mark.parametrize(
    ("when", "match"),
    [
        (datetime(2000, 1, 1), "an aware datetime"),
        ("soon", "a timedelta or a finite number"),
        (float("nan"), "a timedelta or a finite number"),
        (float("inf"), "a timedelta or a finite number"),
        (timedelta.max, "before year 10000"),
    ],
)
def test_schedule_checks_when(store: SagaStore, clock: FakeClock, when: object, match: str) -> None:
    """A naive datetime or a non-duration is refused."""

    @attrs.define
    class Odd(Saga):
        @starts(Plan, key="key")
        def plan(self, plan: Plan) -> None:
            self.schedule(when, Tick(0))  # type: ignore[arg-type]

        @on_deadline(Tick)
        def ticked(self, tick: Tick) -> None: ...

    manager = SagaManager(Odd, store=store, commands=CommandBus(), clock=clock)
    with pytest.raises(InvalidArgumentError, match=match):
        manager.handle(Plan("a", ()))


def test_the_fake_clock() -> None:
    """It starts at 2000-01-01 UTC, moves forwards by advance() and anywhere by set()."""
    clock = FakeClock()
    assert datetime(2000, 1, 1, tzinfo=UTC) == clock.now()
    assert datetime(2000, 1, 1, 0, 1, 30, tzinfo=UTC) == clock.advance(90)
    assert datetime(2000, 1, 1, 1, 1, 30, tzinfo=UTC) == clock.advance(timedelta(hours=1))
    earlier = datetime(1999, 1, 1, 1, tzinfo=UTC)
    assert earlier == clock.set(earlier)
    assert "FakeClock(1999-01-01T01:00:00+00:00)" == repr(clock)
    with pytest.raises(InvalidArgumentError, match="use set"):
        clock.advance(-1)
    with pytest.raises(InvalidArgumentError, match="aware datetime"):
        FakeClock(datetime(2000, 1, 1))
    assert isinstance(clock, Clock)


@pytest.mark.parametrize("by", [float("nan"), float("inf"), 1e300, timedelta.max, "1", True])
def test_the_fake_clock_refuses_moves_it_cannot_make(by: object) -> None:
    """advance() names a step that is no duration or leaves the calendar; the clock stays."""
    clock = FakeClock()
    with pytest.raises(InvalidArgumentError) as info:
        clock.advance(by)  # type: ignore[arg-type]
    assert "by" == info.value.argument
    assert datetime(2000, 1, 1, tzinfo=UTC) == clock.now()


def test_cancel_deadline_takes_an_id_or_a_class(store: SagaStore, clock: FakeClock) -> None:
    """Anything else given to cancel_deadline() is refused instead of cancelling nothing."""

    @attrs.define
    class Careless(Saga):
        @starts(Plan, key="key")
        def plan(self, plan: Plan) -> None:
            self.schedule(10, Tick(0))
            self.cancel_deadline(0)  # type: ignore[arg-type]

        @on_deadline(Tick)
        def ticked(self, tick: Tick) -> None: ...

    manager = SagaManager(Careless, store=store, commands=CommandBus(), clock=clock)
    with pytest.raises(InvalidArgumentError, match=r"the id schedule\(\) returned"):
        manager.handle(Plan("a", ()))
    assert [] == manager.find(Careless, "key", "a")


def test_the_system_clock() -> None:
    """It tells the current time in UTC."""
    before = datetime.now(UTC)
    now = SystemClock().now()
    assert (UTC, True) == (now.tzinfo, before <= now <= datetime.now(UTC))
    assert "SystemClock()" == repr(SystemClock())


def test_a_background_thread_fires_deadlines(clock: FakeClock) -> None:
    """The runner recovers, then fires due deadlines every interval until stopped."""
    manager, recorded = planner(InMemorySagaStore(), clock)
    manager.handle(Plan("a", (10,)))
    fired = threading.Event()

    def record(r: Record) -> None:
        recorded.append(r)
        fired.set()

    with manager.commands.override(Record, record):
        with manager.background(interval=0.01) as runner:
            clock.advance(10)
            assert fired.wait(5)
        runner.stop()
    assert [Record("a", 0)] == recorded


def test_the_background_thread_reports_failures_and_carries_on(clock: FakeClock) -> None:
    """A failing pass goes to on_error, and the next pass runs."""
    store = InMemorySagaStore()
    manager, _ = planner(store, clock)
    store.close()
    errors: list[Exception] = []
    twice = threading.Event()

    def on_error(exc: Exception) -> None:
        errors.append(exc)
        if len(errors) == 2:
            twice.set()

    with manager.background(interval=0.01, report=on_error) as runner:
        assert twice.wait(5)
    runner.start().stop()
    assert StoreClosedError is type(errors[0])


def test_background_runner_logs_by_default(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Without on_error, a failure is logged at ERROR level; tick() does one pass inline."""
    manager, recorded = planner(InMemorySagaStore(), clock)
    runner = manager.background(interval=1)
    manager.handle(Plan("a", (0,)))
    runner.tick()
    assert [Record("a", 0)] == recorded
    runner._report(ZeroDivisionError("x"))
    assert "saga runner: x" in caplog.text
    for interval in (0, float("nan"), float("inf"), 10**400, True):
        with pytest.raises(InvalidArgumentError, match="interval"):
            manager.background(interval=interval)
    with pytest.raises(RegistrationError, match="report"):
        manager.background(report="log")  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="give events= too"):
        manager.background(on_error=Park())
