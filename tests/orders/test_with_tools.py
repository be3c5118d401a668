"""The orders domain, tested with busway.testing: scenarios, recorders, strategies, a machine."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule

from busway import CommandBus, EventBus, Registry
from busway.aggregates import Repository
from busway.demo import (
    CancelOrder,
    CannotCancelError,
    CannotShipError,
    EmptyOrderError,
    LineItem,
    Order,
    OrderCancelled,
    OrderError,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
    PlaceOrder,
    ShipOrder,
)
from busway.demo.messages import EVENT_TYPES
from busway.eventstore import EventTypes, InMemoryEventStore
from busway.testing import (
    AggregateMachine,
    AggregateScenario,
    BusRecorder,
    CommandScenario,
    Like,
    Recorder,
)
from busway.testing.strategies import event_streams, histories, messages

MUG = LineItem("mug", 2, Decimal("4.50"))
PLACED = OrderPlaced("o-1", "ann", (MUG,), Decimal("9.00"))
PENDING = AggregateScenario(Order, id="o-1", types=EVENT_TYPES).given(PLACED)

line_items = messages(
    LineItem,
    sku=st.sampled_from(["mug", "kettle"]),
    quantity=st.integers(0, 3),
    unit_price=st.decimals(min_value=0, max_value=100, places=2),
)
item_lists = st.lists(line_items, max_size=3).map(tuple)


@pytest.fixture
def event_types() -> EventTypes:
    """The plugin's store fixtures keep the orders' events."""
    return EVENT_TYPES


# -- scenarios ------------------------------------------------------------------------------


def test_placing_records_the_total() -> None:
    """Placing an order records OrderPlaced with the sum of its lines."""
    AggregateScenario(Order, id="o-1").when(
        lambda _: Order.place("o-1", "ann", (MUG, LineItem("kettle", 1, Decimal("20"))))
    ).then(Like(OrderPlaced, order_id="o-1", total=Decimal("29.00")))


def test_placing_nothing_is_refused() -> None:
    """An order without items is refused."""
    AggregateScenario(Order).when(lambda _: Order.place("o-1", "ann", ())).then_raises(
        EmptyOrderError, match="at least one item"
    )


def test_a_pending_order_cancels() -> None:
    """A pending order can be cancelled, and is then cancelled."""
    order = PENDING.when(lambda o: o.cancel("late")).then(OrderCancelled("o-1", "late"))
    assert OrderStatus.CANCELLED == order.status


def test_a_shipped_order_does_not_cancel() -> None:
    """A shipped order cannot be cancelled."""
    PENDING.given(OrderShipped("o-1", "UPS")).when(lambda o: o.cancel("late")).then_raises(
        CannotCancelError, match="it is shipped"
    )


def test_an_order_ships_once() -> None:
    """A second shipment is refused."""
    shipped = PENDING.when(lambda o: o.ship("UPS")).then(OrderShipped("o-1", "UPS"))
    assert "UPS" == shipped.carrier
    PENDING.given(OrderShipped("o-1", "UPS")).when(lambda o: o.ship("DHL")).then_raises(
        CannotShipError
    )


# -- command handlers on the plugin's fixtures -----------------------------------------------


@pytest.fixture
def orders(
    command_bus: CommandBus, event_bus: EventBus, event_store: InMemoryEventStore
) -> Repository[Order]:
    """The orders' command handlers on the fixture buses, saving into the fixture store."""
    repository = Repository(event_store, Order, event_bus=event_bus)
    handlers = Registry()

    @handlers.command
    def place(command: PlaceOrder) -> str:
        order = Order.place("o-1", command.customer_id, command.items)
        repository.save(order)
        return order.id

    @handlers.command
    def cancel(command: CancelOrder) -> None:
        order = repository.get(command.order_id)
        order.cancel(command.reason)
        repository.save(order)

    @handlers.command
    def ship(command: ShipOrder) -> None:
        order = repository.get(command.order_id)
        order.ship(command.carrier)
        repository.save(order)

    command_bus.include(handlers)
    return repository


def test_cancel_command(
    orders: Repository[Order], command_bus: CommandBus, event_store: InMemoryEventStore
) -> None:
    """CancelOrder on a stored pending order stores OrderCancelled after it."""
    CommandScenario(command_bus, event_store).given("order-o-1", PLACED).when(
        CancelOrder("o-1", "late")
    ).then(OrderCancelled("o-1", "late"))


def test_ship_command_refused(
    orders: Repository[Order], command_bus: CommandBus, event_store: InMemoryEventStore
) -> None:
    """ShipOrder on a cancelled order raises and stores nothing."""
    CommandScenario(command_bus, event_store).given(
        "order-o-1", PLACED, OrderCancelled("o-1", "late")
    ).when(ShipOrder("o-1", "UPS")).then_raises(CannotShipError)


def test_saved_events_are_published(
    orders: Repository[Order], command_bus: CommandBus, recorder: BusRecorder, published: Recorder
) -> None:
    """The repository publishes what it saved, after the command that caused it."""
    assert "o-1" == command_bus.execute(PlaceOrder("ann", (MUG,)))
    command_bus.execute(ShipOrder("o-1", "UPS"))
    recorder.assert_executed(Like(PlaceOrder), ShipOrder("o-1", "UPS"), exact=True)
    published.assert_recorded(Like(OrderPlaced, customer_id="ann"), OrderShipped("o-1", "UPS"))
    with pytest.raises(AssertionError, match="carrier: expected 'DHL', got 'UPS'"):
        published.assert_recorded(OrderShipped("o-1", "DHL"))


# -- hypothesis -----------------------------------------------------------------------------


@settings(max_examples=50)
@given(event_streams(OrderPlaced, OrderCancelled, OrderShipped, max_size=5))
def test_every_order_event_survives_the_store(events: list[object]) -> None:
    """Any order event, with any field values, reads back from the store as it was written."""
    with InMemoryEventStore(types=EVENT_TYPES) as store:
        store.append("s", events)
        assert events == [r.event for r in store.read_stream("s")]


order_histories = histories(
    st.builds(Order.place, st.just("o-1"), st.sampled_from(["ann", "bob"]), item_lists),
    st.sampled_from([lambda o: o.cancel("late"), lambda o: o.ship("UPS")]),
    refused=OrderError,
)


@settings(max_examples=50)
@given(order_histories)
def test_a_history_ends_at_most_once(history: list[object]) -> None:
    """A real history starts with OrderPlaced, then has at most one cancel or shipment."""
    assert isinstance(history[0], OrderPlaced)
    assert len(history) <= 2
    assert Order.from_history("o-1", history).version == len(history)


class OrderMachine(AggregateMachine[Order]):
    """Random commands on one order; busway checks storage and snapshots after each."""

    types = EVENT_TYPES
    refused = (OrderError,)

    @initialize(customer=st.sampled_from(["ann", "bob"]), items=item_lists)
    def place(self, customer: str, items: tuple[LineItem, ...]) -> None:
        self.create(lambda: Order.place("o-1", customer, items))

    @rule(reason=st.sampled_from(["late", "changed my mind"]))
    def cancel(self, reason: str) -> None:
        self.attempt(lambda order: order.cancel(reason))

    @rule(carrier=st.sampled_from(["UPS", "DHL"]))
    def ship(self, carrier: str) -> None:
        self.attempt(lambda order: order.ship(carrier))

    def check_aggregate(self, order: Order) -> None:
        """An order totals its lines; it has a carrier exactly when shipped."""
        assert order.total == sum((i.amount for i in order.items), Decimal(0))
        assert (order.carrier is not None) == (order.status is OrderStatus.SHIPPED)


OrderMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=10)
TestOrderMachine = OrderMachine.TestCase
