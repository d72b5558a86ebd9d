"""The one exception type users see.

Anything that is the user's to fix (a missing dataset, a corrupt checkpoint, a bad flag value) is raised as
`GATError` with a message that says what is wrong and what to do. Command-line entry points catch it and print
the message as a single line, never a traceback.
"""

import argparse
import difflib
import re
from collections.abc import Callable


class GATError(Exception):
    """A problem the user can fix; `str(error)` is a complete one-line explanation."""


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[low, high]`` (``high`` None: no upper bound), else a message that
    states the range, so a bad number is refused at parse time rather than misused later."""
    allowed = f"in [{low}, {high}]" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value

    return parse


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


def describe_os_error(error: OSError) -> str:
    """An ``OSError`` in one line: ``<path>: <cause>`` (the entry points' last resort for a fault nothing else
    caught: a traceback is never the answer to a full disk or a missing folder)."""
    cause = error.strerror or str(error) or type(error).__name__
    return f"{error.filename}: {cause}" if error.filename is not None else cause
