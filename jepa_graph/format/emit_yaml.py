"""Spec -> canonical plain data -> canonical YAML lines.

:func:`canonical_data` is the one normal form both emitters start from: defaults left out,
keys in a fixed order (``kind, type, share, ema_of, unroll, in, with, each_step, frozen`` for blocks), a plain
edge written as its name. :func:`emit_yaml` lays it out the way ``specs/*.yaml`` read: one
section per top-level key, one flow-style line per input, latent, action and block (aligned),
block style only where a line would pass :data:`WIDTH`.

    data = canonical_data(jg.load("specs/seed_world_model.yaml"))
    text = "\\n".join(line.text for line in emit_yaml(data))
"""
from __future__ import annotations

import json
import math
from typing import Any

import yaml

from .comments import Line
from ..frontend.spec import Spec

WIDTH = 120  # a flow-style line longer than this is written in block style
TOP_ORDER = ("$schema", "name", "description", "dims", "inputs", "actions", "latents", "blocks", "outputs",
             "objective", "world_model", "costs", "levels")
BLOCK_ORDER = ("kind", "type", "share", "ema_of", "unroll", "in", "with", "each_step", "frozen")
VAR_ORDER = ("shape", "dtype", "domain", "regularizer", "inference", "bounds")
LEVEL_ORDER = ("name", "encoder", "predictor", "action", "latent", "stride", "subgoal")
ALIGN = 16  # entry names are padded to line up, up to this width
ENTRY_SECTIONS = ("inputs", "latents", "actions", "blocks")  # name -> mapping, one line each


def _ordered(d: dict, order: tuple) -> dict:
    return {**{k: d[k] for k in order if k in d}, **{k: v for k, v in d.items() if k not in order}}


def _plain(v: Any) -> Any:
    """Tuples -> lists, recursively (the model keeps (lo, hi) pairs as tuples)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _compact(x: Any) -> Any:
    """1.0 -> 1 where the model stores floats anyway (bounds, box): reads like the user wrote it."""
    if isinstance(x, float) and math.isfinite(x) and x == int(x) and abs(x) < 2 ** 53:
        return int(x)
    return x


def spec_data(spec: Spec) -> dict:
    """A spec built in Python (no source text) as plain data, defaults left out."""
    d = _plain(spec.model_dump(by_alias=True, exclude_defaults=True))
    for section in ("inputs", "latents", "actions"):
        for var in d.get(section, {}).values():
            if "bounds" in var:
                var["bounds"] = [_compact(x) for x in var["bounds"]]
            if isinstance(var.get("domain"), dict) and isinstance(var["domain"].get("box"), list):
                var["domain"]["box"] = [_compact(x) for x in var["domain"]["box"]]
    return d


def _drop(d: dict, keys: tuple, empty: tuple = ()) -> dict:
    """Leave out optional fields written with their default (None, false, [], {})."""
    return {k: v for k, v in d.items() if not (k in keys and (v is None or v is False or (k in empty and v in ([], {}))))}


def canonical_data(data: dict) -> dict:
    """Validated spec data (as written, or from :func:`spec_data`) in canonical form.

    Only the layout is normalised: a fixed key order, a plain edge written as its name, and
    optional fields written with their default value left out. Values stay as the user wrote
    them (``data: video`` stays a word even if the model expands it).
    """
    d = _drop(_plain(data), ("description", "$schema", "world_model"))
    d.setdefault("blocks", {})
    for section in ("inputs", "latents", "actions"):
        if isinstance(d.get(section), dict):
            d[section] = {n: _ordered(_drop(v, ("bounds",)), VAR_ORDER) for n, v in d[section].items()}
    blocks = {}
    for name, blk in d["blocks"].items():
        blk = _drop(blk, ("type", "share", "ema_of", "unroll", "each_step", "frozen", "in", "with"), empty=("in", "with"))
        if "in" in blk:
            blk["in"] = [e if isinstance(e, str) else e["ref"] if not e.get("stop_grad") and set(e) <= {"ref", "stop_grad"}
                         else _ordered(e, ("ref", "stop_grad")) for e in blk["in"]]
        blocks[name] = _ordered(blk, BLOCK_ORDER)
    d["blocks"] = blocks
    if isinstance(d.get("world_model"), dict):
        d["world_model"] = _drop(d["world_model"], ("action", "latent"))
    if isinstance(d.get("levels"), list):
        d["levels"] = [_ordered(_drop(lv, ("action", "latent")), LEVEL_ORDER) for lv in d["levels"]]
    return _ordered(d, TOP_ORDER)


# ------------------------------------------------------------------------------------ YAML
def yaml_scalar(v: Any) -> str:
    """A scalar (or key) as YAML writes it inside a flow collection: quoted only when needed."""
    text = yaml.safe_dump([v], default_flow_style=True, width=math.inf, allow_unicode=True).strip()[1:-1]
    if isinstance(v, str) and ("\n" in text or not text.isprintable()):
        return json.dumps(v)  # a JSON string is a one-line YAML double-quoted scalar; YAML would fold it
    return text


def yaml_flow(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{yaml_scalar(k)}: {yaml_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(yaml_flow(x) for x in v) + "]"
    return yaml_scalar(v)


def _yaml_block(v: Any, indent: int, path: tuple) -> list[Line]:
    """A mapping or list in block style; children that fit on one line stay in flow style."""
    pad, out = " " * indent, []
    if isinstance(v, dict):
        for k, x in v.items():
            key = f"{pad}{yaml_scalar(k)}:"
            flow = yaml_flow(x)
            if not isinstance(x, (dict, list)) or not x or len(key) + 1 + len(flow) <= WIDTH:
                out.append(Line(f"{key} {flow}", path + (k,)))
            else:
                out.append(Line(key, path + (k,)))
                out += _yaml_block(x, indent + 2, path + (k,))
    else:
        for i, x in enumerate(v):
            flow = yaml_flow(x)
            if not isinstance(x, (dict, list)) or len(pad) + 2 + len(flow) <= WIDTH:
                out.append(Line(f"{pad}- {flow}", path + (i,)))
            else:
                out.append(Line(f"{pad}-", path + (i,)))
                out += _yaml_block(x, indent + 2, path + (i,))
    return out


def pack(prefix: str, pieces: list[str], close: str) -> list[str] | None:
    """Comma-separated pieces after ``prefix``, wrapped at :data:`WIDTH` and aligned under the
    first piece (None if one piece alone is too long)::

        target: {kind: composite, type: masked_target, in: [target_encoder, tgt_idx],
                 with: {n_tokens: tokens, dim: dim}}
    """
    lines, cur, indent = [], prefix, " " * len(prefix)
    for i, p in enumerate(pieces):
        piece = p + (close if i == len(pieces) - 1 else ",")
        fresh = cur in (prefix, indent)
        cand = cur + piece if fresh else f"{cur} {piece}"
        if len(cand) > WIDTH and not fresh:
            lines.append(cur)
            cur = indent + piece
        else:
            cur = cand
    lines.append(cur if pieces else prefix + close)
    return lines if all(len(t) <= WIDTH for t in lines) else None


def _wrapped(prefix: str, d: dict) -> list[str] | None:
    return pack(prefix + "{", [f"{yaml_scalar(k)}: {yaml_flow(v)}" for k, v in d.items()], "}")


class _LiteralDumper(yaml.SafeDumper):
    """Writes strings holding newlines as `|` blocks (PyYAML quotes them when it cannot)."""


_LiteralDumper.add_representer(str, lambda d, s: d.represent_scalar(
    "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def emit_yaml(data: dict) -> list[Line]:
    """Canonical YAML lines for canonical data (see :func:`canonical_data`)."""
    out: list[Line] = []
    for key, v in data.items():
        head = f"{yaml_scalar(key)}:"
        if key in ENTRY_SECTIONS and isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
            out.append(Line(head, (key,)))
            w = min(max(len(yaml_scalar(n)) for n in v), ALIGN) + 1
            for name, x in v.items():
                wrapped = _wrapped(f"  {yaml_scalar(name) + ':':<{w}} ", x)
                if wrapped:
                    out += [Line(t, (key, name) if i == 0 else None) for i, t in enumerate(wrapped)]
                else:
                    out.append(Line(f"  {yaml_scalar(name)}:", (key, name)))
                    out += _yaml_block(x, 4, (key, name))
            continue
        if isinstance(v, str) and "\n" in v:  # a multi-line description reads best as a `|` block
            # a key after it keeps PyYAML from ending the document (`...`) after a `|+` block
            text = yaml.dump({key: v, "end_": 0}, Dumper=_LiteralDumper, width=math.inf, allow_unicode=True,
                             sort_keys=False)
            lines = text.split("\n")
            lines = lines[:lines.index("end_: 0")]
            out += [Line(t, (key,) if i == 0 else None) for i, t in enumerate(lines)]
            continue
        if key == "levels" and isinstance(v, list) and v:  # one level per line
            out.append(Line(head, (key,)))
            out += _yaml_block(v, 2, (key,))
            continue
        flow = yaml_flow(v)
        if not isinstance(v, (dict, list)) or not v or len(head) + 1 + len(flow) <= WIDTH:
            out.append(Line(f"{head} {flow}", (key,)))
        else:
            out.append(Line(head, (key,)))
            out += _yaml_block(v, 2, (key,))
    return out
