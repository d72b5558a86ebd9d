"""Train a GAT from the command line, as in the pytorch-GAT workflow: ``python training_script.py [flags]``.

The command lives in the package (`gat.cli`); ``python -m gat`` and the ``gat-train`` console script run the same.
Run with --help for every flag.
"""

import sys

from gat.cli import main

if __name__ == "__main__":
    sys.exit(main())
