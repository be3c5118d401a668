"""``python -m busway``: the ``busway`` command."""

from busway.cli import main

raise SystemExit(main())
