"""Scenarios for aggregates, command handlers and sagas: passing, failing, and misused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from busway import CommandBus, Registry
from busway.aggregates import Repository
from busway.demo import (
    CancelOrder,
    CannotCancelError,
    LineItem,
    Order,
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
)
from busway.demo.messages import EVENT_TYPES
from busway.eventstore import InMemoryEventStore
from busway.testing import (
    AggregateScenario,
    CommandScenario,
    Like,
    SagaScenario,
    ScenarioError,
    Scheduled,
)
from examples.booking.messages import (
    ChargePayment,
    PaymentCharged,
    PaymentOverdue,
    RejectOrder,
    ReleaseStock,
    ShipOrder,
    StockReserved,
)
from examples.booking.messages import OrderPlaced as BookingPlaced
from examples.booking.saga import Booking

ITEMS = (LineItem("mug", 2, Decimal("4.50")),)
PLACED = OrderPlaced("o-1", "ann", ITEMS, Decimal("9.00"))
PENDING = AggregateScenario(Order, id="o-1", types=EVENT_TYPES).given(PLACED)

FAILING = """
from decimal import Decimal
from busway.testing import AggregateScenario
from busway.demo import LineItem, Order, OrderCancelled, OrderPlaced, OrderShipped

PLACED = OrderPlaced("o-1", "ann", (LineItem("mug", 2, Decimal("4.50")),), Decimal("9.00"))
PENDING = AggregateScenario(Order, id="o-1").given(PLACED)

def test_wrong_field():
    PENDING.when(lambda order: order.cancel("late")).then(OrderCancelled("o-1", "early"))

def test_missing_and_extra():
    PENDING.when(lambda order: order.ship("UPS")).then(
        OrderCancelled("o-1", "late"), OrderShipped("o-1", "UPS"), OrderShipped("o-2", "DHL")
    )

def test_unexpected_error():
    PENDING.given(OrderShipped("o-1", "UPS")).when(lambda o: o.cancel("late")).then_nothing()
"""


def test_failing_scenarios_report_field_by_field(pytester: pytest.Pytester) -> None:
    """A failed scenario fails its test with a diff of expected against recorded events."""
    pytester.makepyfile(test_failing=FAILING)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*Order recorded other events than expected",
            "*expected 1 event, got 1:",
            "*~ 1  expected OrderCancelled(order_id='o-1', reason='early')",
            "*got      OrderCancelled(order_id='o-1', reason='late')",
            "*reason: expected 'early', got 'late'",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*expected 3 events, got 1:",
            "*-    missing  OrderCancelled(order_id='o-1', reason='late')",
            "*1  OrderShipped(order_id='o-1', carrier='UPS')",
            "*-    missing  OrderShipped(order_id='o-2', carrier='DHL')",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*expected 0 new events, but the action raised CannotCancelError: order o-1*"]
    )


def test_aggregate_scenario_passes_and_returns_the_aggregate() -> None:
    """then() returns the aggregate, for checks on its state."""
    order = PENDING.when(lambda order: order.ship("UPS")).then(OrderShipped("o-1", "UPS"))
    assert "UPS" == order.carrier


def test_aggregate_scenario_creating() -> None:
    """An action that returns an aggregate (a creating classmethod) is checked on that one."""
    AggregateScenario(Order, id="o-1").when(lambda _: Order.place("o-1", "ann", ITEMS)).then(
        Like(OrderPlaced, order_id="o-1", total=Decimal("9.00"))
    )


def test_aggregate_scenario_then_raises() -> None:
    """then_raises returns the error; a wrong class, message or no error fails."""
    shipped = PENDING.given(OrderShipped("o-1", "UPS")).when(lambda o: o.cancel("late"))
    error = shipped.then_raises(CannotCancelError, match="it is shipped")
    assert "o-1" == error.order_id
    with pytest.raises(AssertionError, match="does not match 'delivered'"):
        shipped.then_raises(CannotCancelError, match="delivered")
    with pytest.raises(AssertionError, match="but it raised CannotCancelError"):
        shipped.then_raises(KeyError)
    with pytest.raises(AssertionError, match="to raise KeyError, but it did not"):
        PENDING.when(lambda o: o.cancel("late")).then_raises(KeyError)


def test_aggregate_scenario_then_nothing() -> None:
    """then_nothing fails when the action records an event."""
    with pytest.raises(AssertionError, match=r"\+ 1  extra    OrderCancelled"):
        PENDING.when(lambda o: o.cancel("late")).then_nothing()


def test_scenarios_refuse_misuse() -> None:
    """A scenario without an action, or built on a non-aggregate, says what to do."""
    with pytest.raises(ScenarioError, match=r"call \.when"):
        PENDING.then()
    with pytest.raises(ScenarioError, match="Aggregate subclass"):
        AggregateScenario(int)  # type: ignore[type-var]
    with pytest.raises(ScenarioError, match="callable"):
        PENDING.when("cancel")  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match="has no field 'id'"):
        Like(OrderPlaced, id="o-1")


@pytest.fixture
def store() -> Iterator[InMemoryEventStore]:
    with InMemoryEventStore(types=EVENT_TYPES) as events:
        yield events


def _order_commands(store: InMemoryEventStore) -> CommandBus:
    orders = Repository(store, Order)
    handlers = Registry()

    @handlers.command
    def cancel(command: CancelOrder) -> None:
        order = orders.get(command.order_id)
        order.cancel(command.reason)
        orders.save(order)

    return CommandBus(handlers)


def test_command_scenario(store: InMemoryEventStore) -> None:
    """Given stored events, the command's new events are compared; errors too."""
    scenario = CommandScenario(_order_commands(store), store).given("order-o-1", PLACED)
    scenario.when(CancelOrder("o-1", "late")).then(OrderCancelled("o-1", "late"))
    assert [1, 2] == [r.version for r in store.read_stream("order-o-1")]


def test_command_scenario_failures(store: InMemoryEventStore) -> None:
    """A wrong event, an unexpected error and a missing error each fail with a report."""
    bus = _order_commands(store)
    start = CommandScenario(bus, store).given("order-o-1", PLACED, OrderCancelled("o-1", "x"))
    with pytest.raises(AssertionError, match="CancelOrder raised CannotCancelError"):
        start.when(CancelOrder("o-1", "late")).then(OrderCancelled("o-1", "late"))
    with pytest.raises(AssertionError, match="reason: expected 'early', got 'late'"):
        CommandScenario(bus, store).given("order-o-2", PLACED).when(
            CancelOrder("o-2", "late")
        ).then(OrderCancelled("o-1", "early"))


def test_command_scenario_then_raises(store: InMemoryEventStore) -> None:
    """then_raises passes on the expected error, and returns it."""
    scenario = CommandScenario(_order_commands(store), store).given(
        "order-o-1", PLACED, OrderShipped("o-1", "UPS")
    )
    error = scenario.when(CancelOrder("o-1", "late")).then_raises(CannotCancelError)
    assert "o-1" == error.order_id
    with pytest.raises(ScenarioError, match="stream id first"):
        scenario.given(PLACED)  # type: ignore[arg-type]


REQUESTED = BookingPlaced("b-1", "kettle", 2, Decimal("30.00"))
BOOKING = SagaScenario(Booking).given(REQUESTED)


def test_saga_scenario_commands_and_deadlines() -> None:
    """After stock is reserved the saga charges and sets a payment deadline."""
    BOOKING.when(StockReserved("b-1")).then(
        ChargePayment("pay-b-1", Decimal("30.00")),
        deadlines=[Scheduled(PaymentOverdue("pay-b-1"), timedelta(minutes=15))],
    )


def test_saga_scenario_time_passing() -> None:
    """When the payment is overdue, the saga releases the stock and rejects the order."""
    BOOKING.given(StockReserved("b-1")).given_time_passed(timedelta(minutes=5)).when_time_passes(
        timedelta(minutes=10)
    ).then(ReleaseStock("b-1"), Like(RejectOrder, order_id="b-1"), deadlines=[])


def test_saga_scenario_compensation() -> None:
    """A command listed in fails= raises, and the saga compensates."""
    SagaScenario(Booking, fails={ChargePayment: RuntimeError("declined")}).given(REQUESTED).when(
        StockReserved("b-1")
    ).then(
        Like(ChargePayment),
        ReleaseStock("b-1"),
        RejectOrder("b-1", "payment failed: declined"),
        deadlines=[],
    )


def test_saga_scenario_failures() -> None:
    """Wrong commands and wrong deadlines fail with a diff; unknown commands are explained."""
    with pytest.raises(AssertionError, match="sent other commands than expected"):
        BOOKING.when(StockReserved("b-1")).then(Like(ReleaseStock))
    with pytest.raises(AssertionError, match=r"after: expected datetime.timedelta\(days=1\)"):
        BOOKING.when(StockReserved("b-1")).then(
            Like(ChargePayment), deadlines=[Scheduled(PaymentOverdue("pay-b-1"), timedelta(1))]
        )
    with pytest.raises(AssertionError, match=r"\+ 1  extra    ShipOrder\(order_id='b-1'\)"):
        BOOKING.given(StockReserved("b-1")).when(PaymentCharged("pay-b-1")).then()
    BOOKING.given(StockReserved("b-1")).when(PaymentCharged("pay-b-1")).then(
        ShipOrder("b-1"), deadlines=[]
    )
