"""Run every benchmark suite, each in its own process; print tables, save JSON, draw plots.

    python -m pip install -e ".[bench]"
    python benchmarks/run.py                     # every suite, full sizes
    python benchmarks/run.py --quick             # small sizes, for a smoke run
    python benchmarks/run.py --only dispatch,async --no-peers

Each suite prints a table of medians with ratios and writes ``<results>/<suite>.json``
(default ``benchmarks/results/``). A full run of every suite also draws PNG plots into
``docs/img/`` when matplotlib is installed; ``--plots DIR`` draws them anywhere, after any
run, and ``python benchmarks/_plots.py RESULTS`` redraws them from saved results alone.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import Options, Table, describe_environment

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Suite name -> the module defining it, in run order.
SUITES = {
    "dispatch": "dispatch",
    "publish": "dispatch",
    "middleware": "dispatch",
    "async": "dispatch",
    "types": "dispatch",
    "memory": "memory",
    "eventstore": "eventstore",
    "postgres": "eventstore",
    "subscriptions": "subscriptions",
    "web": "web",
}


def _suites(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown suite {', '.join(unknown) or '(none)'}; choose from {', '.join(SUITES)}"
        )
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument(
        "--only",
        type=_suites,
        action="extend",
        metavar="SUITE[,SUITE]",
        help=f"run only these suites (of {', '.join(SUITES)}); may be repeated",
    )
    p.add_argument("--no-peers", action="store_true", help="leave the peer libraries out")
    p.add_argument(
        "--scale", type=float, default=1.0, help="multiply every size by this (default 1)"
    )
    p.add_argument(
        "--results",
        type=Path,
        default=HERE / "results",
        metavar="DIR",
        help="where to write <suite>.json (default benchmarks/results)",
    )
    plots = p.add_mutually_exclusive_group()
    plots.add_argument("--plots", type=Path, metavar="DIR", help="draw the PNG plots into DIR")
    plots.add_argument("--no-plots", action="store_true", help="draw no plots")
    p.add_argument("--worker", metavar="SUITE", help=argparse.SUPPRESS)
    return p


def _options(args: argparse.Namespace) -> Options:
    return Options(quick=args.quick, scale=args.scale, peers=not args.no_peers)


def _worker(args: argparse.Namespace) -> int:
    """Run one suite in this process: print its table, save its JSON."""
    module = importlib.import_module(SUITES[args.worker])
    suite: Callable[[Options], Table] = module.SUITES[args.worker]
    table = suite(_options(args))
    print(table.render(), flush=True)
    table.save(args.results)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.worker:
        return _worker(args)
    names = list(dict.fromkeys(args.only or SUITES))
    size = "quick" if args.quick else "full"
    print(f"busway benchmarks, {size} sizes{'' if args.scale == 1 else f' x{args.scale}'}")
    print(describe_environment(), flush=True)
    passed = ["--results", str(args.results), "--scale", str(args.scale)]
    passed += ["--quick"] * args.quick + ["--no-peers"] * args.no_peers
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    failed = []
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        print(f"\n== {name} ==", flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(HERE / "run.py"), "--worker", name, *passed],
            env=env,
            check=False,
        )
        print(f"({name}: {time.perf_counter() - started:.0f} s)", flush=True)
        if done.returncode:
            failed.append(name)
            continue
        results[name] = json.loads((args.results / f"{name}.json").read_text(encoding="utf-8"))
    # Only a full run of every suite redraws the documentation's plots: a partial one would
    # replace them with pictures of less.
    complete = not args.quick and not args.only
    plots = None if args.no_plots else args.plots or (ROOT / "docs" / "img" if complete else None)
    if plots is not None:
        from _plots import draw

        for line in draw(results, plots):
            print(line)
    print(f"\nresults: {args.results}")
    if failed:
        print(f"failed suites: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
