"""The one exception type users see.

Anything that is the user's to fix (a missing dataset, a corrupt checkpoint, a bad flag value) is raised as
`GATError` with a message that says what is wrong and what to do. Command-line entry points catch it and print
the message as a single line, never a traceback.
"""

import argparse
import difflib
import re


class GATError(Exception):
    """A problem the user can fix; `str(error)` is a complete one-line explanation."""


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad flag is reported in one line (not usage + error) with a pointer to --help, and a
    mistyped choice or subcommand with the closest valid one ("did you mean 'attention'?")."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}{did_you_mean(message)} (see --help)\n")


def did_you_mean(message: str) -> str:
    """``"; did you mean 'X'?"`` for argparse's "invalid choice: 'Y' (choose from ...)" when a choice is close to Y,
    else ``""``."""
    match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if match is None:
        return ""
    choices = re.findall(r"'?([^',\s]+)'?", match.group(2))
    close = difflib.get_close_matches(match.group(1), choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
