"""``jepa-graph render``: draw a spec, or regenerate the gallery.

    jepa-graph render specs/ijepa.jepa -o ijepa.svg
    jepa-graph render specs/two_rooms.yaml -o plan.svg --program step --rankdir TB
    jepa-graph render specs/hjepa.yaml -o h.pdf --depth 0 --no-shapes
    jepa-graph render --gallery docs/gallery          # every spec in specs/ -> svg + dot

A spec that fails validation is still drawn (errors in red) and the command exits 2.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .common import add_path_option, positive_float

HELP = "draw the architecture diagram (svg, png, pdf, dot)"


def add_arguments(p) -> None:
    p.add_argument("spec", nargs="?", metavar="SPEC", help="spec file (with --gallery: folder of specs, default specs/)")
    p.add_argument("-o", "--output", metavar="FILE", help="output file: .svg, .png, .pdf or .dot (default SPEC.svg)")
    p.add_argument("--rankdir", default="LR", choices=["LR", "TB", "BT", "RL"],
                   help="LR: left to right (default); TB: top to bottom; BT: upward, as in the paper")
    p.add_argument("--depth", type=int, default=None, metavar="N",
                   help="expand composite blocks N levels deep, collapse deeper ones (0: all collapsed)")
    p.add_argument("--no-shapes", dest="shapes", action="store_false", help="hide tensor shapes on edges")
    p.add_argument("--no-params", dest="params", action="store_false", help="hide parameter counts on blocks")
    p.add_argument("--highlight", nargs="+", default=[], metavar="BLOCK", help="outline these blocks or composites")
    p.add_argument("--program", default=None, metavar="NAME",
                   help="colour what one program uses; which programs a spec has depends on it (forward, "
                        "energy, loss, encode, step, rollout, cost, act, and encode_LEVEL/step_LEVEL/rollout_LEVEL per "
                        "hierarchy level): "
                        "an unknown NAME lists the spec's own")
    p.add_argument("--legend", action="store_true", help="add the notation key beside the diagram")
    p.add_argument("--timeout", type=positive_float, default=None, metavar="SECONDS",
                   help="longest time dot may take to lay out the diagram (default: diagrams.LAYOUT_TIMEOUT, 120)")
    p.add_argument("--gallery", metavar="DIR", default=None,
                   help="render every spec in SPEC (a folder, default specs/) into DIR as .svg and .dot")
    p.add_argument("--check", action="store_true", help="with --gallery: only report stale pictures, exit 1 if any")
    add_path_option(p)


def run(args) -> int:
    from ..diagrams import DotError, render  # graphviz
    if args.gallery:
        from ..diagrams.gallery import check_gallery, write_gallery  # only --gallery uses it
        specs = Path(args.spec or "specs")
        if args.check:
            stale = check_gallery(specs, Path(args.gallery))
            for s in stale:
                sys.stderr.write(f"stale: {s}\n")
            sys.stdout.write(f"{'ok' if not stale else f'{len(stale)} stale'}: {args.gallery}\n")
            return 1 if stale else 0
        try:
            written = write_gallery(specs, Path(args.gallery))
        except DotError as e:
            sys.stderr.write(f"error: {e}\n")
            return 1
        for w in written:
            sys.stdout.write(f"wrote {w}\n")
        return 0
    if not args.spec:
        sys.stderr.write("error: give a SPEC to draw (or --gallery DIR)\n")
        return 2
    out = Path(args.output) if args.output else Path(args.spec).with_suffix(".svg")
    try:
        d = render(args.spec, out, shapes=args.shapes, params=args.params, rankdir=args.rankdir,
                   depth=args.depth, highlight=args.highlight, program=args.program, legend=args.legend,
                   search_path=args.path, **({} if args.timeout is None else {"timeout": args.timeout}))
    except DotError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    for diag in d.errors:
        sys.stderr.write(diag.format() + "\n")
    if d.errors:
        sys.stdout.write(f"wrote {out} (spec has {len(d.errors)} error(s), marked in red)\n")
        return 2
    sys.stdout.write(f"wrote {out}\n")
    return 0
