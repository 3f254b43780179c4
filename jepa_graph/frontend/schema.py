"""JSON Schema of the YAML syntax, for editors (``jepa-graph schema > jepa.schema.json``).

A spec can point at it with ``$schema: ./jepa.schema.json`` (or a yaml-language-server comment:
``# yaml-language-server: $schema=./jepa.schema.json``) to get completion and inline errors.
The block ``type`` of each kind is listed as an enum of the registered types, and ``with:`` is
checked against that type's parameters (``if type == T then with: T.Params``; an EMA target's
``with:`` takes ``momentum`` and ``schedule``). Sizes that may name a dim (``out: state``) accept
an integer >= 1 or a dim name. A composite's ``with:`` stays open: its parameters live in its file.
"""
from __future__ import annotations

from typing import Any

from ..core.registry import list_blocks
from ..core.tensors import MAX_SIZE
from .spec import NAME_RE, EmaParams, Spec
from .train_config import SHORTHANDS

SCHEMA_ID = "https://jepa-graph.dev/schema/spec.json"
# a size written as an integer or as the name of one of the spec's dims (registry.DimInt)
DIM_INT = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_SIZE}, {"type": "string", "pattern": NAME_RE}]}


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    schema["$id"] = SCHEMA_ID
    schema["title"] = "jepa-graph spec"
    types: dict[str, list[type]] = {}
    for cls in list_blocks():
        types.setdefault(cls.kind, []).append(cls)
    defs = schema.get("$defs", {})
    if "Edge" in defs:  # `in: [x]` is shorthand for `in: [{ref: x}]` (Edge's before-validator)
        edge = defs["Edge"]
        defs["Edge"] = {"anyOf": [edge["properties"]["ref"], {k: v for k, v in edge.items() if k != "description"}],
                        "description": edge.get("description", "")}
    _train_shorthands(defs)
    ema = _params(EmaParams)
    for name, d in schema.get("$defs", {}).items():
        kind = d.get("properties", {}).get("kind", {}).get("const")
        if kind in types and "type" in d["properties"]:
            d["properties"]["type"] = {"anyOf": [{"enum": sorted(c.name for c in types[kind])}, {"type": "null"}],
                                       "description": f"registered {kind} type", "default": None}
            rules = [{"if": {"properties": {"type": {"const": c.name}}, "required": ["type"]},
                      "then": {"properties": {"with": _params(c.Params, c.doc())}}}
                     for c in sorted(types[kind], key=lambda c: c.name)]
            if "ema_of" in d["properties"]:
                rules.append({"if": {"required": ["ema_of"]}, "then": {"properties": {"with": ema}}})
            d["allOf"] = rules
    return schema


def _train_shorthands(defs: dict[str, Any]) -> None:
    """``train:`` accepts shorthands that its before-validator expands (train_config.normalize):
    ``optimizer: sgd``, ``data: shapes``, and top-level ``lr``/``weight_decay``/``warmup``/``final_lr``."""
    train = defs.get("TrainConfig")
    if train is None:
        return
    props = train["properties"]
    opt, sched = defs["OptimizerConfig"]["properties"], defs["ScheduleConfig"]["properties"]
    props["optimizer"] = {"anyOf": [opt["name"], {"$ref": "#/$defs/OptimizerConfig"}]}
    props["data"] = {"anyOf": [{"type": "string", "description": "a data source name (shorthand for {source: ...})"},
                               {"$ref": "#/$defs/DataConfig"}, {"type": "null"}], "default": None}
    for key in SHORTHANDS:
        props[key] = opt.get(key) or sched[key]


def _params(model, doc: str | None = None) -> dict[str, Any]:
    """JSON Schema of one ``with:`` (a pydantic Params model), sizes widened to ``DIM_INT``."""
    s = model.model_json_schema(mode="validation")
    if "$defs" in s:  # no Params nests models today; refuse quietly wrong output if one does
        raise TypeError(f"{model.__name__}: nested parameter models are not supported by the schema export")
    s.pop("title", None)
    s["description"] = doc or s.get("description", "")
    return _dims(s)


def _dims(node: Any) -> Any:
    """Replace DimInt leaves ({"type": "integer", "ge": 1}: pydantic keeps ``ge`` unconverted
    behind a BeforeValidator) by ``DIM_INT``; recurse through the rest."""
    if isinstance(node, dict):
        if node.get("type") == "integer" and "ge" in node:
            extra = {k: v for k, v in node.items() if k not in ("type", "ge")}
            return {"anyOf": [{"type": "integer", "minimum": node["ge"], "maximum": MAX_SIZE}, DIM_INT["anyOf"][1]],
                    **extra}
        return {k: _dims(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_dims(v) for v in node]
    return node
