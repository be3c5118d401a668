"""Dispatch suites: busway's buses beside hand-written limits and peer libraries.

    python benchmarks/dispatch.py [--quick] [--no-peers]   # the dispatch suites only

Suites: ``dispatch`` (sync commands and queries), ``publish`` (events to 1 and 10 handlers,
sync and async), ``middleware`` (depth 0 to 10), ``async`` (async commands and queries,
beside NestJS on Node.js when ``node`` and ``npm`` are on PATH), ``types`` (cost against the
number of registered types). Each figure is the median over rounds of a tight
loop, minus the loop's own cost, in nanoseconds per call; ratios compare it with the limit
named beside it. Absolute figures vary by machine; read the ratios.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import _peers
from _harness import Options, Peers, Table, Timer

from busway import (
    AsyncCommandBus,
    AsyncEventBus,
    AsyncQueryBus,
    Command,
    CommandBus,
    Event,
    EventBus,
    Query,
    QueryBus,
    Registry,
    middleware,
)

Handler = Callable[[Any], Any]
Middleware = Callable[[Any, Handler], Any]
NS = "ns/op"


class Ping(Command[int]):
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class Ask(Query[int]):
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class Pinged(Event):
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


def handle(message: Ping | Ask) -> int:
    return message.n


async def handle_async(message: Ping | Ask) -> int:
    return message.n


def passthrough(message: Any, next: Handler) -> Any:
    return next(message)


# -- the hand-written limits ------------------------------------------------------------------


class MinimalBus:
    """The least a bus can do: one dict lookup and a call, inside a method."""

    def __init__(self, handlers: Mapping[type, Handler]) -> None:
        self._handlers = handlers

    def execute(self, message: Any) -> Any:
        return self._handlers[type(message)](message)


class MinimalEventBus:
    """The least an event bus can do: one dict lookup, then call each handler."""

    def __init__(self, handlers: dict[type, list[Handler]]) -> None:
        self._handlers = handlers

    def publish(self, event: Any) -> None:
        for handler in self._handlers[type(event)]:
            handler(event)


class MinimalAsyncBus:
    """The async twin of MinimalBus: a lookup, a call and an await."""

    def __init__(self, handlers: dict[type, Callable[[Any], Awaitable[Any]]]) -> None:
        self._handlers = handlers

    async def execute(self, message: Any) -> Any:
        return await self._handlers[type(message)](message)


class ReturningAsyncBus:
    """MinimalBus on async handlers: it returns the handler's coroutine for the caller to
    await, so no coroutine of its own is made (and no error can wait for the await)."""

    def __init__(self, handlers: dict[type, Callable[[Any], Awaitable[Any]]]) -> None:
        self._handlers = handlers

    def execute(self, message: Any) -> Awaitable[Any]:
        return self._handlers[type(message)](message)


class MinimalAsyncEventBus:
    """The async twin of MinimalEventBus: a lookup, then await each handler in turn."""

    def __init__(self, handlers: dict[type, list[Callable[[Any], Awaitable[Any]]]]) -> None:
        self._handlers = handlers

    async def publish(self, event: Any) -> None:
        for handler in self._handlers[type(event)]:
            await handler(event)


def closure_layers(handler: Handler, depth: int) -> Handler:
    """Bare closure layers, ``def layer(m): return next(m)``: one frame per layer."""
    for _ in range(depth):

        def layer(message: Any, next: Handler = handler) -> Any:
            return next(message)

        handler = layer
    return handler


def composed_layers(handler: Handler, mw: Middleware, depth: int) -> Handler:
    """The same ``mw(message, next)`` middleware busway runs, composed by hand."""
    for _ in range(depth):

        def link(message: Any, next: Handler = handler) -> Any:
            return mw(message, next)

        handler = link
    return handler


def many_types(count: int, base: type = Command) -> list[type]:
    return [type(f"Filler{i}", (base,), {"__slots__": ()}) for i in range(count)]


def _timer(options: Options, full: int, quick: int) -> Timer:
    return Timer(options.size(full, quick), options.repeats)


def _params(timer: Timer) -> dict[str, Any]:
    return {"n": timer.n, "repeats": timer.repeats}


# -- suites -----------------------------------------------------------------------------------


def dispatch_suite(options: Options) -> Table:
    """Sync command and query dispatch, beside a direct call, a minimal bus and peers."""
    table = Table("dispatch", "Sync dispatch: one command or query, one handler, no middleware")
    table.ratio_means = "ns/op / ns/op of the minimal bus (lower is faster)"
    peers = Peers(options, table)
    timer = _timer(options, 100_000, 30_000)
    ping, ask = Ping(1), Ask(1)
    timer.case("direct call", handle, ping)
    timer.case("minimal bus", MinimalBus({Ping: handle}).execute, ping)
    registry = Registry()
    registry.command(Ping)(handle)
    registry.query(Ask)(handle)
    timer.case("busway CommandBus.execute", CommandBus(registry).execute, ping)
    timer.case("busway QueryBus.execute", QueryBus(registry).execute, ask)
    contenders = {
        "lato Application.execute": ("lato", lambda: _peers.lato_setup(is_async=False)),
        "mediatr Mediator.send": ("mediatr", lambda: _peers.mediatr_setup(is_async=False)),
    }
    present = []
    for case, (library, setup) in contenders.items():
        built = peers.build(library, setup)
        if built is not None:
            call, args, kwargs = built
            assert 1 == call(*args, **kwargs), f"{library} did not run the handler"
            timer.case(case, call, *args, n=max(1, timer.n // 10), **kwargs)
            present.append((case, library))
    ns = timer.run()
    table.params = _params(timer)
    table.add("direct call", ns["direct call"], NS, library="direct call")
    table.add("minimal bus", ns["minimal bus"], NS, against="minimal bus", library="minimal bus")
    for case in ("busway CommandBus.execute", "busway QueryBus.execute"):
        table.add(case, ns[case], NS, against="minimal bus", library="busway")
    for case, library in present:
        table.add(case, ns[case], NS, against="minimal bus", library=library)
    if present:
        table.notes.append(
            "lato and mediatr send commands and queries down one path, so they appear once"
        )
    return table


def publish_suite(options: Options) -> Table:
    """Publishing one event to 1 and to 10 handlers, beside a minimal event bus and peers."""
    table = Table("publish", "Publish one event to 1 and to 10 do-nothing handlers")
    table.ratio_means = "ns/op / ns/op of the minimal (async) event bus (lower is faster)"
    peers = Peers(options, table)
    timer = _timer(options, 100_000, 30_000)
    event = Pinged(1)
    present: dict[int, list[tuple[str, str]]] = {}
    keep_alive = []
    for count in (1, 10):
        group = f"{count} handler{'s' if count > 1 else ''}"
        receivers = _peers.receivers(count)
        keep_alive.append(receivers)
        timer.case(
            f"{group}: minimal event bus",
            MinimalEventBus({Pinged: list(receivers)}).publish,
            event,
        )
        bus = EventBus()
        for receiver in receivers:
            bus.subscribe(Pinged, receiver)
        timer.case(f"{group}: busway EventBus.publish", bus.publish, event)
        contenders: dict[str, tuple[str, Callable[[], _peers.Call]]] = {
            "blinker Signal.send": (
                "blinker",
                functools.partial(_peers.blinker_setup, receivers, event),
            ),
            "pyee EventEmitter.emit": (
                "pyee",
                functools.partial(_peers.pyee_setup, receivers, event),
            ),
            "pypubsub pub.sendMessage": (
                "pypubsub",
                functools.partial(_peers.pypubsub_setup, receivers, event),
            ),
        }
        present[count] = []
        for case, (library, setup) in contenders.items():
            if count > 1 and library not in {lib for _, lib in present[1]}:
                continue  # one note per missing peer is enough
            built = peers.build(library, setup)
            if built is not None:
                call, args, kwargs = built
                timer.case(f"{group}: {case}", call, *args, **kwargs)
                present[count].append((case, library))
    for count in (1, 10):
        group = f"{count} async handler{'s' if count > 1 else ''}"
        async_receivers = _peers.async_receivers(count)
        timer.async_case(
            f"{group}: minimal async event bus",
            MinimalAsyncEventBus({Pinged: list(async_receivers)}).publish,
            event,
        )
        async_bus = AsyncEventBus()
        for async_receiver in async_receivers:
            async_bus.subscribe(Pinged, async_receiver)
        timer.async_case(f"{group}: busway AsyncEventBus.publish", async_bus.publish, event)
    ns = timer.run()
    table.params = _params(timer)
    for count in (1, 10):
        group = f"{count} handler{'s' if count > 1 else ''}"
        base = "minimal event bus"
        table.add(base, ns[f"{group}: {base}"], NS, against=base, library=base, group=group)
        table.add(
            "busway EventBus.publish",
            ns[f"{group}: busway EventBus.publish"],
            NS,
            against=base,
            library="busway",
            group=group,
        )
        for case, library in present[count]:
            table.add(case, ns[f"{group}: {case}"], NS, against=base, library=library, group=group)
    for count in (1, 10):
        group = f"{count} async handler{'s' if count > 1 else ''}"
        base = "minimal async event bus"
        table.add(base, ns[f"{group}: {base}"], NS, against=base, library=base, group=group)
        case = "busway AsyncEventBus.publish"
        table.add(case, ns[f"{group}: {case}"], NS, against=base, library="busway", group=group)
    table.notes.append(
        "busway routes by event class (subclasses included); blinker, pyee and pypubsub route "
        "by a name or a signal object"
    )
    return table


DEPTHS = tuple(range(11))


def middleware_suite(options: Options) -> Table:
    """Cost against middleware depth: busway, the same middleware composed by hand, and
    bare closures (the least a layer can cost)."""
    table = Table("middleware", "Sync command dispatch through 0 to 10 pass-through middleware")
    table.ratio_means = "busway ns/op / ns/op of the same depth composed by hand"
    timer = _timer(options, 100_000, 20_000)
    ping = Ping(1)
    registry = Registry()
    registry.command(Ping)(handle)
    for depth in DEPTHS:
        bus = CommandBus(registry)
        for _ in range(depth):
            bus.use(passthrough)
        timer.case(f"busway, {depth}", bus.execute, ping)
        timer.case(
            f"hand-composed mw(m, next), {depth}",
            MinimalBus({Ping: composed_layers(handle, passthrough, depth)}).execute,
            ping,
        )
        timer.case(
            f"bare closures, {depth}",
            MinimalBus({Ping: closure_layers(handle, depth)}).execute,
            ping,
        )
    # log() stays in production code with its level off: it must cost about a level check.
    quiet = logging.getLogger("benchmarks.quiet")
    quiet.setLevel(logging.WARNING)
    logged = CommandBus(registry)
    logged.use(middleware.log(quiet, level=logging.DEBUG))
    timer.case("busway, log() disabled", logged.execute, ping)
    enabled = quiet.isEnabledFor

    def level_check(message: Any, next: Handler) -> Any:
        # What log() does with its level off, by hand: the check, then the rest of the chain.
        if not enabled(logging.DEBUG):
            return next(message)
        raise AssertionError("the benchmark's logger is at WARNING")

    checked = CommandBus(registry)
    checked.use(level_check)
    timer.case("busway, a level check by hand", checked.execute, ping)
    ns = timer.run()
    table.params = {**_params(timer), "depths": list(DEPTHS)}
    for depth in DEPTHS:
        group = f"depth {depth}"
        hand = "minimal bus + hand-composed mw(m, next)"
        table.add(hand, ns[f"hand-composed mw(m, next), {depth}"], NS, library=hand, group=group)
        bare = "minimal bus + bare closure layers"
        table.add(bare, ns[f"bare closures, {depth}"], NS, library=bare, group=group)
        table.add(
            "busway CommandBus + middleware",
            ns[f"busway, {depth}"],
            NS,
            against=hand,
            library="busway",
            group=group,
        )
    top = DEPTHS[-1]
    group = "cost of one layer (slope from depth 0 to 10)"
    for label, key in (
        ("hand-composed layer", "hand-composed mw(m, next)"),
        ("bare closure layer", "bare closures"),
    ):
        table.add(label, (ns[f"{key}, {top}"] - ns[f"{key}, 0"]) / top, NS, group=group)
    busway_layer = (ns[f"busway, {top}"] - ns["busway, 0"]) / top
    for against in ("hand-composed layer", "bare closure layer"):
        table.add("busway layer", busway_layer, NS, against=against, group=group)
    group = "log() with its level disabled"
    table.add("busway CommandBus, no middleware", ns["busway, 0"], NS, group=group)
    table.add("busway CommandBus + 1 pass-through", ns["busway, 1"], NS, group=group)
    table.add(
        "busway CommandBus + a level check by hand",
        ns["busway, a level check by hand"],
        NS,
        against="busway CommandBus + 1 pass-through",
        group=group,
    )
    table.add(
        "busway CommandBus + log(), level off",
        ns["busway, log() disabled"],
        NS,
        against="busway CommandBus + a level check by hand",
        library="busway",
        group=group,
    )
    return table


def async_suite(options: Options) -> Table:
    """Async dispatch, beside awaiting the handler, a minimal async bus and async peers."""
    table = Table("async", "Async dispatch: one command or query, one async handler, no middleware")
    table.ratio_means = "ns/op / ns/op of the row named beside the ratio (lower is faster)"
    peers = Peers(options, table)
    timer = _timer(options, 100_000, 20_000)
    ping, ask = Ping(1), Ask(1)
    timer.async_case("await handler()", handle_async, ping)
    timer.async_case("minimal async bus", MinimalAsyncBus({Ping: handle_async}).execute, ping)
    returning = "minimal bus returning the coroutine"
    timer.async_case(returning, ReturningAsyncBus({Ping: handle_async}).execute, ping)
    registry = Registry()
    registry.command(Ping)(handle_async)
    registry.query(Ask)(handle_async)
    timer.async_case("busway AsyncCommandBus.execute", AsyncCommandBus(registry).execute, ping)
    timer.async_case("busway AsyncQueryBus.execute", AsyncQueryBus(registry).execute, ask)
    contenders = {
        "lato Application.execute_async": ("lato", lambda: _peers.lato_setup(is_async=True)),
        "mediatr Mediator.send_async": ("mediatr", lambda: _peers.mediatr_setup(is_async=True)),
        "python-cqrs mediator.send": ("python-cqrs", _peers.python_cqrs_setup),
        "diator Mediator.send": ("diator", _peers.diator_setup),
    }
    present = []
    for case, (library, setup) in contenders.items():
        built = peers.build(library, setup)
        if built is not None:
            call, args, _ = built
            timer.async_case(case, call, *args, n=max(1, timer.n // 20))
            present.append((case, library))
    nest = "NestJS CommandBus.execute"
    nestjs: _peers.NestJS | None = peers.build("nestjs", _peers.NestJS)
    if nestjs is not None:
        timer.external_case(nest, nestjs.timed_loop)
    try:
        ns = timer.run()
    finally:
        if nestjs is not None:
            nestjs.close()
    table.params = _params(timer)
    table.add("await handler()", ns["await handler()"], NS, library="await handler()")
    base = "minimal async bus"
    table.add(base, ns[base], NS, against=base, library=base)
    table.add(returning, ns[returning], NS, against=base, library=returning)
    for case in ("busway AsyncCommandBus.execute", "busway AsyncQueryBus.execute"):
        table.add(case, ns[case], NS, against=base, library="busway")
    for case, library in present:
        table.add(case, ns[case], NS, against=base, library=library)
    table.notes.append("every contender runs inside one event loop; no task is created per call")
    if nestjs is not None:
        table.add(nest, ns[nest], NS, against=base, library="nestjs")
        group = "busway against NestJS on Node.js"
        table.add(nest, ns[nest], NS, library="nestjs", group=group)
        for case in ("busway AsyncCommandBus.execute", "busway AsyncQueryBus.execute"):
            table.add(case, ns[case], NS, against=nest, library="busway", group=group)
        versions = ", ".join(f"{name} {v}" for name, v in nestjs.about["versions"].items())
        table.notes.append(
            f"NestJS: Node.js {nestjs.about['node']}, {versions}; timed by "
            "benchmarks/nestjs_bench.js in a Node.js process, round-robin with the Python cases"
        )
        table.params["nestjs"] = nestjs.about
    return table


def types_suite(options: Options) -> Table:
    """Dispatch cost against the number of registered types."""
    table = Table("types", "Dispatch cost against the number of registered message types")
    table.ratio_means = "ns/op / ns/op of the same contender with 1 type registered"
    timer = _timer(options, 100_000, 30_000)
    counts = (1, 100, options.size(10_000, 1_000))
    ping, event = Ping(1), Pinged(1)
    for count in counts:
        fillers = many_types(count - 1)
        registry = Registry()
        for tp in fillers:
            registry.command(tp)(handle)
        registry.command(Ping)(handle)
        timer.case(f"busway CommandBus.execute, {count}", CommandBus(registry).execute, ping)
        minimal = dict.fromkeys(fillers, handle) | {Ping: handle}
        timer.case(f"minimal bus, {count}", MinimalBus(minimal).execute, ping)
        events = EventBus()
        for tp in many_types(count - 1, Event):
            events.subscribe(tp, _peers.receivers(1)[0])
        events.subscribe(Pinged, _peers.receivers(1)[0])
        timer.case(f"busway EventBus.publish, {count}", events.publish, event)
    ns = timer.run()
    table.params = {**_params(timer), "types": list(counts)}
    for count in counts:
        group = f"{count:,} type{'s' if count > 1 else ''} registered"
        for case in ("minimal bus", "busway CommandBus.execute", "busway EventBus.publish"):
            table.add(
                case,
                ns[f"{case}, {count}"],
                NS,
                against="the same, 1 type",
                base=ns[f"{case}, 1"],
                library=case,
                group=group,
            )
    return table


SUITES = {
    "dispatch": dispatch_suite,
    "publish": publish_suite,
    "middleware": middleware_suite,
    "async": async_suite,
    "types": types_suite,
}


if __name__ == "__main__":
    from run import main

    sys.exit(main(["--only", ",".join(SUITES), *sys.argv[1:]]))
