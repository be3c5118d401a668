"""The subcommands: each reads its arguments, opens what it needs, and prints a result."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import attrs

from .._async_buses import AsyncCommandBus
from .._buses import CommandBus
from ..eventstore import SCHEMA_VERSION, EventTypes, RawEvent, RecordedEvent
from ..projections import Projection, ProjectionRunner, WritingProjection
from ..sagas import AsyncSagaManager, Saga, SagaManager
from ..subscriptions import LeaseStore, ParkedEvent, PartitionStatus, subscription_status
from ..subscriptions._engine import default_owner
from . import _render
from ._exit import NO_STORE, OK, REFUSED, USAGE, Failure
from ._targets import Target

Run = Callable[[argparse.Namespace], int]


def parser() -> argparse.ArgumentParser:
    """Return the parser of the whole command line."""
    top = argparse.ArgumentParser(
        prog="busway",
        description="Look inside busway event stores and the subscriptions that follow them.",
        epilog="exit codes: 0 ok, 1 busway refused, 2 usage error, 3 no store there, "
        "4 the cli extra is missing, 130 interrupted",
    )
    commands = top.add_subparsers(title="commands", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("target", help="an SQLite file, or a PostgreSQL DSN (postgresql://...)")
    common.add_argument("--json", action="store_true", help="print JSON, for scripts")
    common.add_argument("--schema", default="public", help="the PostgreSQL schema")
    common.add_argument("--events-table", default="events", metavar="NAME")
    common.add_argument("--checkpoints-table", default="projection_checkpoints", metavar="NAME")
    common.add_argument("--leases-table", default="subscription_leases", metavar="NAME")
    common.add_argument("--sagas-table", default="sagas", metavar="NAME")
    common.add_argument(
        "--checkpoints",
        metavar="TARGET",
        help="where the checkpoints, sagas and leases are, if not beside the events",
    )
    common.add_argument(
        "--types",
        metavar="MODULE:NAME",
        help="the application's EventTypes (or a function returning them), to decode payloads",
    )

    def add(name: str, run: Run, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    add("info", _info, "the store's schema version, events, streams, head position and size")
    sub = add("streams", _streams, "the streams, by id, a page at a time")
    sub.add_argument("--after", metavar="STREAM", help="start after this stream id")
    sub.add_argument("--limit", type=_count, default=50, help="streams per page (default 50)")
    sub = add("show", _show, "a stream's events, with their metadata")
    sub.add_argument("stream")
    sub.add_argument("--from-version", type=_count, default=1, metavar="N")
    sub.add_argument("--limit", type=_count, default=None, metavar="N")
    sub = add("tail", _tail, "follow new events as they are appended (Ctrl-C stops)")
    sub.add_argument("--type", action="append", dest="event_types", metavar="TYPE")
    sub.add_argument(
        "--from-position",
        type=_count,
        default=None,
        metavar="N",
        help="start here (default: after the head)",
    )
    sub.add_argument("--limit", type=_count, default=None, metavar="N", help="stop after N events")
    sub.add_argument("--poll-interval", type=float, default=0.2, metavar="SECONDS")
    add("subscriptions", _subscriptions, "each subscription's position, lag, holder and parked")
    sub = add("rebuild", _rebuild, "rebuild a projection from the first event")
    _projection_options(sub)
    parked = commands.add_parser("parked", help="events subscriptions set aside")
    actions = parked.add_subparsers(title="actions", required=True, metavar="ACTION")
    sub = actions.add_parser("list", parents=[common], help="list parked events")
    sub.set_defaults(run=_parked_list)
    sub.add_argument("--subscription", metavar="NAME", help="only this subscription's")
    sub = actions.add_parser(
        "replay", parents=[common], help="run a projection's handlers, or the sagas, again"
    )
    sub.set_defaults(run=_parked_replay)
    _projection_options(sub, optional=True)
    sub.add_argument("--position", type=_count, default=None, help="only the event parked here")
    sub.add_argument(
        "--saga",
        action="append",
        dest="sagas",
        metavar="MODULE:NAME",
        help="a saga class the manager runs (once for each), instead of a PROJECTION",
    )
    sub.add_argument(
        "--commands",
        metavar="MODULE:NAME",
        help="the CommandBus or AsyncCommandBus (or a function returning one) the sagas send to",
    )
    sub.add_argument(
        "--subscription",
        metavar="NAME",
        help="the saga manager's subscription (default: sagas)",
    )
    return top


def _projection_options(sub: argparse.ArgumentParser, *, optional: bool = False) -> None:
    sub.add_argument(
        "projection",
        metavar="PROJECTION",
        nargs="?" if optional else None,
        help="MODULE:NAME of a projection, its class, or a function returning one",
    )
    sub.add_argument("--partitions", type=_count, default=1, help="as the workers run it")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, not {text!r}")
    return value


# -- what the command line names ---------------------------------------------------------


T = TypeVar("T")


def load(path: str, what: str) -> object:
    """Import the object *path* names (``module:attribute``), from the working directory on."""
    module_name, colon, attribute = path.partition(":")
    if not colon or not module_name or not attribute:
        raise Failure(USAGE, f"{what} must be given as MODULE:NAME, not {path!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does
    try:
        found: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise Failure(USAGE, f"cannot load {what} {path!r}: {exc}") from exc
    return found


def made(path: str, what: str, kinds: type[T] | tuple[type, ...], described: str) -> T:
    """Load *path*: an object of *kinds*, or a function (a class, a factory) that makes one."""
    found = load(path, what)
    if not isinstance(found, kinds) and callable(found):
        found = found()
    if not isinstance(found, kinds):
        raise Failure(USAGE, f"{what} {path!r} gives {found!r}, not {described}")
    return cast(T, found)


def _types(args: argparse.Namespace, fallback: Iterable[type] = ()) -> EventTypes:
    if args.types is None:
        return EventTypes(*fallback, raw_unknown=True)
    return made(args.types, "--types", EventTypes, "an EventTypes")


def _projection(args: argparse.Namespace) -> Projection | WritingProjection[Any]:
    kinds = (Projection, WritingProjection)
    found: Projection | WritingProjection[Any] = made(
        args.projection, "the projection", kinds, "a Projection or WritingProjection"
    )
    return found


def _sagas(args: argparse.Namespace) -> tuple[type[Saga], ...]:
    found = []
    for path in args.sagas:
        cls = load(path, "--saga")
        if not isinstance(cls, type) or not issubclass(cls, Saga):
            raise Failure(USAGE, f"--saga {path!r} is {cls!r}, not a Saga class")
        found.append(cls)
    return tuple(found)


def _commands(args: argparse.Namespace) -> CommandBus | AsyncCommandBus:
    if args.commands is None:
        raise Failure(
            USAGE,
            "--saga needs --commands MODULE:NAME, the command bus the sagas' commands go to "
            "(as the workers send them)",
        )
    kinds = (CommandBus, AsyncCommandBus)
    found: CommandBus | AsyncCommandBus = made(
        args.commands, "--commands", kinds, "a CommandBus or AsyncCommandBus"
    )
    return found


def _target(args: argparse.Namespace, types: EventTypes | None = None) -> Target:
    return Target(
        args.target,
        types if types is not None else _types(args),
        schema=args.schema,
        events=args.events_table,
        checkpoints=args.checkpoints_table,
        leases=args.leases_table,
        checkpoints_at=args.checkpoints,
        sagas=args.sagas_table,
    )


# -- commands ------------------------------------------------------------------------------


def _info(args: argparse.Namespace) -> int:
    target = _target(args)
    with target.event_store() as store:
        streams = events = 0
        for _, version in store.streams():
            streams += 1
            events += version
        head = store.head_position()
    found = {
        "target": "postgresql" if target.postgres else str(target.location),
        "schema_version": SCHEMA_VERSION,
        "events": events,
        "streams": streams,
        "head_position": head,
        "size_bytes": target.size(),
    }
    _render.mapping(args.json, found)
    return OK


def _streams(args: argparse.Namespace) -> int:
    with _target(args).event_store() as store:
        page = list(store.streams(after=args.after, limit=args.limit + 1))
    more = len(page) > args.limit
    page = page[: args.limit]
    after = page[-1][0] if more else None
    rows = [{"stream_id": s, "version": v} for s, v in page]
    _render.table(args.json, "streams", rows, extra={"next_after": after})
    if after is not None and not args.json:
        _render.note(f"more: --after {after!r}")
    return OK


def _show(args: argparse.Namespace) -> int:
    target = _target(args)
    with target.event_store() as store:
        events = store.read_stream(args.stream, from_version=args.from_version, limit=args.limit)
    if not events and not args.json:
        _render.note(f"stream {args.stream!r} has no events from version {args.from_version}")
    _render.events(args.json, [_event(target.types, e) for e in events])
    return OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Let Ctrl-C and SIGTERM end the command, even where it started with SIGINT ignored.

    A shell starts a script's background jobs that way; a follower is stopped by a signal.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def _tail(args: argparse.Namespace) -> int:
    target = _target(args)
    _stop_on_signals()
    with target.event_store() as store:
        start = args.from_position or store.head_position() + 1
        live = store.subscribe(
            from_position=start, types=args.event_types, poll_interval=args.poll_interval
        )
        try:
            with live:
                for recorded in itertools.islice(live, args.limit):
                    _render.event_line(args.json, _event(target.types, recorded))
        except KeyboardInterrupt:
            pass  # the way to stop following: a clean end
    return OK


_KINDS = ("projection", "saga")


def _statuses(target: Target) -> list[tuple[str, PartitionStatus]]:
    """Return each stored partition's status, with the kind of subscription it is of."""
    with target.event_store() as store:
        head = store.head_position()
    with (
        target.checkpoint_store() as checkpoints,
        target.saga_store() as sagas,
        target.lease_store() as leases,
    ):
        return [
            (kind, status)
            for kind, where in zip(_KINDS, (checkpoints, sagas), strict=True)
            if where is not None
            for status in subscription_status(where, head=head, leases=leases)
        ]


def _subscriptions(args: argparse.Namespace) -> int:
    rows = [
        {
            "subscription": s.subscription,
            "kind": kind,
            "partition": s.partition,
            "partitions": s.partitions,
            "position": s.position,
            "head": s.head,
            "lag": s.lag,
            "holder": s.holder.owner if s.holder else None,
            "holder_expires_at": s.holder.expires_at.isoformat() if s.holder else None,
            "parked": len(s.parked),
        }
        for kind, s in _statuses(_target(args))
    ]
    _render.table(args.json, "subscriptions", rows)
    return OK


def _parked_list(args: argparse.Namespace) -> int:
    rows = [
        {
            "subscription": p.subscription,
            "kind": kind,
            "position": p.position,
            "stream_id": p.stream_id,
            "version": p.version,
            "type": p.type,
            "attempts": p.attempts,
            "parked_at": p.parked_at.isoformat(),
            "error": p.error,
        }
        for kind, s in _statuses(_target(args))
        if args.subscription in (None, s.subscription)
        for p in s.parked
    ]
    _render.table(args.json, "parked", rows)
    return OK


def _runner_target(args: argparse.Namespace) -> tuple[Target, Projection | WritingProjection[Any]]:
    projection = _projection(args)
    return _target(args, _types(args, projection.handled_types())), projection


def _rebuild(args: argparse.Namespace) -> int:
    target, projection = _runner_target(args)
    with (
        target.event_store(writable=True) as store,
        target.checkpoint_store(writable=True) as checkpoints,
        target.lease_store(writable=True) as leases,
    ):
        runner = ProjectionRunner(
            store, projection, checkpoints=checkpoints, leases=leases, partitions=args.partitions
        )
        try:
            with _render.progress(args.json, f"rebuilding {runner.name}") as report:
                read = runner.rebuild(progress=report)
        finally:
            _give_back(leases, runner.name, runner.owner)
        position = runner.position
    _render.mapping(args.json, {"projection": runner.name, "read": read, "position": position})
    return OK


def _parked_replay(args: argparse.Namespace) -> int:
    if args.sagas:
        if args.projection is not None:
            raise Failure(USAGE, "name a PROJECTION or the sagas (--saga), not both")
        return _replay_sagas(args)
    if args.projection is None:
        raise Failure(USAGE, "name a PROJECTION (MODULE:NAME), or the sagas with --saga")
    if args.subscription is not None or args.commands is not None:
        raise Failure(USAGE, "--subscription and --commands go with --saga")
    target, projection = _runner_target(args)
    with (
        target.event_store(writable=True) as store,
        target.checkpoint_store(writable=True) as checkpoints,
        target.lease_store(writable=True) as leases,
    ):
        runner = ProjectionRunner(
            store, projection, checkpoints=checkpoints, leases=leases, partitions=args.partitions
        )
        try:
            passed = runner.replay_parked(args.position)
        finally:
            _give_back(leases, runner.name, runner.owner)
        left = _left(runner.parked(), args.position)
    _render.mapping(
        args.json, {"projection": runner.name, "replayed": passed, "still_parked": len(left)}
    )
    return REFUSED if left else OK


def _replay_sagas(args: argparse.Namespace) -> int:
    """Hand a saga subscription's parked events to the sagas named, as a worker would.

    The command takes the subscription's leases, as a worker taking over does: it sends
    what earlier workers left in the sagas' outboxes, then each parked event's new
    commands, through the application's bus. It gives the leases back when done.
    """
    sagas, commands = _sagas(args), _commands(args)
    name = args.subscription or "sagas"
    owner = f"busway-cli-{default_owner()}"
    given = _types(args) if args.types is not None else None
    target = _target(args, EventTypes())
    with target.saga_store(writable=True) as saga_store:
        if saga_store is None:
            where = "schema " + repr(args.schema) if target.postgres else target.subscriptions
            raise Failure(
                NO_STORE,
                f"{where} holds no busway saga store in table {args.sagas_table!r}; check "
                "the target, --checkpoints and --sagas-table",
            )
        manager: SagaManager | AsyncSagaManager = (
            AsyncSagaManager(*sagas, store=saga_store, commands=commands, types=given)
            if isinstance(commands, AsyncCommandBus)
            else SagaManager(*sagas, store=saga_store, commands=commands, types=given)
        )
        types = given if given is not None else _types(args, manager.event_types)
        events = attrs.evolve(target, types=types)
        with (
            events.event_store(writable=True) as store,
            target.lease_store(writable=True) as leases,
        ):
            settings: dict[str, Any] = {
                "events": store,
                "subscription": name,
                "leases": leases,
                "partitions": args.partitions,
                "owner": owner,
            }
            try:
                if isinstance(manager, AsyncSagaManager):
                    passed, parked = asyncio.run(_areplay(manager, settings, args.position))
                else:
                    runner = manager.background(**settings)
                    passed, parked = runner.replay_parked(args.position), runner.parked()
            finally:
                _give_back(leases, name, owner)
    left = _left(parked, args.position)
    _render.mapping(
        args.json, {"subscription": name, "replayed": passed, "still_parked": len(left)}
    )
    return REFUSED if left else OK


async def _areplay(
    manager: AsyncSagaManager, settings: dict[str, Any], position: int | None
) -> tuple[int, list[ParkedEvent]]:
    runner = manager.background(**settings)
    return await runner.replay_parked(position), await runner.parked()


def _left(parked: list[ParkedEvent], position: int | None) -> list[ParkedEvent]:
    """Return the events of *parked* a replay of *position* (None: all) was asked to clear."""
    return [p for p in parked if position in (None, p.position)]


def _give_back(leases: LeaseStore | None, name: str, owner: str) -> None:
    """Release the leases *owner* took on subscription *name*, so the workers take over."""
    if leases is None:
        return
    for lease in leases.leases(name):
        if lease.owner == owner:
            leases.release(lease)


def _event(types: EventTypes, recorded: RecordedEvent) -> dict[str, Any]:
    event = recorded.event
    data: Mapping[str, Any] = (
        event.data if isinstance(event, RawEvent) else types.serializer.to_dict(event)
    )
    return {
        "position": recorded.position,
        "stream_id": recorded.stream_id,
        "version": recorded.version,
        "type": recorded.type,
        "event_id": str(recorded.event_id),
        "recorded_at": recorded.recorded_at.isoformat(),
        "metadata": dict(recorded.metadata),
        "data": json.loads(json.dumps(data, default=str)),
    }


__all__ = ["load", "parser"]
