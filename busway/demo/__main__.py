"""Run the tour of the order service: ``python -m busway.demo [PATH]``."""

import sys

# Absolute, so that the file also runs by its path (runpy.run_path), not only with -m.
from busway.demo.tour import main

sys.exit(main())
