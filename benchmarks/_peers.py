"""Peer libraries set up the way their own READMEs show, with the same trivial handlers.

Each ``*_setup`` function imports its library inside (so a missing one is a note, not a
crash: see :class:`_harness.Peers`) and returns what the timer calls, as
``(call, args, kwargs)``: a user of that library writes ``call(*args, **kwargs)``.
Peers carry no type hints mypy can use, so they are imported as ``Any`` and their base
classes subclassed with ``type()``: the classes are the same as a ``class`` statement's.
NestJS is timed under Node.js by ``nestjs_bench.js``, its packages installed once into a
temporary folder that later runs reuse.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from _harness import PeerUnavailable

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def load(module: str) -> Any:
    """Import *module* as an untyped value (peers ship no type information mypy can use)."""
    return importlib.import_module(module)


def subclass(base: Any, name: str, body: dict[str, Any]) -> Any:
    """Return ``class name(base): body``, for bases mypy sees as Any."""
    return type(name, (base,), body)


# -- command dispatch -------------------------------------------------------------------------


def lato_setup(*, is_async: bool) -> Call:
    """lato: ``@app.handler(Command)``, then ``app.execute(cmd)`` (or ``execute_async``)."""
    lato = load("lato")
    ping = subclass(lato.Command, "Ping", {"__annotations__": {"n": int}})
    app = lato.Application("bench")
    if is_async:

        async def handle_async(command: Any) -> int:
            return int(command.n)

        app.handler(ping)(handle_async)
        return app.execute_async, (ping(n=1),), {}

    def handle(command: Any) -> int:
        return int(command.n)

    app.handler(ping)(handle)
    return app.execute, (ping(n=1),), {}


class _Request:
    """A plain request class, as mediatr's README declares them."""

    def __init__(self, n: int) -> None:
        self.n = n


def mediatr_setup(*, is_async: bool) -> Call:
    """mediatr: ``Mediator.register_handler(fn)`` (type read from the annotation), then
    ``mediator.send(request)`` or ``await mediator.send_async(request)``."""
    mediatr = load("mediatr")
    mediator = mediatr.Mediator()
    request = type("AsyncPing" if is_async else "Ping", (_Request,), {})

    async def handle_async(request: Any) -> int:
        return int(request.n)

    def handle(request: Any) -> int:
        return int(request.n)

    chosen: Callable[[Any], Any] = handle_async if is_async else handle
    chosen.__annotations__["request"] = request  # mediatr routes by this annotation
    mediatr.Mediator.register_handler(chosen)
    return (mediator.send_async if is_async else mediator.send), (request(1),), {}


def python_cqrs_setup() -> Call:
    """python-cqrs (async only): a ``RequestHandler`` class bound in a ``RequestMap``, a
    mediator from ``bootstrap.bootstrap(di_container=...)``, then ``await mediator.send``."""
    cqrs = load("cqrs")
    di = load("di")
    bootstrap = load("cqrs.bootstrap.requests")
    ping = subclass(cqrs.Request, "Ping", {"__annotations__": {"n": int}})

    async def handle(self: Any, request: Any) -> None:
        return None

    handler = subclass(cqrs.RequestHandler, "PingHandler", {"handle": handle})

    def commands_mapper(mapper: Any) -> None:
        mapper.bind(ping, handler)

    mediator = bootstrap.bootstrap(di_container=di.Container(), commands_mapper=commands_mapper)
    return mediator.send, (ping(n=1),), {}


def diator_setup() -> Call:
    """diator (async only): the README's minimal example, a ``di`` container resolving a
    request-scoped handler, then ``await mediator.send(request)``."""
    di = load("di")
    dependent = load("di.dependent")
    container_di = load("diator.container.di")
    events = load("diator.events")
    requests = load("diator.requests")
    mediator_module = load("diator.mediator")
    ping = dataclasses.make_dataclass(
        "Ping", [("n", int)], bases=(requests.Request,), frozen=True, kw_only=True
    )

    def init(self: Any) -> None:
        self._events = []

    async def handle(self: Any, request: Any) -> None:
        return None

    handler = subclass(
        requests.RequestHandler,
        "PingHandler",
        {"__init__": init, "events": property(lambda self: self._events), "handle": handle},
    )
    external = di.Container()
    external.bind(di.bind_by_type(dependent.Dependent(handler, scope="request"), handler))
    container = container_di.DIContainer()
    container.attach_external_container(external)
    request_map = requests.RequestMap()
    request_map.bind(ping, handler)
    emitter = events.EventEmitter(
        event_map=events.EventMap(), container=container, message_broker=None
    )
    mediator = mediator_module.Mediator(
        request_map=request_map, event_emitter=emitter, container=container
    )
    return mediator.send, (ping(n=1),), {}


# -- NestJS, on Node.js --------------------------------------------------------------------

NESTJS_PACKAGES = ("@nestjs/core", "@nestjs/common", "@nestjs/cqrs", "reflect-metadata", "rxjs")
#: Where the packages are installed once and reused by later runs (delete it to update them).
NESTJS_DIR = Path(tempfile.gettempdir()) / "busway-bench-nestjs"
NESTJS_SCRIPT = Path(__file__).resolve().parent / "nestjs_bench.js"


def _run(command: list[str], *, cwd: Path | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PeerUnavailable(f"{Path(command[0]).name} {command[1]} failed: {last}")
    return done.stdout


def _nestjs_packages() -> Path:
    """Return a folder with the NestJS packages installed, installing them on first use."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        raise PeerUnavailable("node and npm are not on PATH")
    if (NESTJS_DIR / "node_modules" / "@nestjs" / "cqrs").is_dir():
        return NESTJS_DIR
    # Install beside the cache and move it in whole: an interrupted install leaves no cache.
    fresh = Path(tempfile.mkdtemp(prefix=f"{NESTJS_DIR.name}-", dir=NESTJS_DIR.parent))
    try:
        (fresh / "package.json").write_text('{"private": true}\n', encoding="utf-8")
        quiet = ["--no-audit", "--no-fund", "--loglevel=error"]
        _run([npm, "install", *quiet, *NESTJS_PACKAGES], cwd=fresh)
        with contextlib.suppress(OSError):  # another run may have moved its own in first
            os.rename(fresh, NESTJS_DIR)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return NESTJS_DIR


class NestJS:
    """NestJS's ``CommandBus.execute`` under Node.js, in a process kept for the whole suite.

    It runs ``nestjs_bench.js``: ``@CommandHandler(Ping)`` on a class in a
    ``CqrsModule.forRoot()`` app, then ``await commandBus.execute(new Ping(1))`` in a tight
    loop, one round each time :meth:`timed_loop` is called.
    """

    def __init__(self) -> None:
        folder = _nestjs_packages()
        self._process = subprocess.Popen(
            ["node", str(NESTJS_SCRIPT), str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        #: Node.js's version and the packages': ``{"node": ..., "versions": {...}}``.
        self.about: dict[str, Any] = json.loads(self._read())

    def _read(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=60)
            assert self._process.stderr is not None
            last = (self._process.stderr.read().strip().splitlines() or ["no output"])[-1]
            raise PeerUnavailable(f"nestjs_bench.js stopped: {last}")
        return line

    def timed_loop(self, count: int) -> int:
        """Run *count* calls in Node.js; return the nanoseconds they took."""
        assert self._process.stdin is not None
        self._process.stdin.write(f"{count}\n")
        self._process.stdin.flush()
        return int(self._read())

    def close(self) -> None:
        """End the Node.js process."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=60)
        for pipe in (self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()


# -- event publishing -------------------------------------------------------------------------


def blinker_setup(receivers: Sequence[Callable[[Any], None]], event: object) -> Call:
    """blinker: ``sig = signal(name)``, ``sig.connect(fn)``, then ``sig.send(sender)``."""
    sig = load("blinker").Signal()
    for receiver in receivers:  # the caller keeps them alive: blinker holds weak references
        sig.connect(receiver)
    return sig.send, (event,), {}


def pyee_setup(receivers: Sequence[Callable[[Any], None]], event: object) -> Call:
    """pyee: ``ee.on(name, fn)``, then ``ee.emit(name, event)``."""
    ee = load("pyee").EventEmitter()
    for receiver in receivers:
        ee.on("ping", receiver)
    return ee.emit, ("ping", event), {}


def pypubsub_setup(receivers: Sequence[Callable[[Any], None]], event: object) -> Call:
    """pypubsub: ``pub.subscribe(fn, topic)``, then ``pub.sendMessage(topic, event=...)``."""
    pub = load("pubsub.pub")
    topic = f"ping{len(receivers)}"
    for receiver in receivers:  # weak references here too
        pub.subscribe(receiver, topic)
    return pub.sendMessage, (topic,), {"event": event}


def receivers(count: int) -> list[Callable[[Any], None]]:
    """Return *count* distinct do-nothing handlers (blinker and pypubsub drop duplicates)."""

    def make() -> Callable[[Any], None]:
        def receive(event: Any) -> None:
            pass

        return receive

    return [make() for _ in range(count)]


def async_receivers(count: int) -> list[Callable[[Any], Awaitable[None]]]:
    """Return *count* distinct do-nothing ``async def`` handlers."""

    def make() -> Callable[[Any], Awaitable[None]]:
        async def receive(event: Any) -> None:
            pass

        return receive

    return [make() for _ in range(count)]
