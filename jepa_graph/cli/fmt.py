"""``jepa-graph fmt``: lossless conversion between YAML and ``.jepa``, and canonical formatting.

    jepa-graph fmt specs/two_rooms.yaml --to jepa            # print the .jepa version
    jepa-graph fmt specs/two_rooms.yaml -o two_rooms.jepa    # convert (syntax from the extension)
    jepa-graph fmt specs blocks                              # reformat every spec in place
    jepa-graph fmt --check specs blocks                      # exit 1 if a file is not canonical

The work is :func:`jepa_graph.format.convert.format_text`: nothing is written unless the result
reads back as the same spec with every comment.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..core.errors import SpecError
from ..format.convert import SYNTAXES, format_text, syntax_of
from ..frontend.load import read_text

HELP = "convert between YAML and .jepa losslessly, or reformat in place"


def add_arguments(p) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC", help=".yaml or .jepa spec files, or folders of them")
    p.add_argument("--to", choices=SYNTAXES, help="convert to this syntax (printed, or written to -o)")
    p.add_argument("-o", "--output", help="write here (the syntax follows its extension unless --to is given)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not canonical")


def _expand(paths: list[str]) -> list[str]:
    """Folders stand for the spec files directly inside them."""
    out = []
    for p in paths:
        if Path(p).is_dir():
            out += sorted(str(f) for f in Path(p).iterdir() if f.suffix in (".yaml", ".yml", ".jepa") and f.is_file())
        else:
            out.append(p)
    return out


def run(args) -> int:
    args.specs = _expand(args.specs)
    if (args.output or args.to) and len(args.specs) > 1:
        sys.stderr.write("error: --to and -o take one SPEC\n")
        return 2
    if args.check and (args.output or args.to):
        sys.stderr.write("error: --check compares files with their canonical form; drop --to/-o\n")
        return 2
    out_syntax = "jepa" if str(args.output).endswith(".jepa") else \
        "yaml" if str(args.output).endswith((".yaml", ".yml")) else None
    if args.output and args.to and out_syntax not in (None, args.to):  # YAML in a .jepa file reads as garbage
        sys.stderr.write(f"error: --to {args.to} but -o {args.output} names a {out_syntax} file; "
                         f"name the output .{'jepa' if args.to == 'jepa' else 'yaml'}, or drop --to\n")
        return 2
    status = 0
    for path in args.specs:
        try:
            text = read_text(path)
            to = args.to or (syntax_of(args.output) if args.output else syntax_of(path))
            out = format_text(text, str(path), to)
        except SpecError as e:
            sys.stderr.write(str(e) + "\n")
            status = 2
            continue
        if args.check:
            if out != text:
                sys.stderr.write(f"would reformat {path}\n")
                status = max(status, 1)
        elif args.output:
            Path(args.output).write_text(out)
            sys.stderr.write(f"wrote {args.output}\n")
        elif args.to:
            sys.stdout.write(out)
        elif out != text:
            Path(path).write_text(out)
            sys.stderr.write(f"reformatted {path}\n")
    return status
