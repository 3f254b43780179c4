"""``jepa-graph compile SPEC [--print-code]``: compile a spec to its programs, or print their torch code."""
from __future__ import annotations

from .common import add_path_option, out

HELP = "compile a spec; --print-code shows the generated torch code"


def add_arguments(p) -> None:
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--print-code", action="store_true")
    p.add_argument("--program", default="all", help="forward, energy, loss, encode, step, rollout, cost, act, or all")
    add_path_option(p)


def run(args) -> int:
    from ..compiler.model import compile  # torch: builds the model
    model = compile(args.spec, args.path)
    names = model.program_names() if args.program == "all" else [args.program]
    codes = [(name, model.code(name)) for name in names] if args.print_code else []  # all or nothing printed
    for name, code in codes:
        out(f"# program: {name}")
        out(code)
    if not args.print_code:
        out(f"ok: {args.spec} compiles to programs: {', '.join(model.program_names())}")
    return 0
