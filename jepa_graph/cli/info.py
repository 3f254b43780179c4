"""``jepa-graph info SPEC``: blocks, shapes and parameter counts; ``info --blocks [NAME]``: the block types;
``info --data [NAME]``: the data sources, or one's ``with:`` keys and what it yields."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..compiler.composite import STDLIB, available_composites, find_composite
from ..core.errors import SpecError, did_you_mean
from ..core.registry import list_blocks
from ..data import source_info, source_names
from ..data.describe import param_rows
from ..frontend.load import load
from ..frontend.schema import _params
from .common import add_path_option, err, out

HELP = "blocks, shapes, parameter counts"


def add_arguments(p) -> None:
    p.add_argument("spec", nargs="?", metavar="SPEC")
    p.add_argument("--blocks", action="store_true",
                   help="list registered block types; with a NAME instead of SPEC (encoder.mlp, mlp, or a kind): "
                        "their inputs and parameters")
    p.add_argument("--data", action="store_true",
                   help="list the data sources (train.data); with a NAME instead of SPEC: its `with:` keys and "
                        "what it yields")
    add_path_option(p)


def run(args) -> int:
    if args.blocks and args.data:
        err("error: give --blocks or --data, not both")
        return 2
    if args.data:
        return _list_sources(args.spec)
    if args.blocks:
        if args.spec == "composite" or (args.spec and args.spec.startswith("composite.")):
            return _list_composites(args.spec.partition(".")[2] or None, args.path)
        return _list_blocks(args.spec)
    if not args.spec:
        err("error: give a SPEC, or --blocks to list block types")
        return 2
    from ..compiler.model import compile  # torch: builds the model to count its parameters
    model = compile(args.spec, args.path)
    spec = model.spec
    out(f"{spec.name}: {model.num_parameters():,} parameters "
        f"({model.num_parameters(trainable_only=True):,} trainable)")
    rows = model.summary()
    w = [max(len(str(r[k])) for r in rows + [{"name": "name", "what": "what", "shape": "shape", "params": "params", "note": ""}])
         for k in ("name", "what", "shape", "params")]
    out(f"{'name':<{w[0]}}  {'what':<{w[1]}}  {'shape':<{w[2]}}  {'params':>{w[3]}}")
    for r in rows:
        out(f"{r['name']:<{w[0]}}  {r['what']:<{w[1]}}  {r['shape']:<{w[2]}}  {r['params']:>{w[3]},}  {r['note']}".rstrip())
    out("programs: " + ", ".join(model.program_names()))
    if model.graph.objective:
        out("objective: " + " + ".join(f"{t.weight:g}*{t.name}" for t in model.graph.objective))
    for wmsg in model.graph.warnings:
        err(wmsg.format())
    return 0


def _list_blocks(pattern: str | None) -> int:
    """``info --blocks``: one line per registered type; ``info --blocks NAME`` (``encoder.mlp``,
    ``mlp`` or a kind): those types with their inputs and ``with:`` parameters."""
    blocks = list_blocks()
    if pattern is None:
        rows = [(f"{c.kind}.{c.name}", c.doc()) for c in blocks]
        width = max(len(r[0]) for r in rows)
        for name, doc in rows:
            out(f"{name:<{width}}  {doc}")
        err(f"{len(rows)} block types; `jepa-graph info --blocks NAME` shows one's inputs and parameters, "
            "`--blocks composite` the composite blocks")  # stdout stays a list
        return 0
    chosen = [c for c in blocks if pattern in (f"{c.kind}.{c.name}", c.name, c.kind)]
    if not chosen:
        names = sorted({f"{c.kind}.{c.name}" for c in blocks} | {c.name for c in blocks} | {c.kind for c in blocks})
        raise SpecError(f"no block type matches `{pattern}`", hint=did_you_mean(pattern, names, "block types"))
    for i, c in enumerate(chosen):
        lo, hi = c.arity
        n = str(lo) if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
        out(("\n" if i else "") + f"{c.kind}.{c.name}: {c.doc()}")
        out(f"  inputs: {n}" + (f" ({', '.join(c.input_names)})" if c.input_names else ""))
        props = _params(c.Params).get("properties", {})
        required = set(_params(c.Params).get("required", []))
        if not props:
            out("  with: (no parameters)")
        for key, js in props.items():
            default = "required" if key in required else f"default {json.dumps(js.get('default'))}"
            out(f"  with.{key}: {_type_name(js)}, {default}")
    return 0


def _list_sources(name: str | None) -> int:
    """``info --data``: one line per data source; ``info --data NAME``: its ``with:`` keys (type,
    default, what each does) and the keys its batches hold (no torch: from the catalog)."""
    names = source_names()
    if name is None:
        width = max(len(n) for n in names)
        for n in names:
            out(f"{n:<{width}}  {source_info(n).doc}")
        err(f"{len(names)} data sources; `jepa-graph info --data NAME` shows one's `with:` keys and what it yields")
        return 0
    info = source_info(name)
    if info is None:
        raise SpecError(f"no data source `{name}`", hint=did_you_mean(name, names, "data sources"))
    out(f"{name}: {info.doc}")
    rows = param_rows(info.Params)
    out("  with:" + ("" if rows else " (no parameters)"))
    _table([(k, typ, d, doc) for k, typ, d, doc in rows], "    ")
    if info.yields is None:
        out("  yields: what its sample() returns (not declared)")
        return 0
    out("  yields, per batch of B samples:")
    _table([(k, y.text(), y.about) for k, y in info.keys.items()], "    ")
    if info.symbols:
        out(f"  where {info.symbols}")
    got = info.yields(info.Params(), {})
    out("  with the defaults and no spec inputs: " + ", ".join(f"{k} {v}" for k, v in got.items()))
    return 0


def _table(rows: list[tuple[str, ...]], indent: str) -> None:
    """Rows in aligned columns (the last one ragged)."""
    if not rows:
        return
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        out((indent + "  ".join(f"{c:<{w[i]}}" for i, c in enumerate(r[:-1])) + "  " + r[-1]).rstrip())


def _list_composites(name: str | None, path: list[str] | None) -> int:
    """``info --blocks composite[.NAME]``: composite blocks on the search path (``--path``,
    ``JEPA_GRAPH_PATH``, the standard library ``blocks/``), with their inputs, outputs and the
    dims a use may set in ``with:``."""
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
        out(("\n" if i and name else "") + f"composite.{n}  {about}".rstrip())
        if name:
            out(f"  file: {file}")
            out("  inputs: " + ", ".join(f"{k} [{', '.join(map(str, v.shape))}]" for k, v in
                                         {**spec.inputs, **spec.actions, **spec.latents}.items()))
            out("  outputs: " + ", ".join(spec.outputs))
            out("  with (dims): " + ", ".join(f"{k}={v}" for k, v in spec.dims.items()))
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
