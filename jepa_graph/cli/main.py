"""The ``jepa-graph`` command line. Bad specs print located errors and exit 2, never a traceback.

One module per command, listed in :data:`COMMANDS`; each has ``HELP`` (and may have
``DESCRIPTION``), ``add_arguments(parser)`` and ``run(args) -> int``. The modules import torch,
matplotlib and graphviz inside ``run``, so ``--help``, ``validate``, ``fmt``, ``schema`` and
``info --blocks`` start without them.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..core.errors import BlockRuntimeError, SpecError
from . import compile, demo, energy, fmt, info, plan, plot, render, schema, train, validate
from .common import err

COMMANDS = [validate, info, compile, schema, fmt, render, train, plot, energy, plan, demo]  # in --help's order


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jepa-graph", description="Compose, check and run JEPAs from spec files.")
    p.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        name = command.__name__.rpartition(".")[2]
        sp = sub.add_parser(name, help=command.HELP, description=getattr(command, "DESCRIPTION", None))
        command.add_arguments(sp)
        sp.set_defaults(func=command.run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except SpecError as e:
        err(str(e))
        return 2
    except BlockRuntimeError as e:
        err(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:  # `jepa-graph info --blocks | head`: the reader left early; not a failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 0
    except OSError as e:  # an output path in a missing folder, a directory, no permission: the user's to fix
        where = f" `{e.filename}`" if e.filename else ""
        err(f"error: cannot use{where}: {e.strerror or e}")
        err("hint: check the path and its folder's permissions")
        return 2


if __name__ == "__main__":
    sys.exit(main())
