"""``python -m gat [flags]``: train a GAT, exactly as ``training_script.py`` does."""

import sys

from gat.cli import main

sys.exit(main())
