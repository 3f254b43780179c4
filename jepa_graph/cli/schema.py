"""``jepa-graph schema [-o FILE]``: the JSON Schema of the YAML syntax, for editors."""
from __future__ import annotations

import json
from pathlib import Path

from ..frontend.schema import json_schema
from .common import out

HELP = "JSON Schema of the YAML syntax"
DESCRIPTION = ("JSON Schema of the YAML syntax, for editors. Save it (-o jepa.schema.json) and point a spec at it "
               "with a first line `# yaml-language-server: $schema=jepa.schema.json` (VS Code YAML extension) or a "
               "`$schema:` key.")


def add_arguments(p) -> None:
    p.add_argument("-o", "--output", help="write to a file instead of stdout")


def run(args) -> int:
    text = json.dumps(json_schema(), indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    else:
        out(text)
    return 0
