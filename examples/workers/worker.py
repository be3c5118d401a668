"""One worker: ``python -m examples.workers.worker DSN SCHEMA``.

It runs the ``Orders`` projection and the ``Shipping`` saga subscription, both split into
partitions and leased under the owner ``worker-<pid>``, so that any number of these
processes share the work: each partition runs in one of them at a time, and moves to
another within the lease time when its worker dies. It prints "ready" once both run, and
runs until SIGTERM (then it gives its leases back and exits 0), or until a subscription
fails (exit 3).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from types import FrameType

from busway.projections import ProjectionRunner
from busway.sagas import SagaManager

from .shop import LEASE, PARTITIONS, Orders, Shipping, shipping_commands, stores

__all__ = ["owner", "run"]

POLL = 0.5  # seconds: a fallback only; PostgreSQL wakes the runners when events commit
FAILED = 3


def owner(pid: int) -> str:
    """Return the lease owner of the worker with process id *pid*."""
    return f"worker-{pid}"


def run(dsn: str, schema: str) -> int:
    """Run both subscriptions until SIGTERM; return the exit status."""
    me = owner(os.getpid())
    stopping = threading.Event()

    def terminate(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, terminate)
    failures: list[Exception] = []

    def report(exc: Exception) -> None:
        failures.append(exc)
        traceback.print_exception(exc, file=sys.stderr)

    with stores(dsn, schema) as shop:
        runner = ProjectionRunner(
            shop.events,
            Orders(schema),
            checkpoints=shop.checkpoints,
            leases=shop.leases,
            lease=LEASE,
            partitions=PARTITIONS,
            owner=me,
            poll_interval=POLL,
        )
        manager = SagaManager(Shipping, store=shop.sagas, commands=shipping_commands(shop.events))
        background = manager.background(
            interval=POLL,
            events=shop.events,
            report=report,
            leases=shop.leases,
            lease=LEASE,
            partitions=PARTITIONS,
            owner=me,
        )
        with runner.running(), background:
            print("ready", flush=True)
            while not stopping.wait(0.1):
                if runner.error is not None or not runner.is_running or failures:
                    print(f"{me}: a subscription failed: {runner.error!r}", file=sys.stderr)
                    return FAILED
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2]))
