"""Output: rich tables and progress bars for people, plain JSON for scripts."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..projections import Progress as Report

# Piped into a file or another program, a table is as wide as it needs (up to 200), rather
# than the 80 columns rich assumes where it finds no terminal.
_PIPED = not sys.stdout.isatty() and "COLUMNS" not in os.environ
_out = Console(highlight=False, soft_wrap=True, width=200 if _PIPED else None)
_err = Console(stderr=True, highlight=False)


def _dump(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def mapping(as_json: bool, found: Mapping[str, Any]) -> None:
    """Print named values: a two-column table, or one JSON object."""
    if as_json:
        _dump(dict(found))
        return
    table = Table(show_header=False, box=None)
    for key, value in found.items():
        table.add_row(key.replace("_", " "), _cell(value))
    _out.print(table)


def table(
    as_json: bool, name: str, rows: Sequence[Mapping[str, Any]], *, extra: Mapping[str, Any] = {}
) -> None:
    """Print *rows*: a table with a column per key, or ``{name: rows, **extra}`` as JSON."""
    if as_json:
        _dump({name: [dict(r) for r in rows], **extra})
        return
    if not rows:
        note(f"no {name}")
        return
    shown = Table()
    for key in rows[0]:
        shown.add_column(key.replace("_", " "), overflow="fold")
    for row in rows:
        shown.add_row(*(_cell(v) for v in row.values()))
    _out.print(shown)


def events(as_json: bool, found: Sequence[Mapping[str, Any]]) -> None:
    """Print events, each with its metadata and payload."""
    if as_json:
        _dump({"events": list(found)})
        return
    for event in found:
        event_line(False, event)


def event_line(as_json: bool, event: Mapping[str, Any]) -> None:
    """Print one event: a line of JSON, or a heading with its metadata and payload below."""
    if as_json:
        sys.stdout.write(json.dumps(event, default=str) + "\n")
        sys.stdout.flush()
        return
    head = Text()
    head.append(f"#{event['position']} ", style="bold")
    head.append(f"{event['stream_id']} v{event['version']} ")
    head.append(event["type"], style="cyan")
    head.append(f"  {event['recorded_at']}  {event['event_id']}", style="dim")
    _out.print(head)
    if event["metadata"]:
        _out.print(Text(f"  metadata {json.dumps(event['metadata'])}", style="dim"))
    _out.print(Text(f"  {json.dumps(event['data'])}"))
    sys.stdout.flush()


def note(text: str) -> None:
    """Tell the person at the terminal something beside the result, on stderr."""
    _err.print(text, style="dim")


class _Rate(ProgressColumn):
    """Positions a second, which is events a second when positions have no gaps."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s", style="progress.data.speed")


@contextlib.contextmanager
def progress(as_json: bool, title: str) -> Iterator[Report | None]:
    """Show a progress bar with rate and time left on stderr while the block runs."""
    if as_json:
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_err,
    )
    task = bar.add_task(title, total=None)

    def report(position: int, head: int) -> None:
        bar.update(task, completed=position, total=max(head, 1))

    with bar:
        yield report


def _cell(value: object) -> str:
    return "-" if value is None else f"{value:,}" if type(value) is int else str(value)
