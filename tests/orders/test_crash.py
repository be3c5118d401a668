"""A projection process killed mid-batch loses that batch whole: nothing twice, nothing skipped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from busway.demo import CancelOrder, OrdersApp, PlaceOrder

from .helpers import items, rebuilt_rows, rows

# Runs the orders projection in batches of 4 and kills the process with os._exit right
# after the writes of the 6th event: in the second batch, before its checkpoint commits.
DYING_RUNNER = textwrap.dedent(
    """
    import os, sys
    from busway.projections import ProjectionRunner
    from busway.demo import OrdersApp, OrdersProjection

    handled = 0

    class Dying(OrdersProjection):
        def _placed(self, event, recorded, conn):
            global handled
            super()._placed(event, recorded, conn)
            handled += 1
            if handled == 6:
                os._exit(17)

    app = OrdersApp(sys.argv[1])
    runner = ProjectionRunner(app.store, Dying(), checkpoints=app.checkpoints, batch_size=4)
    runner.run_until_caught_up()
    sys.exit("the process should have died")
    """
)


def test_a_killed_projection_process_resumes_exactly_once(tmp_path: Path) -> None:
    """Killed mid-batch, a runner keeps the committed batch and a rerun applies the rest once."""
    path = tmp_path / "orders.db"
    with OrdersApp(path) as app:
        ids = [app.commands.execute(PlaceOrder("ann", items(("mug", 1, "8.00")))) for _ in range(8)]
        app.commands.execute(CancelOrder(ids[0], "no"))
    died = subprocess.run(
        [sys.executable, "-c", DYING_RUNNER, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (17, "") == (died.returncode, died.stderr)
    with OrdersApp(path) as app:
        assert (4, 4) == (app.runner.position, len(rows(app.path)))
        app.runner.run_until_caught_up()
        kept = rows(app.path)
        assert 8 == len(kept)
        assert rebuilt_rows(app, app.store.head_position()) == kept
        by_id = {row[0]: row for row in kept}
        assert ("cancelled", 2) == (by_id[ids[0]][2], by_id[ids[0]][10])
