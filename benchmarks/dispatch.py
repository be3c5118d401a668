"""Dispatch overhead of busline's buses against hand-written limits.

Run:  python benchmarks/dispatch.py [--quick] [--json results.json]

Each row is the median of several timed runs of a tight loop, minus the loop's own cost,
in nanoseconds per dispatch; ratios compare it with the limit named beside it. Absolute
figures vary by machine; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import busline
from busline import AsyncCommandBus, Command, CommandBus, Event, EventBus, Registry

Handler = Callable[[Any], Any]
Middleware = Callable[[Any, Handler], Any]


class Ping(Command[int]):
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class Pinged(Event):
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


def handle(message: Ping) -> int:
    return message.n


def handle_event(event: Pinged) -> None:
    pass


async def handle_async(message: Ping) -> int:
    return message.n


def passthrough(message: Any, next: Handler) -> Any:
    return next(message)


# -- the hand-written limits ----------------------------------------------------------------


class MinimalBus:
    """The least a bus can do: one dict lookup and a call, inside a method."""

    def __init__(self, handlers: dict[type, Handler]) -> None:
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
    def __init__(self, handlers: dict[type, Callable[[Any], Awaitable[Any]]]) -> None:
        self._handlers = handlers

    async def execute(self, message: Any) -> Any:
        return await self._handlers[type(message)](message)


def closure_layers(handler: Handler, depth: int) -> Handler:
    """Bare closure layers, ``def layer(m): return next(m)``: one frame per layer."""
    for _ in range(depth):

        def layer(message: Any, next: Handler = handler) -> Any:
            return next(message)

        handler = layer
    return handler


def composed_layers(handler: Handler, mw: Middleware, depth: int) -> Handler:
    """The same ``mw(message, next)`` middleware busline runs, composed by hand."""
    for _ in range(depth):

        def link(message: Any, next: Handler = handler) -> Any:
            return mw(message, next)

        handler = link
    return handler


def many_types(count: int) -> list[type]:
    return [type(f"Filler{i}", (Command,), {"__slots__": ()}) for i in range(count)]


# -- timing ---------------------------------------------------------------------------------


def _loop(call: Callable[[Any], Any], message: Any, n: int) -> int:
    start = time.perf_counter_ns()
    for _ in itertools.repeat(None, n):
        call(message)
    return time.perf_counter_ns() - start


def _empty_loop(n: int) -> int:
    start = time.perf_counter_ns()
    for _ in itertools.repeat(None, n):
        pass
    return time.perf_counter_ns() - start


async def _async_loop(call: Callable[[Any], Awaitable[Any]], message: Any, n: int) -> int:
    start = time.perf_counter_ns()
    for _ in itertools.repeat(None, n):
        await call(message)
    return time.perf_counter_ns() - start


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Keep the collector out of timed loops, as timeit does: it would bill one case for
    the garbage of another."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Suite:
    """Cases timed round-robin, so that a slow spell of the machine hits them all alike."""

    def __init__(self, n: int, repeats: int) -> None:
        self.n = n
        self.repeats = repeats
        self._cases: dict[str, tuple[Callable[[Any], Any], Any, bool]] = {}

    def case(self, name: str, call: Callable[[Any], Any], message: Any) -> None:
        self._cases[name] = (call, message, False)

    def async_case(self, name: str, call: Callable[[Any], Awaitable[Any]], message: Any) -> None:
        self._cases[name] = (call, message, True)

    def run(self) -> dict[str, float]:
        """Return the median ns per call of each case, the empty loop's cost taken off."""
        runs: dict[str, list[float]] = {name: [] for name in self._cases}
        loop = asyncio.new_event_loop()
        try:
            for round_ in range(self.repeats + 1):  # round 0 warms up: chains get built
                count = self.n // 10 if round_ == 0 else self.n
                with _gc_paused():
                    for name, (call, message, is_async) in self._cases.items():
                        if is_async:
                            took = loop.run_until_complete(_async_loop(call, message, count))
                        else:
                            took = _loop(call, message, count)
                        if round_:
                            runs[name].append((took - _empty_loop(count)) / count)
        finally:
            loop.close()
        return {name: statistics.median(times) for name, times in runs.items()}


# -- the suite ------------------------------------------------------------------------------

Row = tuple[str, float, str, float | None]


def rows(n: int, repeats: int) -> list[Row]:
    """Return (case, ns/op, compared with, ratio) rows."""
    msg, event = Ping(1), Pinged(1)
    suite = Suite(n, repeats)
    suite.case("direct call", handle, msg)
    suite.case("minimal bus", MinimalBus({Ping: handle}).execute, msg)

    registry = Registry()
    registry.command(Ping)(handle)
    suite.case("CommandBus.execute", CommandBus(registry).execute, msg)

    big = Registry()
    for tp in many_types(10_000):
        big.command(tp)(handle)
    big.command(Ping)(handle)
    suite.case("CommandBus.execute, 10,000 types", CommandBus(big).execute, msg)
    minimal_big = dict.fromkeys(many_types(10000), handle) | {Ping: handle}
    suite.case("minimal bus, 10,000 types", MinimalBus(minimal_big).execute, msg)

    for depth in (1, 5):
        suite.case(
            f"minimal bus + {depth} bare closure layer(s)",
            MinimalBus({Ping: closure_layers(handle, depth)}).execute,
            msg,
        )
        suite.case(
            f"minimal bus + {depth} hand-composed mw(m, next)",
            MinimalBus({Ping: composed_layers(handle, passthrough, depth)}).execute,
            msg,
        )
        layered = CommandBus(registry)
        for _ in range(depth):
            layered.use(passthrough)
        suite.case(f"CommandBus + {depth} middleware", layered.execute, msg)

    one = EventBus()
    one.subscribe(Pinged, handle_event)
    suite.case("EventBus.publish, 1 handler", one.publish, event)
    ten = EventBus()
    for _ in range(10):
        ten.subscribe(Pinged, handle_event)
    suite.case(
        "minimal event bus, 10 handlers",
        MinimalEventBus({Pinged: [handle_event] * 10}).publish,
        event,
    )
    suite.case("EventBus.publish, 10 handlers", ten.publish, event)

    suite.async_case("minimal async bus", MinimalAsyncBus({Ping: handle_async}).execute, msg)
    abus = AsyncCommandBus()
    abus.register(Ping, handle_async)
    suite.async_case("AsyncCommandBus.execute", abus.execute, msg)

    ns = suite.run()
    out: list[Row] = []

    def add(
        case: str, against: str = "", value: float | None = None, base: float | None = None
    ) -> None:
        mine = ns[case] if value is None else value
        reference = ns.get(against) if base is None else base
        out.append((case, mine, against, mine / reference if reference else None))

    add("direct call")
    add("minimal bus", "direct call")
    add("CommandBus.execute", "minimal bus")
    add("CommandBus.execute, 10,000 types", "CommandBus.execute")
    add("minimal bus, 10,000 types", "minimal bus")
    for depth in (1, 5):
        bare = f"minimal bus + {depth} bare closure layer(s)"
        hand = f"minimal bus + {depth} hand-composed mw(m, next)"
        ours = f"CommandBus + {depth} middleware"
        add(bare)
        add(hand)
        add(ours, hand)
        per_layer = (ns[ours] - ns["CommandBus.execute"]) / depth
        add(
            f"  one layer, busline ({depth} deep)",
            "hand-composed layer",
            per_layer,
            (ns[hand] - ns["minimal bus"]) / depth,
        )
        add(
            f"  one layer, busline ({depth} deep)",
            "bare closure layer",
            per_layer,
            (ns[bare] - ns["minimal bus"]) / depth,
        )
    add("EventBus.publish, 1 handler", "minimal bus")
    add("minimal event bus, 10 handlers")
    add("EventBus.publish, 10 handlers", "minimal event bus, 10 handlers")
    add("minimal async bus")
    add("AsyncCommandBus.execute", "minimal async bus")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer iterations, for a smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    n, repeats = (20_000, 3) if args.quick else (300_000, 7)

    table = rows(n, repeats)
    print(
        f"busline {busline.__name__} dispatch — Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.machine()}, n={n}, median of {repeats}"
    )
    width = max(len(r[0]) for r in table)
    print(f"{'case':<{width}}  {'ns/op':>8}  ratio")
    for case, ns, against, ratio in table:
        shown = f"{ratio:.2f}x {against}" if ratio is not None else ""
        print(f"{case:<{width}}  {ns:8.1f}  {shown}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                [{"case": c, "ns_per_op": ns, "against": a, "ratio": r} for c, ns, a, r in table],
                fh,
                indent=2,
            )


if __name__ == "__main__":
    sys.exit(main())
