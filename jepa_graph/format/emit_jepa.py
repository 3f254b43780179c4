"""Canonical data -> canonical ``.jepa`` lines (the inverse of :mod:`jepa_graph.parse_dsl`).

Each construct is written with its sugar when reading it back gives the same data
(``encoder.mlp(x)``, ``enc(goal)``, ``ema(enc)(y, momentum=0.99..1.0)``, ``sg(t)``,
``unroll(pred)(s_seq, a_seq)``, ``enc(x_seq, each_step=true)``, and
``low.state(x) as encoder`` where the kind cannot be read off the copied block); anything the
sugar cannot say (``type`` together with ``ema_of``, fields added to the model later) falls
back to the generic mapping form ``name = {kind=encoder, type=mlp, ema_of=enc}``, so every
spec converts. :func:`jepa_graph.fmt.format_text` re-parses the output and refuses to
write it unless it gives the same spec.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from .comments import Line
from .emit_yaml import ALIGN, WIDTH, pack
from ..core.errors import SpecError
from ..frontend.spec import LatentInference

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
WORDS = {"true", "false", "null", "inf", "nan", "True", "False", "None"}  # bare, they would not read back as strings
SPECIAL = ("name", "description", "$schema", "inputs", "latents", "actions", "blocks", "objective", "costs", "levels")
VAR_KW = {"inputs": "input", "actions": "action", "latents": "latent"}
BLOCK_KEYS = {"kind", "type", "share", "ema_of", "unroll", "in", "with", "each_step", "frozen"}


# ---------------------------------------------------------------------------------- values
def quote(s: str) -> str:
    """A JSON string; non-printable characters escaped so that the line stays one line."""
    return json.dumps(s, ensure_ascii=not s.isprintable())


def key(k: Any) -> str:
    if not isinstance(k, str):
        raise SpecError(f"cannot write the key `{k!r}` in .jepa", hint="keys in .jepa are names or strings")
    return k if NAME.fullmatch(k) else quote(k)


def value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ("-inf" if v < 0 else "inf") if math.isinf(v) else "nan" if math.isnan(v) else repr(v)
    if isinstance(v, str):
        return v if DOTTED.fullmatch(v) and v.split(".")[0] not in WORDS else quote(v)
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{key(k)}={value(x)}" for k, x in v.items()) + "}"
    raise SpecError(f"cannot write the value `{v!r}` in .jepa", hint="spec values are numbers, strings, lists, mappings")


def unwritable(v: Any, path: tuple = ()) -> tuple[tuple, str] | None:
    """The first (path, what) in ``v`` that .jepa cannot write: a non-string key, a date..."""
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                return path + (k,), f"the key `{k!r}` (a {type(k).__name__})"
            found = unwritable(x, path + (k,))
            if found:
                return found
    elif isinstance(v, list):
        for i, x in enumerate(v):
            found = unwritable(x, path + (i,))
            if found:
                return found
    elif v is not None and not isinstance(v, (bool, int, float, str)):
        return path, f"the value `{v}` (a {type(v).__name__})"
    return None


def kwargs(d: dict, sep: str = ", ") -> str:
    return sep.join(f"{key(k)}={value(x)}" for k, x in d.items())


def _mapping_lines(d: dict, indent: int, path: tuple) -> list[Line]:
    """``key = value`` lines of a multi-line ``{ }`` mapping; nested mappings open their own."""
    pad, out = " " * indent, []
    for k, v in d.items():
        flat = f"{pad}{key(k)} = {value(v)}"
        if isinstance(v, dict) and v and len(flat) > WIDTH:
            out.append(Line(f"{pad}{key(k)} = {{", path + (k,)))
            out += _mapping_lines(v, indent + 2, path + (k,))
            out.append(Line(pad + "}"))
        else:
            out.append(Line(flat, path + (k,)))
    return out


def section(name: str, d: Any) -> list[Line]:
    """A section: ``dims obs=4, state=8`` on one line, or a ``name { ... }`` block."""
    if not isinstance(d, dict):
        raise SpecError(f"cannot write the top-level `{name}` in .jepa (it is not a mapping)",
                        hint="keep this spec in YAML")
    one = f"{key(name)} {kwargs(d)}" if d else f"{key(name)} {{}}"
    if len(one) <= WIDTH:
        return [Line(one, (name,))]
    return [Line(f"{key(name)} {{", (name,))] + _mapping_lines(d, 2, (name,)) + [Line("}")]


def weighted_sum(terms: dict[str, float]) -> str:
    out = []
    for i, (name, w) in enumerate(terms.items()):
        neg = w < 0 or (w == 0 and math.copysign(1, w) < 0)
        mag = -w if neg else w
        # a term called `inf`/`nan` keeps its coefficient: a bare `-inf` would read back as the number
        bare = mag == 1 and name.split(".")[0] not in WORDS
        body = name if bare else f"{value(float(mag))} * {name}"
        out.append(("-" if neg else "") + body if i == 0 else f"{'-' if neg else '+'} {body}")
    return " ".join(out)


# ------------------------------------------------------------------------------- variables
def var_decl(section_name: str, var: dict) -> str:
    """Everything after ``input x`` : ``: [obs] long``, ``: [2] real ~ l1(0.05)``..."""
    rest = dict(var)
    out = f": {value(rest.pop('shape'))}"
    if section_name == "inputs" and isinstance(rest.get("dtype"), str) and NAME.fullmatch(rest["dtype"]):
        out += f" {rest.pop('dtype')}"
    if section_name == "latents":
        dom = rest.get("domain")
        if isinstance(dom, str) and NAME.fullmatch(dom) and dom not in ("in", "infer"):
            out += f" {rest.pop('domain')}"
        elif isinstance(dom, dict) and len(dom) == 1 and NAME.fullmatch(next(iter(dom))):
            (k, v), = dom.items()
            if isinstance(v, list) and len(v) >= 2:
                out += f" {k}({', '.join(value(x) for x in v)})"
            else:
                out += f" {k}({value(v)})"
            rest.pop("domain")
        reg = rest.get("regularizer")
        if isinstance(reg, dict) and reg and all(NAME.fullmatch(k) and isinstance(w, (int, float))
                                                 and not isinstance(w, bool) for k, w in reg.items()):
            out += " ~ " + " + ".join(f"{k}({value(w)})" for k, w in rest.pop("regularizer").items())
        inf = rest.get("inference")
        if isinstance(inf, dict) and inf:
            inf = dict(inf)
            method = inf.pop("method", LatentInference.model_fields["method"].default)
            out += f" infer {method}" + (f"({kwargs(inf)})" if inf else "")
            rest.pop("inference")
    if section_name == "actions" and isinstance(rest.get("bounds"), list):
        out += f" in {value(rest.pop('bounds'))}"
    if rest:
        out += " " + value(rest)
    return out


# ---------------------------------------------------------------------------------- blocks
def _copy_target(b: dict) -> str | None:
    rel = [r for r in ("share", "ema_of") if r in b]
    if len(rel) != 1 or "type" in b or set(b) - BLOCK_KEYS or "kind" not in b:
        return None
    if rel[0] == "share" and b["share"].split(".")[0] == "frozen":  # `frozen` opens a right-hand side
        return None
    return b[rel[0]]


def block_forms(blocks: dict) -> dict[str, str]:
    """How each block is written: ``typed`` (kind.type(...)), ``copy`` (enc(x), ema(enc)(x),
    kind read from the copied block), ``copy_as`` (the same with ``as kind``), or ``generic``."""
    forms = {}
    for name, b in blocks.items():
        if set(b) - BLOCK_KEYS or "kind" not in b:
            forms[name] = "generic"
        elif "unroll" in b:  # unroll(pred)(states, a_seq, mode=teacher): always a predictor
            plain = b["kind"] == "predictor" and not {"type", "share", "ema_of", "each_step"} & set(b)
            forms[name] = "unroll" if plain else "generic"
        elif "type" in b:
            forms[name] = "typed" if "share" not in b and "ema_of" not in b else "generic"
        else:
            forms[name] = "copy_as" if _copy_target(b) is not None else "generic"
    # a copy may leave its kind out when following copies leads to a block of the same kind
    cand = {n for n, f in forms.items() if f == "copy_as" and blocks.get(_copy_target(blocks[n]), {}).get("kind") == blocks[n]["kind"]}
    for name in cand:
        seen, cur = set(), name
        while cur in cand and cur not in seen:
            seen.add(cur)
            cur = _copy_target(blocks[cur])
        if cur not in seen:
            forms[name] = "copy"
    return forms


def references(data: dict) -> dict[str, int]:
    """How often each name is mentioned anywhere outside its own definition."""
    counts: dict[str, int] = {}

    def add(s: Any) -> None:
        if isinstance(s, str):
            head = s.split(".", 1)[0]
            counts[head] = counts.get(head, 0) + 1
        elif isinstance(s, dict):
            for k, v in s.items():
                add(k) if isinstance(k, str) and k not in BLOCK_KEYS else None
                add(v)
        elif isinstance(s, list):
            for x in s:
                add(x)

    for k, v in data.items():
        if k == "blocks":
            for b in v.values():
                for e in b.get("in", []):
                    add(e if isinstance(e, str) else e.get("ref"))
                for rel in ("share", "ema_of", "unroll"):
                    add(b.get(rel))
                add({k2: v2 for k2, v2 in b.items() if k2 not in BLOCK_KEYS})
        elif k not in ("name", "description", "$schema", "dims", "inputs", "latents", "actions"):
            add(v)
    return counts


def inlinable(data: dict, forms: dict[str, str], commented: set[tuple]) -> dict[str, str]:
    """Shared blocks written inline in their one user, as ``enc(goal)``: block -> its user.

    The parser places an inline block just before its user, in the order of the user's inputs,
    and names it ``share_input``; only blocks written exactly like that (and used nowhere
    else, and without comments of their own) are inlined, so the round trip is exact.
    """
    blocks, counts = data["blocks"], references(data)
    out: dict[str, str] = {}
    run: list[str] = []
    for name in blocks:
        if _inline_candidate(name, blocks, forms, counts, commented):
            run.append(name)
            continue
        if run and forms[name] != "generic":
            used = [e for e in blocks[name].get("in", []) if isinstance(e, str) and e in run]
            if used == run:
                out.update({r: name for r in run})
        run = []
    return out


def _inline_candidate(name: str, blocks: dict, forms: dict[str, str], counts: dict, commented: set) -> bool:
    from ..frontend.dsl_build import inline_name  # lark (the DSL's parser): only when .jepa text is written
    b = blocks[name]
    ins = b.get("in", [])
    return (forms[name] == "copy" and set(b) == {"kind", "share", "in"} and b["share"] not in ("sg", "ema")
            and len(ins) == 1 and isinstance(ins[0], str) and name == inline_name(b["share"], ins[0])
            and counts.get(name, 0) == 1 and ("blocks", name) not in commented)


def block_rhs(name: str, b: dict, forms: dict[str, str], inline: dict[str, str], blocks: dict) -> list[str]:
    """The right-hand side of ``name = ...`` as pieces: head (empty for the generic form), args..."""
    if forms[name] == "generic":
        return ["", value(b)]
    edges = []
    for e in b.get("in", []):
        if isinstance(e, str) and inline.get(e) == name:
            src = blocks[e]
            edges.append(f"{src['share']}({src['in'][0]})")
        elif isinstance(e, str):
            edges.append(e)
        elif set(e) == {"ref", "stop_grad"} and e["stop_grad"] is True:
            edges.append(f"sg({e['ref']})")
        else:
            return ["", value(b)]
    params = b.get("with", {})
    args = edges + [f"{key(k)}={_param(k, v, b)}" for k, v in params.items()]
    if "each_step" in b:  # a block field, written as the last keyword (dsl_build takes it out of `with`)
        args.append(f"each_step={value(b['each_step'])}")
    if "unroll" in b:
        head = f"unroll({b['unroll']})"
    elif "type" in b:
        head = f"{b['kind']}.{b['type']}"
    elif "share" in b:
        head = b["share"]
    else:
        head = f"ema({b['ema_of']})"
    tail = f" as {b['kind']}" if forms[name] == "copy_as" else ""
    return [("frozen " if b.get("frozen") else "") + head, tail] + args


def _param(k: str, v: Any, b: dict) -> str:
    if k == "momentum" and "ema_of" in b and isinstance(v, list) and len(v) == 2 \
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return f"{value(v[0])}..{value(v[1])}"
    return value(v)


# ------------------------------------------------------------------------------------ spec
def emit_jepa(data: dict, commented: set[tuple] = frozenset()) -> list[Line]:
    """Canonical .jepa lines for canonical data; ``commented``: paths that carry comments."""
    out: list[Line] = []

    def gap() -> None:
        if out and out[-1].text:
            out.append(Line(""))

    out.append(Line(f"jepa {data['name']}", ("name",)))
    if "description" in data:
        out.append(Line(f"description {quote(data['description'])}", ("description",)))
    if "$schema" in data:
        out.append(Line(f"schema {quote(data['$schema'])}", ("$schema",)))
    if "dims" in data:
        gap()
        out += section("dims", data["dims"])
    gap()
    for sec, kw in VAR_KW.items():
        group: list[str] = []
        decl = None
        for name, var in list(data.get(sec, {}).items()) + [(None, None)]:
            d = var_decl(sec, var) if name is not None else None
            if group and (d != decl or (sec, name) in commented):
                out.append(Line(f"{kw:<6} {', '.join(group)} {decl}", (sec, group[0])))
                group = []
            if name is not None:
                group.append(name)
                decl = d
    gap()
    blocks = data["blocks"]
    forms = block_forms(blocks)
    inline = inlinable(data, forms, commented)
    shown = [n for n in blocks if n not in inline]
    width = min(max((len(n) for n in shown), default=0), ALIGN)
    for name in shown:
        head, *args = block_rhs(name, blocks[name], forms, inline, blocks)
        tail = args.pop(0) if head else ""
        lhs = f"{name:<{width}} = "
        one = lhs + (f"{head}({', '.join(args)}){tail}" if head else args[0])
        packed = pack(f"{lhs}{head}(", args, ")" + tail) if head else None
        if len(one) <= WIDTH:
            out.append(Line(one, ("blocks", name)))
        elif packed:
            out += [Line(t, ("blocks", name) if i == 0 else None) for i, t in enumerate(packed)]
        elif head:
            out.append(Line(f"{lhs}{head}(", ("blocks", name)))
            out += [Line(f"    {a},") for a in args] + [Line(")" + tail)]
        else:
            out.append(Line(lhs + "{", ("blocks", name)))
            out += _mapping_lines(blocks[name], 4, ("blocks", name)) + [Line("}")]
    gap()
    for k, v in data.items():
        if k in ("objective", "costs"):
            if v:  # `objective: {}` is the default: nothing to write
                out.append(Line(f"{k} {weighted_sum(v)}", (k,)))
        elif k == "levels":
            for i, lv in enumerate(v):
                rest = {a: b for a, b in lv.items() if a != "name"}
                out.append(Line(f"level {lv['name']}" + (f" {kwargs(rest)}" if rest else ""), ("levels", i)))
        elif k not in SPECIAL and k != "dims":
            lines = section(k, v)
            if len(lines) > 1:
                gap()
            out += lines
    while out and not out[-1].text:
        out.pop()
    return out
