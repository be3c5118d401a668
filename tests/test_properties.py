"""Properties of delivery and of middleware chains, over generated shapes."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from busway import AsyncEventBus, CommandBus, EventBus, Subscription
from tests.messages import OrderPlaced
from tests.strategies import event_hierarchies, layer_specs


@given(data=st.data(), classes=event_hierarchies())
def test_every_matching_subscription_gets_each_event_once_in_order(
    data: st.DataObject, classes: list[type]
) -> None:
    """Each subscription to a class in the event's MRO is called once, in subscription order."""
    bus = EventBus()
    calls: list[tuple[int, object]] = []
    subscriptions: list[tuple[int, type, Subscription]] = []
    steps = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(["subscribe", "unsubscribe", "publish"]),
                st.sampled_from(classes),
                st.integers(0, 20),
            ),
            max_size=25,
        )
    )
    for action, cls, index in steps:
        if action == "subscribe":
            number = len(subscriptions)

            def handler(event: object, number: int = number) -> None:
                calls.append((number, event))

            subscriptions.append((number, cls, bus.subscribe(cls, handler)))
        elif action == "unsubscribe" and subscriptions:
            subscriptions[index % len(subscriptions)][2].unsubscribe()
        elif action == "publish":
            event = cls()
            calls.clear()
            bus.publish(event)
            expected = [
                (number, event)
                for number, subscribed, sub in subscriptions
                if sub.active and isinstance(event, subscribed)
            ]
            assert expected == calls


class Ping:
    """A command whose payload records what the layers did to it."""

    def __init__(self, tags: str = "") -> None:
        self.tags = tags


class Failure(Exception):
    def __init__(self, number: int) -> None:
        self.number = number


def make_layer(spec: tuple[str, Any], name: int, trace: list[str]) -> Callable[..., Any]:
    kind, value = spec

    def layer(message: Ping, next: Callable[[Ping], Any]) -> Any:
        trace.append(f"{name} in")
        if kind == "answer":
            return f"answered by {name}: {value}"
        if kind == "fail":
            raise Failure(value)
        if kind == "tag":
            message = Ping(message.tags + value)
        if kind == "rescue":
            try:
                result = next(message)
            except Failure as exc:
                result = f"rescued {exc.number} at {name}"
        else:
            result = next(message)
        trace.append(f"{name} out")
        return result

    return layer


def model(specs: list[tuple[str, Any]], message: Ping, trace: list[str]) -> Any:
    """What a chain of these layers must do, computed by plain recursion."""

    def run(i: int, msg: Ping) -> Any:
        if i == len(specs):
            trace.append("handler")
            return f"handled {msg.tags}"
        return make_layer(specs[i], i, trace)(msg, lambda m: run(i + 1, m))

    return run(0, message)


@given(
    bus_wide=st.lists(layer_specs(), max_size=5),
    scoped=st.lists(st.tuples(layer_specs(), st.booleans()), max_size=3),
    own=st.lists(layer_specs(), max_size=3),
    shuffle=st.randoms(use_true_random=False),
)
def test_middleware_stacks_follow_the_onion(
    bus_wide: list[tuple[str, Any]],
    scoped: list[tuple[tuple[str, Any], bool]],
    own: list[tuple[str, Any]],
    shuffle: random.Random,
) -> None:
    """Layers run bus-wide, scoped (matching only), own; results and errors travel back.

    Bus-wide and scoped layers are added in a random interleaving: only the order within
    each group matters.
    """
    trace: list[str] = []

    def handler(message: Ping) -> str:
        trace.append("handler")
        return f"handled {message.tags}"

    matching = [spec for spec, applies in scoped if applies]
    order = [*bus_wide, *matching, *own]
    names = iter(range(len(order)))
    bus_layers = [make_layer(spec, next(names), trace) for spec in bus_wide]
    scoped_layers = [
        (make_layer(spec, next(names) if applies else 99, trace), Ping if applies else int)
        for spec, applies in scoped
    ]
    uses = ["bus"] * len(bus_layers) + ["scoped"] * len(scoped_layers)
    shuffle.shuffle(uses)
    bus = CommandBus()
    for group in uses:
        if group == "bus":
            bus.use(bus_layers.pop(0))
        else:
            layer, scope = scoped_layers.pop(0)
            bus.use(layer, on=scope)
    bus.register(Ping, handler, middleware=[make_layer(s, next(names), trace) for s in own])

    expected_trace: list[str] = []
    try:
        expected: Any = model(order, Ping(), expected_trace)
    except Failure as exc:
        expected = ("failed", exc.number)
    try:
        actual: Any = bus.execute(Ping())
    except Failure as exc:
        actual = ("failed", exc.number)
    assert (expected, expected_trace) == (actual, trace)


class Refused(Exception):
    """What a generated failing handler raises, naming its subscription."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


def _failing_handlers(
    plan: list[tuple[int, bool]], calls: list[int]
) -> list[Callable[[object], None]]:
    """One callable per distinct number in *plan*, subscribed again for each repeat; its
    k-th call fails as the k-th subscription of that number says."""
    made: dict[int, Callable[[object], None]] = {}
    for number in dict(plan):
        fates = [fails for n, fails in plan if n == number]

        def handler(event: object, number: int = number, fates: list[bool] = fates) -> None:
            calls.append(number)
            if fates[calls.count(number) - 1]:
                raise Refused(number)

        made[number] = handler
    return [made[number] for number, _ in plan]


def _outcome(error: BaseException | None) -> list[int]:
    if error is None:
        return []
    if isinstance(error, ExceptionGroup):
        return [number for exc in error.exceptions for number in _outcome(exc)]
    assert isinstance(error, Refused)
    return [error.number]


#: Subscriptions by number (a repeated number subscribes the same callable again) and
#: whether that subscription's call fails.
plans = st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=12)


@given(plan=plans, wrapped=st.booleans(), is_async=st.booleans())
def test_every_subscription_runs_once_whatever_fails(
    plan: list[tuple[int, bool]], wrapped: bool, is_async: bool
) -> None:
    """Each subscription runs once, in order, whichever fail (the same callable subscribed
    twice included); then the one failure or a group of all, in order, is raised."""
    calls: list[int] = []
    handlers = _failing_handlers(plan, calls)
    bus = AsyncEventBus() if is_async else EventBus()
    for handler in handlers:
        bus.subscribe(OrderPlaced, handler)
    if wrapped:
        bus.use(lambda event, next: next(event))
    error: BaseException | None = None
    try:
        published = bus.publish(OrderPlaced("1"))
        if inspect.iscoroutine(published):
            asyncio.run(published)
    except Exception as exc:
        error = exc
    assert [number for number, _ in plan] == calls
    assert [number for number, fails in plan if fails] == _outcome(error)
