"""What several commands share: printing results and errors, and the ``--path`` option."""
from __future__ import annotations

import argparse
import sys


def out(*parts: str) -> None:
    """A result line on stdout."""
    sys.stdout.write(" ".join(parts) + "\n")


def err(text: str) -> None:
    """An error, warning or note on stderr (stdout stays the result)."""
    sys.stderr.write(text.rstrip("\n") + "\n")


def add_path_option(p, help: str = "extra folder to search for composite blocks (repeatable)") -> None:
    p.add_argument("--path", action="append", default=None, metavar="DIR", help=help)


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (``--batch 0`` is a usage error, not a crash later)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a time limit, a rate)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number") from None
    if not (0 < v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return v
