"""The data-source catalog for people: a source's parameters as rows (type with bounds, default,
doc), its keys grouped by shape, and the README's table (``tests/data/test_catalog.py`` checks the
README holds exactly :func:`readme_table`). No torch.

Example::

    param_rows(CATALOG["fork"].Params)[0]     # ("angle", "float > 0, < 1.5708", "0.523599", "half-angle ...")
"""
from __future__ import annotations

import json
from typing import Any

from .catalog import CATALOG, SourceInfo
from .params import SourceParams


def param_rows(Params: type[SourceParams]) -> list[tuple[str, str, str, str]]:
    """(key, type, default, one-line doc) per parameter: ``("horizon", "int >= 0", "0", "> 0: ...")``."""
    props = Params.model_json_schema(mode="validation").get("properties", {})
    rows = []
    for key, f in Params.model_fields.items():
        js = props.get(key, {})
        default = "required" if f.is_required() else _value(f.default)
        rows.append((key, _type_text(js), default, f.description or ""))
    return rows


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(v) if not isinstance(v, str) else v


_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))


def _type_text(js: dict) -> str:
    """A JSON Schema fragment as a short type with its bounds: ``int >= 1``, ``random|fixed``, ``[float, float]``."""
    if "anyOf" in js:
        return " | ".join(_type_text(a) for a in js["anyOf"])
    pattern = js.get("pattern", "")
    if pattern.startswith("^(") and pattern.endswith(")$"):
        return pattern[2:-2]
    if js.get("type") == "array" and js.get("prefixItems"):
        return "[" + ", ".join(_type_text(a) for a in js["prefixItems"]) + "]"
    t = {"integer": "int", "number": "float", "boolean": "bool", "string": "str", "null": "null"}.get(
        js.get("type"), js.get("type") or "any")
    bounds = [f"{op} {_value(js[k])}" for k, op in _BOUNDS if k in js]
    return " ".join([t, ", ".join(bounds)]) if bounds else t


def yield_groups(info: SourceInfo) -> list[tuple[list[str], str]]:
    """Its keys grouped by shape text, in order: ``[(["x", "x_next", "goal"], "[B, obs]"), ...]``
    (neighbours with the same shape share one entry)."""
    groups: list[tuple[list[str], str]] = []
    for key, y in info.keys.items():
        if groups and groups[-1][1] == y.text():
            groups[-1][0].append(key)
        else:
            groups.append(([key], y.text()))
    return groups


def readme_table() -> str:
    """The README's table of built-in sources (``tests/data/test_catalog.py`` keeps it current)."""
    defaults = {name: dict((k, d) for k, _, d, _ in param_rows(s.Params)) for name, s in CATALOG.items()}
    lines = ["| source | yields (per batch of B) | main `with:` keys (default) |", "|---|---|---|"]
    for name, s in CATALOG.items():
        yields = "; ".join(", ".join(f"`{k}`" for k in keys) + " " + shape for keys, shape in yield_groups(s))
        if s.symbols:
            yields += f"; where {s.symbols}"
        main = ", ".join(f"`{k}` {defaults[name][k]}" for k in s.main)
        lines.append(f"| `{name}`: {s.doc} | {yields} | {main} |")
    return "\n".join(lines)
