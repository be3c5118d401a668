"""Middleware: onion order, caching, and every built-in, on sync and async buses."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from busway import (
    AsyncCommandBus,
    CommandBus,
    ConcurrencyError,
    DispatchTimeoutError,
    EventBus,
    InvalidArgumentError,
    QueryBus,
    RegistrationError,
    Registry,
    ValidationError,
    context,
)
from busway import middleware as mw
from busway.context import MessageContext
from tests.messages import CancelOrder, GetOrder, OrderPlaced, PlaceOrder

Trace = list[str]


def tracer(trace: Trace, name: str) -> Callable[[Any, Callable[[Any], Any]], Any]:
    def layer(message: Any, next: Callable[[Any], Any]) -> Any:
        trace.append(f"{name} in")
        result = next(message)
        trace.append(f"{name} out")
        return result

    return layer


def test_onion_order() -> None:
    """Bus-wide middleware (in use order), then type-scoped, then the handler's own."""
    trace: Trace = []
    handlers = Registry()
    handlers.command(PlaceOrder, middleware=[tracer(trace, "own")])(
        lambda c: trace.append("handler")
    )
    bus = CommandBus(handlers)
    bus.use(tracer(trace, "scoped"), on=PlaceOrder)
    bus.use(tracer(trace, "outer"))
    bus.use(tracer(trace, "inner"))
    bus.execute(PlaceOrder("x"))
    assert [
        "outer in", "inner in", "scoped in", "own in", "handler",
        "own out", "scoped out", "inner out", "outer out",
    ] == trace  # fmt: skip


def test_scoped_middleware_applies_to_subclasses_only_of_its_types() -> None:
    """``use(mw, on=T)`` wraps messages that are instances of T, subclasses included."""
    trace: Trace = []

    class UrgentPlaceOrder(PlaceOrder):
        pass

    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: None)
    bus.register(UrgentPlaceOrder, lambda c: None)
    bus.register(CancelOrder, lambda c: None)
    bus.use(tracer(trace, "placing"), on=(PlaceOrder,))
    bus.execute(UrgentPlaceOrder("x"))
    bus.execute(CancelOrder("1"))
    assert ["placing in", "placing out"] == trace


def test_middleware_may_transform_short_circuit_and_map_errors() -> None:
    """A middleware can change the message, answer without the handler, or map exceptions."""

    def upper(q: Any, next: Callable[[Any], Any]) -> Any:
        return next(GetOrder(q.order_id.upper()))

    def cache(q: Any, next: Callable[[Any], Any]) -> Any:
        return "cached" if q.order_id == "HIT" else next(q)

    def not_found_is_none(q: Any, next: Callable[[Any], Any]) -> Any:
        try:
            return next(q)
        except KeyError:
            return None

    bus = QueryBus()
    bus.register(GetOrder, lambda q: {"A": "order A"}[q.order_id])
    for layer in (upper, cache, not_found_is_none):
        bus.use(layer)
    assert [
        "order A",
        "cached",
        None,
    ] == [bus.execute(GetOrder(i)) for i in ("a", "hit", "missing")]


def test_adding_middleware_rebuilds_cached_chains() -> None:
    """A middleware added after dispatches have been cached applies from then on."""
    trace: Trace = []
    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: "x")
    bus.execute(PlaceOrder("x"))
    bus.use(tracer(trace, "late"))
    bus.execute(PlaceOrder("x"))
    assert ["late in", "late out"] == trace


def test_event_middleware_wraps_the_whole_delivery() -> None:
    """On an event bus, a middleware's next(event) delivers to all of the event's handlers."""
    trace: Trace = []
    bus = EventBus()
    bus.subscribe(OrderPlaced, lambda e: trace.append("first"))
    bus.subscribe(OrderPlaced, lambda e: trace.append("second"), middleware=[tracer(trace, "own")])
    bus.use(tracer(trace, "bus"))
    bus.publish(OrderPlaced("1"))
    assert ["bus in", "first", "own in", "second", "own out", "bus out"] == trace


def test_bad_middleware_is_refused() -> None:
    """use() refuses what is not a mw(message, next), and async middleware on sync buses."""

    async def async_layer(m: Any, next: Callable[[Any], Any]) -> Any:
        return await next(m)

    def one_parameter(m: Any) -> Any:
        return m

    bus = CommandBus()
    with pytest.raises(RegistrationError, match="must be callable"):
        bus.use(42)  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="must accept two arguments"):
        bus.use(one_parameter)  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="use AsyncCommandBus"):
        bus.use(async_layer)
    with pytest.raises(RegistrationError, match="takes message classes"):
        bus.use(tracer([], "x"), on=["PlaceOrder"])  # type: ignore[list-item]


# -- built-ins ------------------------------------------------------------------------------


def test_log_records_the_type_and_outcome_but_not_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """By default log() names the message's type, never its content (it may be personal)."""
    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: "x")
    bus.use(mw.log(level=logging.INFO))
    with caplog.at_level(logging.INFO, logger="busway"):
        bus.execute(PlaceOrder("ada"))
    first, last = [r.getMessage() for r in caplog.records]
    assert "handling PlaceOrder" == first
    assert re.fullmatch(r"handled PlaceOrder in \d+\.\d{3} ms", last)
    assert "ada" not in caplog.text
    assert ["PlaceOrder", "PlaceOrder"] == [
        getattr(r, "message_type", None) for r in caplog.records
    ]


def test_log_names_the_ids_of_the_correlation_context(caplog: pytest.LogCaptureFixture) -> None:
    """Under correlation(), each record names the message's ids, in its text and attributes."""
    seen: list[context.MessageContext | None] = []
    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: seen.append(context.current()))
    bus.use(mw.correlation())
    bus.use(mw.log(level=logging.INFO))
    with caplog.at_level(logging.INFO, logger="busway"):
        bus.execute(PlaceOrder("ada"))
    [ctx] = seen
    assert ctx is not None
    ids = f"[message_id={ctx.message_id} correlation_id={ctx.correlation_id} causation_id=None]"
    assert f"handling PlaceOrder {ids}" == caplog.records[0].getMessage()
    assert caplog.records[1].getMessage().endswith(f" ms {ids}")
    for record in caplog.records:
        assert (str(ctx.message_id), str(ctx.correlation_id), None) == (
            getattr(record, "message_id", ""),
            getattr(record, "correlation_id", ""),
            getattr(record, "causation_id", ""),
        )


def test_log_logs_the_message_only_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    """messages=True logs the repr; a function logs what it makes of the message."""
    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: "x")
    bus.use(mw.log(level=logging.INFO, messages=True))
    bus.use(mw.log(level=logging.INFO, messages=lambda m: f"for {m.customer[0]}***"))
    with caplog.at_level(logging.INFO, logger="busway"):
        bus.execute(PlaceOrder("ada"))
    assert [
        "handling PlaceOrder: PlaceOrder(customer='ada')",
        "handling PlaceOrder: for a***",
    ] == [r.getMessage() for r in caplog.records if r.getMessage().startswith("handling")]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"logger": "busway"}, "logger"),
        ({"level": "DEBUG"}, "level"),
        ({"level": True}, "level"),
        ({"level": -1}, "level"),
        ({"messages": "all"}, "messages"),
    ],
)
def test_log_refuses_bad_settings(kwargs: dict[str, Any], argument: str) -> None:
    """A logger, level or messages= of the wrong kind is an InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError) as info:
        mw.log(**kwargs)
    assert argument == info.value.argument


def test_log_takes_a_logger_adapter(caplog: pytest.LogCaptureFixture) -> None:
    """A LoggerAdapter is a logger too."""
    adapter = logging.LoggerAdapter(logging.getLogger("tests.adapted"), {"service": "shop"})
    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: "x")
    bus.use(mw.log(adapter, level=logging.INFO))
    with caplog.at_level(logging.INFO, logger="tests.adapted"):
        bus.execute(PlaceOrder("ada"))
    assert ["shop", "shop"] == [getattr(r, "service", None) for r in caplog.records]
    assert "log('tests.adapted', INFO)" in repr(mw.log(adapter, level=logging.INFO))


def test_log_reports_failures_at_warning_with_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failure is logged at WARNING or above with its traceback, then re-raised."""

    def failing(c: PlaceOrder) -> str:
        raise ValueError("no stock")

    logger = logging.getLogger("tests.orders")
    bus = CommandBus()
    bus.register(PlaceOrder, failing)
    bus.use(mw.log(logger))
    with (
        caplog.at_level(logging.DEBUG, logger="tests.orders"),
        pytest.raises(ValueError, match="no") as raised,
    ):
        bus.execute(PlaceOrder("x"))
    last = caplog.records[-1]
    assert (logging.WARNING, "tests.orders") == (last.levelno, last.name)
    assert re.fullmatch(
        r"PlaceOrder failed after \d+\.\d{3} ms: ValueError: no stock", last.getMessage()
    )
    assert last.exc_info is not None
    assert raised.value is last.exc_info[1]
    assert "Traceback" in caplog.text


def test_log_on_an_async_bus(caplog: pytest.LogCaptureFixture) -> None:
    """On an async bus log() records the same, and costs a level check when off."""
    bus = AsyncCommandBus()
    bus.register(PlaceOrder, lambda c: "x")
    bus.use(mw.log(level=logging.INFO))
    with caplog.at_level(logging.INFO, logger="busway"):
        assert "x" == asyncio.run(bus.execute(PlaceOrder("ada")))
    assert ["handling PlaceOrder", "handled"] == [
        r.getMessage()[: len("handled")] if r.getMessage().startswith("handled") else r.getMessage()
        for r in caplog.records
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="busway"):
        assert "x" == asyncio.run(bus.execute(PlaceOrder("ada")))
    assert [] == caplog.records


def test_log_when_disabled_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """With the level off, nothing is logged and the result passes through."""
    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: "x")
    bus.use(mw.log())
    with caplog.at_level(logging.WARNING, logger="busway"):
        assert "x" == bus.execute(PlaceOrder("x"))
    assert [] == caplog.records


def test_timing_reports_success_and_failure() -> None:
    """timing() reports each dispatch's message and duration, failures included."""
    reports: list[tuple[Any, float]] = []

    def maybe_fail(c: PlaceOrder) -> str:
        if c.customer == "bad":
            raise ValueError("bad customer")
        return "ok"

    bus = CommandBus()
    bus.register(PlaceOrder, maybe_fail)
    bus.use(mw.timing(lambda message, seconds: reports.append((message, seconds))))
    bus.execute(PlaceOrder("good"))
    with pytest.raises(ValueError, match="bad customer"):
        bus.execute(PlaceOrder("bad"))
    assert [PlaceOrder("good"), PlaceOrder("bad")] == [m for m, _ in reports]
    assert all(s >= 0 for _, s in reports)
    with pytest.raises(RegistrationError, match="needs a callable"):
        mw.timing(42)  # type: ignore[arg-type]


class Flaky:
    """A handler failing with ConcurrencyError a given number of times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, cmd: PlaceOrder) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConcurrencyError("order-1", 1, 2)
        return f"done after {self.calls}"


def test_retry_repeats_until_success_with_backoff() -> None:
    """retry() calls again after a listed failure, sleeping the backoff between calls."""
    sleeps: list[float] = []
    handler = Flaky(failures=2)
    bus = CommandBus()
    bus.register(PlaceOrder, handler)
    bus.use(mw.retry(attempts=3, backoff=mw.exponential_backoff(0.1, 2), sleep=sleeps.append))
    assert "done after 3" == bus.execute(PlaceOrder("x"))
    assert [0.1, 0.2] == sleeps


def test_retry_gives_up_after_attempts_with_the_last_error() -> None:
    """After *attempts* calls in all, the last failure is raised as it is."""
    handler = Flaky(failures=5)
    bus = CommandBus()
    bus.register(PlaceOrder, handler)
    bus.use(mw.retry(on=ConcurrencyError, attempts=2, backoff=0, sleep=lambda s: None))
    with pytest.raises(ConcurrencyError):
        bus.execute(PlaceOrder("x"))
    assert 2 == handler.calls


def test_retry_ignores_other_errors() -> None:
    """An exception not listed in *on* is raised at once, without a retry."""
    calls: list[int] = []

    def failing(c: PlaceOrder) -> str:
        calls.append(1)
        raise KeyError("x")

    bus = CommandBus()
    bus.register(PlaceOrder, failing)
    bus.use(mw.retry(sleep=lambda s: None))
    with pytest.raises(KeyError):
        bus.execute(PlaceOrder("x"))
    assert [1] == calls


def test_retry_on_an_async_bus_awaits_its_sleep() -> None:
    """On an async bus retry awaits an async sleep between calls."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    bus = AsyncCommandBus()
    bus.register(PlaceOrder, Flaky(failures=1))
    bus.use(mw.retry(backoff=0.5, sleep=sleep))
    assert "done after 2" == asyncio.run(bus.execute(PlaceOrder("x")))
    assert [0.5] == sleeps


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"on": ValueError("x")}, "exception class"),
        ({"on": ()}, "exception class"),
        ({"sleep": 0.5}, "callable sleep"),
    ],
)
def test_retry_refuses_what_it_cannot_register(kwargs: dict[str, Any], says: str) -> None:
    """Exception classes and a sleep function are registered: anything else is refused."""
    with pytest.raises(RegistrationError, match=says):
        mw.retry(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "argument", "says"),
    [
        ({"attempts": 0}, "attempts", "int >= 1"),
        ({"attempts": True}, "attempts", "int >= 1"),
        ({"attempts": 2.0}, "attempts", "int >= 1"),
        ({"backoff": -1}, "backoff", "number of seconds >= 0"),
        ({"backoff": "soon"}, "backoff", "function backoff"),
        ({"backoff": float("nan")}, "backoff", "number of seconds >= 0"),
    ],
)
def test_retry_refuses_bad_values(kwargs: dict[str, Any], argument: str, says: str) -> None:
    """A setting of a wrong value is an InvalidArgumentError naming it, a ValueError."""
    with pytest.raises(InvalidArgumentError, match=says) as info:
        mw.retry(**kwargs)
    assert argument == info.value.argument
    assert isinstance(info.value, ValueError)


def test_exponential_backoff_caps_and_validates() -> None:
    """The backoff doubles from its start and stops at its maximum."""
    backoff = mw.exponential_backoff(initial=0.5, factor=2, maximum=1.5)
    assert [0.5, 1.0, 1.5, 1.5] == [backoff(n) for n in range(1, 5)]
    with pytest.raises(InvalidArgumentError, match="factor must be a finite number >= 1"):
        mw.exponential_backoff(factor=0.5)


def test_exponential_backoff_stays_at_its_maximum_after_very_many_failures() -> None:
    """A growth beyond what a float holds gives the maximum, not an OverflowError."""
    assert 2.0 == mw.exponential_backoff(initial=1, factor=10, maximum=2)(10_000)
    assert 0.0 == mw.exponential_backoff(initial=0, factor=10, maximum=2)(10_000)


settings = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)


@given(initial=settings, factor=settings, maximum=settings)
def test_exponential_backoff_takes_a_setting_or_names_it(
    initial: Any, factor: Any, maximum: Any
) -> None:
    """Whatever it is given, it returns a backoff in [0, maximum] or raises InvalidArgumentError."""
    refused: str | None = None
    try:
        backoff = mw.exponential_backoff(initial=initial, factor=factor, maximum=maximum)
    except InvalidArgumentError as exc:
        refused = exc.argument
    if refused is None:
        assert all(0 <= backoff(n) <= maximum for n in (1, 2, 50, 5000))
    else:
        assert refused in ("initial", "factor", "maximum")


@attrs.frozen
class Transfer(PlaceOrder):
    amount: int = attrs.field(default=0)

    @amount.validator
    def _positive(self, attribute: Any, value: int) -> None:
        if value <= 0:
            raise ValueError("amount must be positive")


@pytest.mark.parametrize(
    ("verdict", "problems"),
    [
        (False, ["rejected by"]),
        (["no customer", "no items"], ["no customer", "no items"]),
        ("too large", ["too large"]),
    ],
)
def test_validation_rejects(verdict: object, problems: list[str]) -> None:
    """validation() raises ValidationError for False, a list of problems, or any other verdict."""
    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: "handled")
    bus.use(mw.validation(lambda c: verdict))
    with pytest.raises(ValidationError) as info:
        bus.execute(PlaceOrder("x"))
    assert len(problems) == len(info.value.problems)
    assert all(p.startswith(e) for p, e in zip(info.value.problems, problems, strict=True))
    assert PlaceOrder("x") == info.value.message


@pytest.mark.parametrize("verdict", [None, True, []])
def test_validation_accepts(verdict: object) -> None:
    """None, True or no problems let the message through."""
    bus = CommandBus()
    bus.register(PlaceOrder, lambda c: "handled")
    bus.use(mw.validation(lambda c: verdict))
    assert "handled" == bus.execute(PlaceOrder("x"))


def test_validation_maps_value_errors() -> None:
    """A validator raising ValueError (as attrs validators do) gives a ValidationError."""
    message = Transfer("x", 5)
    object.__setattr__(message, "amount", -1)
    bus = CommandBus()
    bus.register(Transfer, lambda c: "handled")
    bus.use(mw.validation(attrs.validate))
    with pytest.raises(ValidationError, match="amount must be positive") as info:
        bus.execute(message)
    assert isinstance(info.value.__cause__, ValueError)


def test_correlation_sets_and_chains_context() -> None:
    """Nested dispatches keep the correlation id and take the outer message id as cause."""
    seen: dict[str, MessageContext | None] = {}
    handlers = Registry()
    commands = CommandBus(handlers)
    events = EventBus(handlers)

    @handlers.command
    def place(cmd: PlaceOrder) -> str:
        seen["command"] = context.current()
        events.publish(OrderPlaced("1"))
        return "1"

    @handlers.event
    def placed(e: OrderPlaced) -> None:
        seen["event"] = context.current()

    commands.use(mw.correlation())
    events.use(mw.correlation())
    assert context.current() is None
    commands.execute(PlaceOrder("x"))
    outer, inner = seen["command"], seen["event"]
    assert outer is not None
    assert inner is not None
    assert (outer.message_id, None) == (outer.correlation_id, outer.causation_id)
    assert (outer.correlation_id, outer.message_id) == (inner.correlation_id, inner.causation_id)
    assert context.current() is None


def test_correlation_on_async_buses_is_per_task() -> None:
    """Concurrent async dispatches each see their own context."""
    bus = AsyncCommandBus()

    async def place(cmd: PlaceOrder) -> Any:
        await asyncio.sleep(0)
        return context.current()

    bus.register(PlaceOrder, place)
    bus.use(mw.correlation())

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(bus.execute(PlaceOrder(str(i))) for i in range(5))))

    contexts = asyncio.run(main())
    assert 5 == len({c.message_id for c in contexts})


def test_timeout_cancels_slow_dispatch() -> None:
    """timeout() raises DispatchTimeoutError when the handler runs too long."""

    async def slow(cmd: PlaceOrder) -> str:
        await asyncio.sleep(5)
        return "late"

    bus = AsyncCommandBus()
    bus.register(PlaceOrder, slow)
    bus.use(mw.timeout(0.01))
    with pytest.raises(DispatchTimeoutError, match=r"not handled within 0\.01s") as info:
        asyncio.run(bus.execute(PlaceOrder("x")))
    assert isinstance(info.value, TimeoutError)


def test_timeout_passes_fast_results_and_own_timeouts() -> None:
    """A fast handler's result passes; a handler's own TimeoutError is not relabelled."""

    async def own_timeout(cmd: CancelOrder) -> str:
        raise TimeoutError("upstream")

    bus = AsyncCommandBus()
    bus.register(PlaceOrder, lambda c: "fast")
    bus.register(CancelOrder, own_timeout)
    bus.use(mw.timeout(1))
    assert "fast" == asyncio.run(bus.execute(PlaceOrder("x")))
    with pytest.raises(TimeoutError, match="upstream") as info:
        asyncio.run(bus.execute(CancelOrder("1")))
    assert not isinstance(info.value, DispatchTimeoutError)


def test_timeout_is_refused_by_sync_buses() -> None:
    """A sync bus refuses timeout(), which needs an event loop to cancel a handler."""
    with pytest.raises(RegistrationError, match="AsyncCommandBus"):
        CommandBus().use(mw.timeout(1))


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), True, "1", None])
def test_timeout_refuses_what_is_no_limit(seconds: Any) -> None:
    """timeout() takes a finite number of seconds > 0: anything else is InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError, match="seconds must be a finite number > 0"):
        mw.timeout(seconds)


def test_built_ins_have_readable_reprs() -> None:
    """Built-in middleware say what they are when printed."""
    assert "<busway.middleware.retry(on=(ConcurrencyError), attempts=3)>" == repr(mw.retry())
    assert "<busway.middleware.timeout(2)>" == repr(mw.timeout(2))


def test_all_built_ins_work_on_an_async_bus(caplog: pytest.LogCaptureFixture) -> None:
    """Every built-in runs on an async bus, in one stack."""
    reports: list[Any] = []
    bus = AsyncCommandBus()

    async def place(cmd: PlaceOrder) -> Any:
        return context.current()

    bus.register(PlaceOrder, place)
    for layer in (
        mw.log(level=logging.INFO),
        mw.timing(lambda m, s: reports.append(m)),
        mw.correlation(),
        mw.validation(lambda m: None),
        mw.retry(),
        mw.timeout(1),
    ):
        bus.use(layer)
    with caplog.at_level(logging.INFO, logger="busway"):
        ctx = asyncio.run(bus.execute(PlaceOrder("x")))
    assert isinstance(ctx, MessageContext)
    assert [PlaceOrder("x")] == reports
    assert 2 == len(caplog.records)


def test_context_scope_carries_an_outside_correlation_id() -> None:
    """context.scope() makes a given context current, and dispatches inside become its children."""
    incoming = MessageContext.root()
    bus = CommandBus()
    seen: list[MessageContext | None] = []
    bus.register(PlaceOrder, lambda c: seen.append(context.current()))
    bus.use(mw.correlation())
    with context.scope(incoming) as current:
        assert incoming is current is context.current()
        bus.execute(PlaceOrder("x"))
    [inner] = seen
    assert inner is not None
    assert (incoming.correlation_id, incoming.message_id) == (
        inner.correlation_id,
        inner.causation_id,
    )
    assert context.current() is None


def test_context_scope_without_a_context_opens_a_new_message() -> None:
    """context.scope() opens a root outside any context and a child inside one."""
    with context.scope() as outer:
        assert outer is context.current()
        assert (outer.message_id, None) == (outer.correlation_id, outer.causation_id)
        with context.scope() as inner:
            assert (outer.correlation_id, outer.message_id) == (
                inner.correlation_id,
                inner.causation_id,
            )
        assert outer is context.current()
    assert context.current() is None


def test_empty_scope_is_refused() -> None:
    """use(mw, on=[]) would silently wrap nothing, so it is refused."""
    with pytest.raises(RegistrationError, match="got no types"):
        CommandBus().use(tracer([], "x"), on=[])


def test_event_middleware_sees_none_from_next() -> None:
    """On an event bus next(event) returns None, however many handlers there are."""
    results: list[Any] = []
    bus = EventBus()
    bus.use(lambda e, next: results.append(next(e)))
    bus.subscribe(OrderPlaced, lambda e: "one")
    bus.publish(OrderPlaced("1"))
    bus.subscribe(OrderPlaced, lambda e: "two")
    bus.publish(OrderPlaced("1"))
    assert [None, None] == results


def test_timeout_refusal_gives_only_advice_that_applies() -> None:
    """Refusing a built-in async middleware suggests the async bus, not rewriting it."""
    with pytest.raises(RegistrationError) as info:
        CommandBus().use(mw.timeout(1))
    assert "plain def" not in str(info.value)
