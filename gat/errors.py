"""The one exception type users see.

Anything that is the user's to fix (a missing dataset, a corrupt checkpoint, a bad flag value) is raised as
`GATError` with a message that says what is wrong and what to do. Command-line entry points catch it and print
the message as a single line, never a traceback.
"""

import argparse


class GATError(Exception):
    """A problem the user can fix; `str(error)` is a complete one-line explanation."""


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad flag is reported in one line (not usage + error) with a pointer to --help."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
