"""What several commands share: printing results and errors, and the ``--path`` option."""
from __future__ import annotations

import sys


def out(*parts: str) -> None:
    """A result line on stdout."""
    sys.stdout.write(" ".join(parts) + "\n")


def err(text: str) -> None:
    """An error, warning or note on stderr (stdout stays the result)."""
    sys.stderr.write(text.rstrip("\n") + "\n")


def add_path_option(p, help: str = "extra folder to search for composite blocks (repeatable)") -> None:
    p.add_argument("--path", action="append", default=None, metavar="DIR", help=help)
