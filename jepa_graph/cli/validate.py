"""``jepa-graph validate SPEC...``: check specs without torch; exit 0, or located errors and exit 2."""
from __future__ import annotations

from ..compiler.pipeline import check
from ..core.errors import SpecError
from .common import add_path_option, err, out

HELP = "check specs; exit 0, or located errors and exit 2"


def add_arguments(p) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC")
    add_path_option(p)


def run(args) -> int:
    bad = 0
    for path in args.specs:
        try:
            g = check(path, args.path)
        except SpecError as e:
            err(str(e))
            bad += 1
            continue
        for w in g.warnings:
            err(w.format())
        calls = sum(1 for n in g.nodes.values() if n.op == "call")
        out(f"ok: {path} ({calls} blocks, {len(g.nodes) - calls} variables)")
    return 2 if bad else 0
