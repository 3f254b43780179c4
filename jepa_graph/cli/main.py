"""The ``jepa-graph`` command line. Bad specs print located errors and exit 2, never a traceback.

Commands live in this file when they are thin wrappers; bigger ones (``fmt``, ``render``) live
in their own modules, which expose ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path

from ..core.errors import BlockRuntimeError, SpecError

# (command, module, help): commands implemented in their own modules
EXTERNAL = [
    ("fmt", "jepa_graph.format.convert", "convert between YAML and .jepa losslessly, or reformat in place"),
    ("render", "jepa_graph.cli.render", "draw the architecture diagram (svg, png, pdf, dot)"),
    ("train", "jepa_graph.cli.train", "train on the spec's data source: checkpoints, metrics (key=value overrides)"),
    ("plot", "jepa_graph.cli.train", "draw a run's loss terms and collapse monitors to PNG"),
    ("energy", "jepa_graph.inference.landscape", "plot the energy over a latent, or F along a line of targets, to PNG"),
]


def _out(*parts: str) -> None:
    sys.stdout.write(" ".join(parts) + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")


def cmd_validate(args) -> int:
    from ..compiler.pipeline import check
    bad = 0
    for path in args.specs:
        try:
            g = check(path, args.path)
        except SpecError as e:
            _err(str(e))
            bad += 1
            continue
        for w in g.warnings:
            _err(w.format())
        calls = sum(1 for n in g.nodes.values() if n.op == "call")
        _out(f"ok: {path} ({calls} blocks, {len(g.nodes) - calls} variables)")
    return 2 if bad else 0


def cmd_info(args) -> int:
    if args.blocks:
        if args.spec == "composite" or (args.spec and args.spec.startswith("composite.")):
            return _list_composites(args.spec.partition(".")[2] or None, args.path)
        return _list_blocks(args.spec)
    if not args.spec:
        _err("error: give a SPEC, or --blocks to list block types")
        return 2
    from ..compiler.model import compile
    model = compile(args.spec, args.path)
    spec = model.spec
    _out(f"{spec.name}: {model.num_parameters():,} parameters "
         f"({model.num_parameters(trainable_only=True):,} trainable)")
    rows = model.summary()
    w = [max(len(str(r[k])) for r in rows + [{"name": "name", "what": "what", "shape": "shape", "params": "params", "note": ""}])
         for k in ("name", "what", "shape", "params")]
    _out(f"{'name':<{w[0]}}  {'what':<{w[1]}}  {'shape':<{w[2]}}  {'params':>{w[3]}}")
    for r in rows:
        _out(f"{r['name']:<{w[0]}}  {r['what']:<{w[1]}}  {r['shape']:<{w[2]}}  {r['params']:>{w[3]},}  {r['note']}".rstrip())
    _out("programs: " + ", ".join(model.program_names()))
    if model.graph.objective:
        _out("objective: " + " + ".join(f"{t.weight:g}*{t.name}" for t in model.graph.objective))
    for wmsg in model.graph.warnings:
        _err(wmsg.format())
    return 0


def _list_blocks(pattern: str | None) -> int:
    """``info --blocks``: one line per registered type; ``info --blocks NAME`` (``encoder.mlp``,
    ``mlp`` or a kind): those types with their inputs and ``with:`` parameters."""
    from ..core.errors import did_you_mean
    from ..core.registry import list_blocks
    blocks = list_blocks()
    if pattern is None:
        rows = [(f"{c.kind}.{c.name}", c.doc()) for c in blocks]
        width = max(len(r[0]) for r in rows)
        for name, doc in rows:
            _out(f"{name:<{width}}  {doc}")
        _err(f"{len(rows)} block types; `jepa-graph info --blocks NAME` shows one's inputs and parameters, "
             "`--blocks composite` the composite blocks")  # stdout stays a list
        return 0
    chosen = [c for c in blocks if pattern in (f"{c.kind}.{c.name}", c.name, c.kind)]
    if not chosen:
        names = sorted({f"{c.kind}.{c.name}" for c in blocks} | {c.name for c in blocks} | {c.kind for c in blocks})
        raise SpecError(f"no block type matches `{pattern}`", hint=did_you_mean(pattern, names, "block types"))
    from ..frontend.schema import _params
    for i, c in enumerate(chosen):
        lo, hi = c.arity
        n = str(lo) if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
        _out(("\n" if i else "") + f"{c.kind}.{c.name}: {c.doc()}")
        _out(f"  inputs: {n}" + (f" ({', '.join(c.input_names)})" if c.input_names else ""))
        props = _params(c.Params).get("properties", {})
        required = set(_params(c.Params).get("required", []))
        if not props:
            _out("  with: (no parameters)")
        for key, js in props.items():
            default = "required" if key in required else f"default {json.dumps(js.get('default'))}"
            _out(f"  with.{key}: {_type_name(js)}, {default}")
    return 0


def _list_composites(name: str | None, path: list[str] | None) -> int:
    """``info --blocks composite[.NAME]``: composite blocks on the search path (``--path``,
    ``JEPA_GRAPH_PATH``, the standard library ``blocks/``), with their inputs, outputs and the
    dims a use may set in ``with:``."""
    import os

    from ..compiler.composite import STDLIB, available_composites, find_composite
    from ..core.errors import did_you_mean
    from ..frontend.load import load
    dirs = [Path(p) for p in path or []]
    dirs += [Path(p) for p in os.environ.get("JEPA_GRAPH_PATH", "").split(os.pathsep) if p] + [STDLIB]
    names = available_composites(dirs)
    if name is not None and name not in names:
        raise SpecError(f"no composite block `{name}` on the search path",
                        hint=did_you_mean(name, names, "composites") + " (add folders with --path)")
    for i, n in enumerate([name] if name else names):
        file = find_composite(n, dirs)
        spec = load(file)
        about = spec.description or _first_sentence(file.read_text())
        _out(("\n" if i and name else "") + f"composite.{n}  {about}".rstrip())
        if name:
            _out(f"  file: {file}")
            _out("  inputs: " + ", ".join(f"{k} [{', '.join(map(str, v.shape))}]" for k, v in
                                          {**spec.inputs, **spec.actions, **spec.latents}.items()))
            _out("  outputs: " + ", ".join(spec.outputs))
            _out("  with (dims): " + ", ".join(f"{k}={v}" for k, v in spec.dims.items()))
    return 0


def _first_sentence(text: str) -> str:
    """The first sentence of a file's leading ``#`` comment block (a composite's summary)."""
    lines = []
    for ln in text.splitlines():
        if not ln.startswith("#"):
            break
        lines.append(ln.lstrip("#").strip())
    head = " ".join(lines)
    end = head.find(". ")
    return head[:end + 1] if end >= 0 else head


def _type_name(js: dict) -> str:
    """A JSON Schema fragment as a short type: ``int | dim``, ``list[int | dim]``, ``relu|gelu``."""
    if "enum" in js:
        return "|".join(str(v) for v in js["enum"])
    if "anyOf" in js:
        parts = [_type_name(a) for a in js["anyOf"]]
        return " | ".join("dim" if p == "str" and a.get("pattern") else p for p, a in zip(parts, js["anyOf"]))
    t = js.get("type")
    if t == "array":
        items = js.get("prefixItems")
        if items:
            return "[" + ", ".join(_type_name(a) for a in items) + "]"
        return f"list[{_type_name(js.get('items', {}))}]"
    return {"integer": "int", "number": "float", "boolean": "bool", "string": "str", "null": "null"}.get(t, t or "any")


def cmd_compile(args) -> int:
    from ..compiler.model import compile
    model = compile(args.spec, args.path)
    names = model.program_names() if args.program == "all" else [args.program]
    codes = [(name, model.code(name)) for name in names] if args.print_code else []  # all or nothing printed
    for name, code in codes:
        _out(f"# program: {name}")
        _out(code)
    if not args.print_code:
        _out(f"ok: {args.spec} compiles to programs: {', '.join(model.program_names())}")
    return 0


def cmd_schema(args) -> int:
    from ..frontend.schema import json_schema
    text = json.dumps(json_schema(), indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    else:
        _out(text)
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jepa-graph", description="Compose, check and run JEPAs from spec files.")
    p.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--path", action="append", default=None, metavar="DIR",
                        help="extra folder to search for composite blocks (repeatable)")

    sp = sub.add_parser("validate", help="check specs; exit 0, or located errors and exit 2")
    sp.add_argument("specs", nargs="+", metavar="SPEC")
    common(sp)
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("info", help="blocks, shapes, parameter counts")
    sp.add_argument("spec", nargs="?", metavar="SPEC")
    sp.add_argument("--blocks", action="store_true",
                    help="list registered block types; with a NAME instead of SPEC (encoder.mlp, mlp, or a kind): "
                         "their inputs and parameters")
    common(sp)
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("compile", help="compile a spec; --print-code shows the generated torch code")
    sp.add_argument("spec", metavar="SPEC")
    sp.add_argument("--print-code", action="store_true")
    sp.add_argument("--program", default="all", help="forward, energy, loss, encode, step, cost, act, or all")
    common(sp)
    sp.set_defaults(func=cmd_compile)

    sp = sub.add_parser("schema", help="JSON Schema of the YAML syntax",
                        description="JSON Schema of the YAML syntax, for editors. Save it (-o jepa.schema.json) and "
                                    "point a spec at it with a first line `# yaml-language-server: "
                                    "$schema=jepa.schema.json` (VS Code YAML extension) or a `$schema:` key.")
    sp.add_argument("-o", "--output", help="write to a file instead of stdout")
    sp.set_defaults(func=cmd_schema)

    for name, module, help_ in EXTERNAL:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        sp = sub.add_parser(name, help=help_)
        add, run = mod.COMMANDS[name] if hasattr(mod, "COMMANDS") else (mod.add_arguments, mod.run)  # several per module
        add(sp)
        sp.set_defaults(func=run)

    sp = sub.add_parser("demo", help="the main job on the built-in default")
    sp.add_argument("--specs", default=None, help="folder of specs (default: the repo's specs/)")
    sp.add_argument("--batch", type=int, default=32, help="batch size of the random-input runs")
    sp.add_argument("--steps", type=int, default=1000, help="training steps of the Two Rooms world model")
    sp.add_argument("--quick", action="store_true", help="only validate, compile and run every spec")
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except SpecError as e:
        _err(str(e))
        return 2
    except BlockRuntimeError as e:
        _err(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # `jepa-graph info --blocks | head`: the reader left early; not a failure
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 0
    except OSError as e:  # an output path in a missing folder, a directory, no permission: the user's to fix
        where = f" `{e.filename}`" if e.filename else ""
        _err(f"error: cannot use{where}: {e.strerror or e}")
        _err("hint: check the path and its folder's permissions")
        return 2


if __name__ == "__main__":
    sys.exit(main())
