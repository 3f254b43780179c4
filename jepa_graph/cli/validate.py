"""``jepa-graph validate SPEC...``: check specs without torch (the graph, then ``train.data``:
source, ``with:`` keys and values, ``rename``); exit 0, or located errors and exit 2."""
from __future__ import annotations

from ..compiler.pipeline import check
from ..core.errors import SpecError
from ..data.check import check_data
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
        try:
            check_data(g)  # train.data, against the checked graph's inputs (jg.check stays the compiler's)
        except SpecError as e:
            err(str(e))
            bad += 1
            continue
        calls = sum(1 for n in g.nodes.values() if n.op == "call")
        out(f"ok: {path} ({calls} blocks, {len(g.nodes) - calls} variables)")
    return 2 if bad else 0
