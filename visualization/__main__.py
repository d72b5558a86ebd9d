"""``python -m visualization ...``: see :mod:`visualization.cli`."""

import signal
import sys

from visualization.cli import main

# Ctrl-C just stops: every file is written atomically, so there is nothing to clean up and no traceback to show.
signal.signal(signal.SIGINT, signal.SIG_DFL)
sys.exit(main())
