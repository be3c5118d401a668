"""PNG plots of a run's results, drawn with matplotlib when it is installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

BUSWAY = "#d9480f"
LIMIT = "#868e96"
PEER = "#4c6ef5"

#: (suite, group, panel title) of the ns/op-per-library plot, top to bottom.
PANELS = (
    ("dispatch", "", "sync command / query dispatch"),
    ("publish", "1 handler", "publish to 1 handler"),
    ("publish", "10 handlers", "publish to 10 handlers"),
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
    caption = f"{env.get('python', '')}, {env.get('cpu', '')}; median ns per call, lower is faster"

    panels = [(s, g, t) for s, g, t in PANELS if s in results]
    if panels:
        heights = [len(_rows(results[s], g)) for s, g, _ in panels]
        fig, axes = plt.subplots(
            len(panels),
            1,
            figsize=(9, 1.0 + 0.36 * sum(heights) + 0.6 * len(panels)),
            gridspec_kw={"height_ratios": heights},
            squeeze=False,
        )
        for ax, (suite, group, title) in zip(axes[:, 0], panels, strict=True):
            rows = _rows(results[suite], group)
            names = [r["case"] for r in rows][::-1]
            values = [r["value"] for r in rows][::-1]
            colors = [
                BUSWAY if r["library"] == "busway" else LIMIT if r["case"] in LIMITS else PEER
                for r in rows
            ][::-1]
            ax.barh(names, values, color=colors)
            ax.set_xscale("log")
            ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
            ax.tick_params(axis="y", labelsize=9)
            ax.tick_params(axis="x", labelsize=8)
            ax.set_xlim(min(values) / 1.5, max(values) * 4)
            for y, value in enumerate(values):
                ax.text(value * 1.08, y, f"{value:,.0f} ns", va="center", fontsize=8)
            ax.grid(axis="x", which="both", alpha=0.25)
            ax.set_axisbelow(True)
        fig.suptitle("ns per call by library (log scale)", fontsize=12)
        fig.text(0.01, 0.005, caption, fontsize=7, color="#495057")
        fig.tight_layout(rect=(0, 0.02, 1, 1))
        path = directory / "benchmarks-libraries.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        yield f"plot: {path}"

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
        ax.set_ylabel("ns per dispatch")
        ax.set_xticks(depths)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=9)
        ax.set_title("Cost against middleware depth (pass-through layers)", fontsize=12)
        fig.text(0.01, 0.005, caption.replace("lower is faster", "lower is faster"), fontsize=7)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        path = directory / "benchmarks-middleware.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        yield f"plot: {path}"


def _rows(data: dict[str, Any], group: str) -> list[dict[str, Any]]:
    return [r for r in data["rows"] if r["group"] == group]
