"""JSON Schema of the YAML syntax, for editors (``jepa-graph schema > jepa.schema.json``).

A spec can point at it with ``$schema: ./jepa.schema.json`` (or a yaml-language-server comment:
``# yaml-language-server: $schema=./jepa.schema.json``) to get completion and inline errors.
The block ``type`` of each kind is listed as an enum of the registered types.
"""
from __future__ import annotations

from typing import Any

from .registry import list_blocks
from .spec import Spec

SCHEMA_ID = "https://jepa-graph.dev/schema/spec.json"


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    schema["$id"] = SCHEMA_ID
    schema["title"] = "jepa-graph spec"
    types: dict[str, list[str]] = {}
    for cls in list_blocks():
        types.setdefault(cls.kind, []).append(cls.name)
    for name, d in schema.get("$defs", {}).items():
        kind = d.get("properties", {}).get("kind", {}).get("const")
        if kind in types and "type" in d["properties"]:
            d["properties"]["type"] = {"anyOf": [{"enum": sorted(types[kind])}, {"type": "null"}],
                                       "description": f"registered {kind} type", "default": None}
    return schema
