"""PNG plots of a run's results, drawn with matplotlib when it is installed.

Every plot has a linear axis that starts at zero and, where it holds several panels, the
same axis in each, so a bar twice as long is twice the cost; a bar past the axis is cut at
its end and carries its figure. Losses are drawn as plainly as wins.

    python benchmarks/_plots.py [RESULTS] [OUT]

redraws the plots from a run's saved JSON (default ``benchmarks/results`` into
``docs/img``) without running anything.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BUSWAY = "#d9480f"
LIMIT = "#868e96"
PEER = "#4c6ef5"
WIN = "#2f9e44"
LOSS = "#e03131"

#: (suite, group, panel title) of the cost-per-library plot, top to bottom.
PANELS = (
    ("dispatch", "", "sync command / query dispatch"),
    ("publish", "1 handler", "publish to 1 handler"),
    ("publish", "10 handlers", "publish to 10 handlers"),
    ("publish", "1 async handler", "async publish to 1 handler"),
    ("publish", "10 async handlers", "async publish to 10 handlers"),
    ("async", "", "async command / query dispatch"),
)
LIMITS = {
    "direct call",
    "minimal bus",
    "minimal event bus",
    "await handler()",
    "minimal async bus",
    "minimal bus returning the coroutine",
    "minimal async event bus",
}
#: Where the shared axis of the cost-per-library plot ends, in multiples of the minimal bus:
#: far enough to tell 0.7x from 1.3x at a glance; the peers' bars beyond it are cut.
COST_AXIS = 4.0
#: The same for the wins-and-losses plot, in multiples of the other side's speed.
SPEED_AXIS = 2.5
#: Suites whose busway rows go into the wins-and-losses plot.
VERSUS = ("dispatch", "publish", "async", "eventstore", "postgres", "subscriptions")
#: Units of the figures that plot compares: costs (lower is better) and rates (higher is).
COSTS, RATES = {"ns/op"}, {"events/s"}


def draw(results: dict[str, dict[str, Any]], directory: Path) -> Iterator[str]:
    """Draw what *results* (suite -> saved JSON) allow into *directory*; say what was drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        yield "plots skipped: matplotlib is not installed (pip install matplotlib)"
        return
    directory.mkdir(parents=True, exist_ok=True)
    env = next(iter(results.values()), {}).get("environment", {})
    machine = f"{env.get('python', '')}, {env.get('cpu', '')}"

    panels = [(s, g, t) for s, g, t in PANELS if _rows(results.get(s), g)]
    if panels:
        heights = [len(_rows(results[s], g)) for s, g, _ in panels]
        fig, axes = plt.subplots(
            len(panels),
            1,
            figsize=(9, 1.2 + 0.36 * sum(heights) + 0.6 * len(panels)),
            gridspec_kw={"height_ratios": heights},
            sharex=True,
            squeeze=False,
        )
        for ax, (suite, group, title) in zip(axes[:, 0], panels, strict=True):
            rows = _rows(results[suite], group)[::-1]
            reference = _reference(rows)
            base = next(r["value"] for r in rows if r["case"] == reference)
            colors = [
                BUSWAY if r["library"] == "busway" else LIMIT if r["case"] in LIMITS else PEER
                for r in rows
            ]
            _bars(
                ax,
                [r["case"] for r in rows],
                [r["value"] / base for r in rows],
                colors,
                [f"{r['value']:,.0f} ns" for r in rows],
                start=0.0,
                end=COST_AXIS,
            )
            ax.axvline(1.0, color="#212529", linewidth=0.8, linestyle="--")
            ax.set_title(f"{title} (1.0 = {reference})", loc="left", fontsize=10)
        axes[-1, 0].set_xlabel(
            "cost per call relative to the panel's hand-written minimal bus (linear, lower is "
            "faster)",
            fontsize=9,
        )
        fig.suptitle("Cost per call by library, against a hand-written minimal bus", fontsize=12)
        _caption(fig, f"{machine}; median ns per call beside each bar")
        yield _save(plt, fig, directory / "benchmarks-libraries.png")

    versus = [
        (suite, row)
        for suite in VERSUS
        for row in (results.get(suite) or {}).get("rows", [])
        if row["library"] == "busway" and row["ratio"] and row["unit"] in COSTS | RATES
    ]
    if versus:
        labels, speeds, colors, notes = [], [], [], []
        for suite, row in versus[::-1]:
            cost = row["unit"] in COSTS
            speed = 1 / row["ratio"] if cost else row["ratio"]
            group = f" {row['group']}" if row["group"] else ""
            case = row["case"].removeprefix("busway ")
            labels.append(textwrap.fill(f"{suite}{group}: {case} vs {row['against']}", 56))
            speeds.append(speed)
            colors.append(WIN if speed >= 1 else LOSS)
            notes.append(f"(costs {row['ratio']:.2f}x)" if cost else "")
        fig, ax = plt.subplots(figsize=(11, 1.6 + 0.42 * len(labels)))
        _bars(ax, labels, speeds, colors, notes, start=0.0, end=SPEED_AXIS)
        ax.axvline(1.0, color="#212529", linewidth=0.8, linestyle="--")
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel(
            "busway's speed relative to what it is compared with\n(linear; right of 1.0 busway is "
            "faster, left of it slower)",
            fontsize=9,
        )
        ax.set_title("Wins (green) and losses (red) of busway, case by case", fontsize=12)
        _caption(fig, f"{machine}; ns per call inverted, events per second as they are")
        yield _save(plt, fig, directory / "benchmarks-versus.png")

    if "middleware" in results:
        data = results["middleware"]
        depths = data["params"]["depths"]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for library, color, style in (
            ("busway", BUSWAY, "-o"),
            ("minimal bus + hand-composed mw(m, next)", PEER, "-s"),
            ("minimal bus + bare closure layers", LIMIT, "-^"),
        ):
            values = [
                next(
                    r["value"]
                    for r in data["rows"]
                    if r["group"] == f"depth {d}" and r["library"] == library
                )
                for d in depths
            ]
            label = "busway CommandBus + middleware" if library == "busway" else library
            ax.plot(depths, values, style, color=color, label=label, markersize=4)
        ax.set_xlabel("middleware layers")
        ax.set_ylabel("ns per dispatch (linear, from 0)")
        ax.set_xticks(depths)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=9)
        ax.set_title("Cost against middleware depth (pass-through layers)", fontsize=12)
        _caption(fig, f"{machine}; median ns per dispatch, lower is faster")
        yield _save(plt, fig, directory / "benchmarks-middleware.png")


def _bars(
    ax: Any,
    names: list[str],
    ratios: list[float],
    colors: list[str],
    notes: list[str],
    *,
    start: float,
    end: float,
) -> None:
    """Horizontal bars of *ratios* on a linear axis from *start* to *end*, cut at *end*."""
    shown = [min(r, end) for r in ratios]
    ax.barh(names, shown, color=colors)
    ax.set_xlim(start, end)
    for y, (ratio, note) in enumerate(zip(ratios, notes, strict=True)):
        text = f"{ratio:,.2f}x" + (f"  {note}" if note else "")
        if ratio > end:  # cut: write the figure inside the bar's end, with an arrow
            ax.text(
                end * 0.99,
                y,
                f"{text} \u25b8",
                va="center",
                ha="right",
                fontsize=8,
                color="white",
                fontweight="bold",
            )
        else:
            ax.text(ratio + end * 0.01, y, text, va="center", fontsize=8)
    ax.tick_params(axis="y", labelsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.25)
    ax.set_axisbelow(True)


def _reference(rows: list[dict[str, Any]]) -> str:
    """The case a panel's ratios are taken against: the one busway's rows name."""
    return next(r["against"] for r in rows if r["library"] == "busway" and r["against"])


def _caption(fig: Any, text: str) -> None:
    fig.text(0.01, 0.005, text, fontsize=7, color="#495057")
    fig.tight_layout(rect=(0, 0.02, 1, 1))


def _save(plt: Any, fig: Any, path: Path) -> str:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


def _rows(data: dict[str, Any] | None, group: str) -> list[dict[str, Any]]:
    return [r for r in (data or {}).get("rows", []) if r["group"] == group]


def main(argv: list[str]) -> int:
    """Redraw the plots from saved results: ``[RESULTS [OUT]]``."""
    here = Path(__file__).resolve().parent
    results_dir = Path(argv[0]) if argv else here / "results"
    out = Path(argv[1]) if len(argv) > 1 else here.parent / "docs" / "img"
    results = {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(results_dir.glob("*.json"))
    }
    if not results:
        print(f"no results in {results_dir}: run benchmarks/run.py first", file=sys.stderr)
        return 1
    for line in draw(results, out):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
