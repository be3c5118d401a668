"""Three workers share a projection and a saga on PostgreSQL; one is killed and replaced.

    python -m examples.workers [--dsn DSN] [--orders N] [--schema NAME]

Run it from the repository root with ``busway[postgres]`` installed. It makes a schema of
its own (dropped at the end; pass ``--schema`` to keep one), starts three worker processes
(``examples/workers/worker.py``), places orders from this process, and meanwhile kills,
with SIGKILL, the worker that holds the first partition of the projection, and starts
another. A standby takes the partition over once the dead worker's lease runs out. At the
end every order is shipped once, and the read model the workers built is what a rebuild
from the events gives.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import psycopg

from busway.postgres import PostgresLeaseStore
from busway.projections import ProjectionRunner
from busway.subscriptions import Lease

from .shop import PARTITIONS, OrderPlaced, Orders, Stores, stores
from .worker import owner

__all__ = ["main", "run"]

ROOT = Path(__file__).resolve().parents[2]
DSN = os.environ.get("BUSWAY_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
WORKERS = 3
T = TypeVar("T")
KEYS = [f"orders[{n}/{PARTITIONS}]" for n in range(PARTITIONS)]  # the projection's leases
WATCHED = KEYS[0]  # the lease whose holder is killed


class Workers:
    """The worker processes, started with ``python -m examples.workers.worker``."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.command = [sys.executable, "-m", "examples.workers.worker", dsn, schema]
        self.live: dict[int, subprocess.Popen[bytes]] = {}
        self.every: list[subprocess.Popen[bytes]] = []

    def start(self) -> int:
        """Start a worker and wait until it runs; return its process id."""
        process = subprocess.Popen(self.command, cwd=ROOT, stdout=subprocess.PIPE)
        self.every.append(process)
        assert process.stdout is not None
        if process.stdout.readline() != b"ready\n":
            raise SystemExit(f"worker {process.pid} ended before it was ready")
        self.live[process.pid] = process
        return process.pid

    def kill(self, pid: int) -> None:
        """SIGKILL worker *pid*: no chance to give its leases back."""
        process = self.live.pop(pid)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self) -> list[int]:
        """Ask each live worker to stop; return their exit codes."""
        for process in self.live.values():
            process.send_signal(signal.SIGTERM)
        return [process.wait(30) for process in self.live.values()]

    def clean_up(self) -> None:
        for process in self.every:
            if process.poll() is None:
                process.kill()
                process.wait(10)
            if process.stdout is not None:
                process.stdout.close()


def wait(what: str, check: Callable[[], T | None], timeout: float = 60.0) -> tuple[T, float]:
    """Return the first true result of *check*, and how many seconds it took to come."""
    began = time.monotonic()
    while not (found := check()):
        if time.monotonic() - began > timeout:
            raise SystemExit(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)
    return found, time.monotonic() - began


def holder(leases: PostgresLeaseStore, key: str = WATCHED) -> Lease | None:
    """Return the live lease on partition *key*, if any."""
    lease = leases.holder(key)
    return None if lease is None or lease.expired(datetime.now(UTC)) else lease


def sharing(leases: PostgresLeaseStore, workers: Workers) -> dict[str, str] | None:
    """Return who holds each partition of the projection, once the live workers share them
    out (each holds at most its share, as the runners settle it)."""
    held = {key: lease.owner for key in KEYS if (lease := holder(leases, key)) is not None}
    live = {owner(pid) for pid in workers.live}
    share = -(-PARTITIONS // len(live))
    counts = [list(held.values()).count(name) for name in live]
    settled = len(held) == PARTITIONS and set(held.values()) <= live and max(counts) <= share
    return held if settled else None


def shipped(dsn: str, orders: Orders, count: int) -> bool:
    """Tell whether the read model holds *count* orders, every one of them shipped."""
    with psycopg.connect(dsn) as conn:
        rows = orders.rows(conn)
    return len(rows) == count and all(row[3] for row in rows)


def run(dsn: str, schema: str, count: int, say: Callable[[str], object] = print) -> bool:
    """Run the example in *schema*; return whether the read model equals a rebuild."""
    with stores(dsn, schema) as shop:
        orders = Orders(schema)
        # Made here, so that the workers find the tables ready.
        ProjectionRunner(shop.events, orders, checkpoints=shop.checkpoints)
        workers = Workers(dsn, schema)
        try:
            for _ in range(WORKERS):
                workers.start()
            held, took = wait("the workers share the work", lambda: sharing(shop.leases, workers))
            say(f"{WORKERS} workers running; {took:.1f} s later they share the partitions:")
            for key, name in sorted(held.items()):
                say(f"  {key}: {name}")
            place_orders(shop, workers, count, say)
            _, took = wait("every order shipped", lambda: shipped(dsn, orders, count))
            say(f"all {count} orders shipped and in the read model {took:.1f} s after the last")
            codes = workers.stop()
            say(f"workers stopped, exit codes {codes}")
        finally:
            workers.clean_up()
        return compare(dsn, shop, orders, say)


def place_orders(shop: Stores, workers: Workers, count: int, say: Callable[[str], object]) -> None:
    """Place *count* orders, killing and replacing a worker after the first third."""
    for n in range(count):
        order_id = f"{n + 1:04}"
        event = OrderPlaced(order_id, f"customer-{n % 7}", Decimal(10 + n % 40))
        shop.events.append(f"order-{order_id}", [event], expected_version=0)
        if n == count // 3:
            kill_and_replace(shop.leases, workers, say)
        time.sleep(0.005)


def kill_and_replace(
    leases: PostgresLeaseStore, workers: Workers, say: Callable[[str], object]
) -> None:
    """Kill the holder of the watched partition, start another worker, see who takes over."""
    old, _ = wait(f"a worker holds {WATCHED}", lambda: holder(leases))
    workers.kill(int(old.owner.removeprefix("worker-")))
    say(f"killed {old.owner} (SIGKILL), which held {WATCHED}")
    say(f"started {owner(workers.start())} in its place")

    def successor() -> Lease | None:
        new = holder(leases)
        return new if new is not None and new.owner != old.owner else None

    new, took = wait(f"a standby takes {WATCHED} over", successor)
    say(f"{new.owner} took {WATCHED} over {took:.1f} s later (fencing token {new.token})")


def compare(dsn: str, shop: Stores, orders: Orders, say: Callable[[str], object]) -> bool:
    """Rebuild the read model from the events into another table; compare the two."""
    rebuilt = Orders(orders.schema, "orders_rebuilt")
    ProjectionRunner(shop.events, rebuilt, checkpoints=shop.checkpoints).run_until_caught_up()
    with psycopg.connect(dsn) as conn:
        equal = orders.rows(conn) == rebuilt.rows(conn)
    events = shop.events.head_position()
    say(f"{events} events; the read model {'equals' if equal else 'DIFFERS FROM'} a rebuild")
    return equal


@contextlib.contextmanager
def own_schema(dsn: str, schema: str | None) -> Iterator[str]:
    """Yield *schema*, or a new one's name, dropped afterwards."""
    if schema is not None:
        yield schema
        return
    name = f"workers_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dsn", default=DSN, help=f"the server (default {DSN})")
    parser.add_argument("--orders", type=int, default=150, help="how many (default 150)")
    parser.add_argument("--schema", help="work in this schema, and keep it (default: a new one)")
    args = parser.parse_args(argv)
    with own_schema(args.dsn, args.schema) as schema:
        return 0 if run(args.dsn, schema, args.orders) else 1


if __name__ == "__main__":
    sys.exit(main())
