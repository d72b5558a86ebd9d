"""``python -m gat.reproduce [flags]``: the paper's results table, or with ``--study attention`` the attention study."""

import sys

from gat.reproduce import main

sys.exit(main())
