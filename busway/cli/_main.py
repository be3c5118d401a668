"""The command line: parse it, check the extra is there, run a command, map errors to codes."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ._exit import INTERRUPTED, NO_EXTRA, REFUSED, Failure

_EXTRA = 'the busway command needs its extra: pip install "busway[cli]"'


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``busway`` command with *argv* (default: ``sys.argv[1:]``); return its exit code."""
    try:
        import rich  # noqa: F401 - only to know the extra is installed
    except ImportError:
        print(f"busway: {_EXTRA}", file=sys.stderr)
        return NO_EXTRA
    from ..errors import BuswayError
    from ._commands import parser

    args = parser().parse_args(argv)  # exits with 2 on a usage error
    try:
        code: int = args.run(args)
    except Failure as failure:
        print(f"busway: {failure}", file=sys.stderr)
        return failure.code
    except BuswayError as exc:
        print(f"busway: {exc}", file=sys.stderr)
        return REFUSED
    except KeyboardInterrupt:
        print("busway: interrupted", file=sys.stderr)
        return INTERRUPTED
    return code


__all__ = ["main"]
