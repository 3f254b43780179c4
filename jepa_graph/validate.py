"""Raw data -> :class:`~jepa_graph.spec.Spec`, with pydantic errors turned into located diagnostics.

Pydantic reports ``loc`` tuples that mix real keys with union tags; :func:`_data_path` walks the
raw data to keep only the real part, so the error lands on the exact key or value in the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import spec as S
from .errors import Diagnostic, SpecError, did_you_mean
from .parse_yaml import RawSpec, parse_yaml

_VAR_MODELS = {"inputs": S.InputVar, "latents": S.LatentVar, "actions": S.ActionVar}
_KIND_MODELS = {
    "encoder": S.EncoderBlock, "predictor": S.PredictorBlock, "energy": S.EnergyBlock,
    "cost": S.CostBlock, "critic": S.CriticBlock, "actor": S.ActorBlock,
    "regularizer": S.RegularizerBlock, "op": S.OpBlock, "composite": S.CompositeBlock,
}


def read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"no such spec file: {p}", hint="check the path") from None
    except IsADirectoryError:
        raise SpecError(f"{p} is a directory, not a spec file", hint="name a .yaml or .jepa file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{p}: spec files must be UTF-8 text (bad byte at offset {e.start})",
                        hint="is this a binary file?") from None


def parse_file(path: str | Path, text: str | None = None) -> RawSpec:
    """Parse a ``.yaml``/``.yml`` or ``.jepa`` file into a :class:`RawSpec`."""
    path = str(path)
    if text is None:
        text = read_text(path)
    if path.endswith(".jepa"):
        from .parse_dsl import parse_dsl  # the DSL front end
        return parse_dsl(text, path)
    if path.endswith((".yaml", ".yml", "<string>")):
        return parse_yaml(text, path)
    raise SpecError(f"unknown spec file type: {path}", hint="spec files end in .yaml, .yml or .jepa")


def build_spec(raw: RawSpec, model: type[BaseModel] = S.Spec) -> S.Spec:
    """Validate raw data against the spec model; errors carry file:line:col."""
    try:
        spec = model.model_validate(raw.data)
    except ValidationError as e:
        raise SpecError([_diagnostic(err, raw) for err in _dedupe(e.errors())]) from None
    spec._source = raw
    spec._path = raw.file
    return spec


def load(path: str | Path) -> S.Spec:
    """Read and validate a spec file (``.yaml`` or ``.jepa``). Raises :class:`SpecError`.

    Example::

        spec = jg.load("specs/two_rooms.yaml")
    """
    return build_spec(parse_file(path))


def loads(text: str, file: str = "<string>.yaml") -> S.Spec:
    """Like :func:`load`, from a string. ``file`` picks the syntax by its extension."""
    return build_spec(parse_file(file, text))


# ----------------------------------------------------------------------------- error mapping
def _dedupe(errors: list[dict]) -> list[dict]:
    """Keep one error per location; discriminated unions can report the same place twice."""
    seen, out = set(), []
    for err in errors:
        key = tuple(str(x) for x in err["loc"])
        if key not in seen:
            seen.add(key)
            out.append(err)
    return out


def _data_path(loc: tuple, data: Any) -> tuple:
    """The part of a pydantic ``loc`` that exists in the raw data (drops union tags)."""
    path, cur = [], data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            path.append(part)
            cur = cur[part]
    return tuple(path)


def _allowed_keys(path: tuple, data: Any) -> list[str]:
    """Valid keys of the mapping at ``path``, for typo hints."""
    def keys(model: type[BaseModel]) -> list[str]:
        return [f.alias or n for n, f in model.model_fields.items()]
    if len(path) == 0:
        return keys(S.Spec)
    if path[0] == "train":
        from .train_config import allowed_keys
        return allowed_keys(tuple(path[1:]))
    if len(path) == 2 and path[0] in _VAR_MODELS:
        return keys(_VAR_MODELS[path[0]])
    if len(path) == 2 and path[0] == "blocks":
        kind = (data.get("blocks", {}).get(path[1]) or {}).get("kind") if isinstance(data.get("blocks"), dict) else None
        return keys(_KIND_MODELS.get(kind, S.BlockBase))
    if len(path) == 1 and path[0] == "world_model":
        return keys(S.WorldModel)
    if len(path) == 2 and path[0] == "levels":
        return keys(S.Level)
    return []


def _diagnostic(err: dict, raw: RawSpec) -> Diagnostic:
    loc = tuple(err["loc"])
    kind = err["type"]
    path = _data_path(loc, raw.data)
    where = ".".join(str(p) for p in path) or "the spec"
    msg, hint = err["msg"], None
    if kind == "extra_forbidden":
        key = loc[-1]
        parent = path[:-1] if path and path[-1] == key else path
        msg = f"unknown key `{key}` in {'.'.join(map(str, parent)) or 'the spec'}"
        hint = did_you_mean(str(key), _allowed_keys(parent, raw.data), "keys")
        return Diagnostic(msg, raw.at(parent + (key,), key=True), hint)
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "?")
        msg = f"unknown block kind `{tag}` for `{where}`"
        hint = did_you_mean(str(tag), S.KINDS, "kinds")
        return Diagnostic(msg, raw.at(path + ("kind",)), hint)
    if kind == "union_tag_not_found":
        msg = f"block `{path[-1] if path else '?'}` has no `kind`"
        hint = "add `kind:` (one of " + ", ".join(S.KINDS) + ")"
    elif kind == "missing":
        field = loc[-1]
        msg = f"`{where}` is missing `{field}`"
        hint = _missing_hint(str(field))
    elif kind == "string_pattern_mismatch":
        msg = f"`{err.get('input')}` is not a valid name (at `{where}`)"
        hint = "names start with a letter or `_` and hold letters, digits and `_`"
    elif kind == "dict_type":
        msg = f"`{where}` must be a mapping (got {type(err.get('input')).__name__})"
        hint = "write `key: value` pairs, or `{key: value}`"
    elif kind == "list_type":
        msg = f"`{where}` must be a list (got {type(err.get('input')).__name__})"
        hint = "write `[a, b]`"
    elif kind.startswith("literal_error"):
        msg = f"`{where}`: {err['msg'].lower()}, got `{err.get('input')}`"
    elif kind == "value_error":
        msg = f"`{where}`: {err['msg'].removeprefix('Value error, ')}"
    elif kind.startswith(("int_", "float_", "bool_", "greater_than", "less_than")):
        msg = f"`{where}`: {err['msg'].lower()}, got `{err.get('input')}`"
    else:
        msg = f"`{where}`: {err['msg']}"
    return Diagnostic(msg, raw.at(path), hint)


def _missing_hint(field: str) -> str:
    return {
        "blocks": "a spec needs `blocks:` (the graph's nodes)",
        "name": "add `name: my_model` at the top",
        "shape": "give a per-sample shape, e.g. `shape: [obs]`",
        "kind": "add `kind:` (encoder, predictor, energy, ...)",
    }.get(field, f"add `{field}:`")


def from_dict(data: dict, file: str = "<python>.yaml") -> S.Spec:
    """Build a spec from Python data (the same keys as the YAML syntax).

    The data is written out as YAML first, so errors still point at a line of that text::

        spec = jg.from_dict({"name": "tiny", "inputs": {"x": {"shape": [4]}}, "blocks": {...}})
    """
    import yaml
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    return loads(text, file)
