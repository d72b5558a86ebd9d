"""Where the benchmark scripts meet their users: a mistyped flag, a corrupt file or a failing folder is one line on
stderr, never a traceback.

- :func:`run_main` runs a script's ``main`` (its ``if __name__ == "__main__":``) and turns what is left (a
  `GATError`, an ``OSError``, a reader that closed the pipe) into one line and an exit code;
- :func:`positive_float` and :func:`comma_separated` are argparse types beside `gat.errors.bounded_int`: a bad
  number is refused at parse time, naming the flag;
- :func:`ensure_writable_file` proves an output file can be written before anything is measured;
  :func:`run_checked` runs a subprocess whose failure is one line. (Saved files are read with
  `gat.validate.read_json`.)
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gat.errors import GATError, describe_os_error
from gat.io import ensure_writable

T = TypeVar("T")


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """``main(argv)``'s exit code (None counts as 0); a `GATError` or ``OSError`` is printed as one line and gives 1,
    Ctrl-C gives "interrupted" and 130.

    A reader that stops early (``| head``) closes the pipe: the script stops quietly with 1, as Python's docs on
    SIGPIPE recommend, its stdout pointed at /dev/null so that the interpreter's last flush does not fail again.
    """
    try:
        code = main(argv)
        sys.stdout.flush()  # inside the try: buffered output meets a closed pipe here, not at exit
        return code or 0
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:  # Ctrl-C: what the library's commands answer too (128 + SIGINT)
        print("interrupted", file=sys.stderr)
        return 130
    except GATError as error:
        message = str(error)
    except OSError as error:  # anything the project's own readers and writers did not see first
        message = describe_os_error(error)
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    return 1


def positive_float(high: float | None = None) -> Callable[[str], float]:
    """An argparse ``type``: a finite number > 0 (and <= ``high``), else a message that states the range."""
    allowed = f"> 0 and <= {high:g}" if high is not None else "> 0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {allowed}, got {text!r}") from None
        if not math.isfinite(value) or value <= 0 or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a number {allowed}, got {text}")
        return value

    return parse


def comma_separated(item: Callable[[str], T]) -> Callable[[str], list[T]]:
    """An argparse ``type``: a comma-separated list, each part parsed (and refused) by the argparse type ``item``."""
    return lambda text: [item(part.strip()) for part in text.split(",")]


def ensure_writable_file(path: Path) -> None:
    """Raise `GATError` unless a file can be written at ``path`` (checked before measuring, not after)."""
    if path.is_dir():
        raise GATError(f"cannot write {path}: it is a folder")
    ensure_writable(path.parent)


def run_checked(command: list[str], **options: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(command)``, its output captured as text; a failure is a `GATError` (see :func:`failed`)."""
    done = subprocess.run(command, capture_output=True, text=True, **options)
    if done.returncode != 0:
        raise failed(command, done.returncode, done.stderr)
    return done


def failed(command: list[str], code: int, stderr: str) -> GATError:
    """One line for a subprocess that failed: its command (an inline ``-c`` script as ``<script>``) and the last
    line it wrote to stderr, which says why."""
    shown = [Path(command[0]).name, *("<script>" if "\n" in part else part for part in command[1:])]
    last = (stderr.strip().splitlines() or ["no message"])[-1].strip()
    return GATError(f"{' '.join(shown)} failed (exit {code}): {last}")
