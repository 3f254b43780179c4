"""Pydantic validation errors -> located diagnostics with hints.

Pydantic reports ``loc`` tuples that mix real keys with union tags; :func:`_data_path` walks the
raw data to keep only the real part, so the error lands on the exact key or value in the file.
A plain union (a latent's ``domain``) reports one error per branch; :func:`diagnostics` keeps the
branch whose form the value has, or says in one line which forms are allowed::

    spec.yaml:9:27: error: `latents.z.domain`: `boxx` is not valid here
    hint: write `real` or `{box: [lo, hi]}` or `{discrete: K}`
"""
from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from . import spec as S
from ..core.errors import Diagnostic, did_you_mean, in_jepa
from ..core.tensors import MAX_SIZE
from .parse_yaml import RawSpec
from .train_config import allowed_keys

_VAR_MODELS = {"inputs": S.InputVar, "latents": S.LatentVar, "actions": S.ActionVar}
_KIND_MODELS = {
    "encoder": S.EncoderBlock, "predictor": S.PredictorBlock, "energy": S.EnergyBlock,
    "cost": S.CostBlock, "critic": S.CriticBlock, "actor": S.ActorBlock,
    "regularizer": S.RegularizerBlock, "op": S.OpBlock, "composite": S.CompositeBlock,
}


def diagnostics(errors: list[dict], raw: RawSpec) -> list[Diagnostic]:
    """Pydantic errors -> located diagnostics, one per fault (unions report every branch)."""
    out: list[Diagnostic] = []
    done: set[tuple] = set()
    for err in _dedupe(errors):
        point = _union_point(err, raw.data)
        if point is None:
            out.append(_diagnostic(err, raw))
            continue
        prefix, _ = point
        if prefix in done:
            continue
        done.add(prefix)
        branches: dict[str, list[dict]] = {}
        for other in errors:
            p = _union_point(other, raw.data)
            if p is not None and p[0] == prefix:
                branches.setdefault(p[1], []).append(other)
        fitting = [errs for tag, errs in branches.items() if _fits(errs, tag)]
        if fitting or len(branches) == 1:  # the value has one branch's form: report that branch's errors
            out += [_diagnostic(e, raw) for e in _dedupe((fitting or list(branches.values()))[0])]
        else:
            out.append(_no_branch(prefix, branches, raw))
    return out


_MISMATCH = ("literal_error", "model_type", "model_attributes_type", "dict_type", "list_type", "tuple_type",
             "int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "string_type",
             "bool_type", "bool_parsing", "none_required", "is_instance_of")
_FORMS = {"BoxDomain": "`{box: [lo, hi]}`", "DiscreteDomain": "`{discrete: K}`", "Edge": "`{ref: name, stop_grad: true}`"}
_JEPA_FORMS = {"BoxDomain": "`box(lo, hi)`", "DiscreteDomain": "`discrete(K)`", "Edge": "`sg(name)`"}  # in a .jepa file


def _union_point(err: dict, data: Any) -> tuple[tuple, str] | None:
    """(data path, branch tag) when pydantic reports ``err`` inside one branch of a plain union."""
    cur = data
    loc = tuple(err["loc"])
    for i, part in enumerate(loc):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
        elif i == len(loc) - 1 and err["type"] == "missing":
            return None  # a missing field, not a branch
        elif isinstance(part, str) and part not in S.KINDS and part != "[key]":  # discriminated: one branch
            return loc[:i], part
        else:
            return None
    return None


def _fits(errs: list[dict], tag: str) -> bool:
    """A branch fits when the value has its form and failed only deeper checks (a bound, a validator)."""
    for e in errs:
        at_tag = tuple(e["loc"])[-1] == tag
        if e["type"] in ("missing", "extra_forbidden") or (at_tag and e["type"] in _MISMATCH):
            return False
    return True


def _no_branch(prefix: tuple, branches: dict[str, list[dict]], raw: RawSpec) -> Diagnostic:
    forms = []
    for tag, errs in branches.items():
        at_tag = next((e for e in errs if tuple(e["loc"])[-1] == tag), errs[0])
        t = at_tag["type"]
        cls = tag.rstrip("]").split(",")[-1].strip()
        if t == "literal_error":
            forms += [f"`{x.strip(chr(39))}`" for x in at_tag.get("ctx", {}).get("expected", "").replace(" or ", ", ").split(", ")]
        elif t.startswith("int_"):
            forms.append("an integer")
        elif t.startswith("float_"):
            forms.append("a number")
        elif t.startswith("string_"):
            forms.append("a name" if "str" in tag else "a string")
        elif t.startswith(("list_", "tuple_")):
            forms.append("a list")
        else:
            forms.append((_JEPA_FORMS if in_jepa(raw.at(prefix)) else _FORMS).get(cls, f"a `{cls}` mapping"))
    where = ".".join(map(str, prefix)) or "the spec"
    value = next(iter(branches.values()))[0].get("input")
    hint = "write " + " or ".join(dict.fromkeys(forms)) + (" (`true`/`false` are not numbers)" if isinstance(value, bool) else "")
    return Diagnostic(f"`{where}`: `{_shown(value)}` is not valid here", raw.at(prefix), hint)


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
    model = _model_at(path, data)
    return keys(model) if model is not None else []


def _model_at(path: tuple, data: Any) -> type[BaseModel] | None:
    """The pydantic model validating the mapping at ``path``, found by walking field annotations."""
    ann, cur = S.Spec, data
    for part in path:
        options = _flatten(ann)
        model = _pick(options, cur)
        if model is not None:
            field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
            if field is None:
                return None
            ann = field.annotation
        else:
            box = next((o for o in options if get_origin(o) in (dict, list, tuple)), None)
            if box is None:
                return None
            args = get_args(box)
            ann = args[-1] if get_origin(box) is dict else args[0] if get_origin(box) is list else \
                (args[part] if isinstance(part, int) and part < len(args) else None)
        cur = cur.get(part) if isinstance(cur, dict) else cur[part] if isinstance(cur, list) and isinstance(part, int) \
            and part < len(cur) else None
    return _pick(_flatten(ann), cur)


def _flatten(ann: Any) -> list:
    origin = get_origin(ann)
    if origin is Annotated:
        return _flatten(get_args(ann)[0])
    if origin in (Union, types.UnionType):
        return [x for a in get_args(ann) for x in _flatten(a)]
    return [ann]


def _pick(options: list, data: Any) -> type[BaseModel] | None:
    """The model among ``options`` that ``data`` is meant for (by its ``kind``, else the first)."""
    models = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
    kind = data.get("kind") if isinstance(data, dict) else None
    for m in models:
        f = m.model_fields.get("kind")
        if kind is not None and f is not None and kind in get_args(f.annotation):
            return m
    if isinstance(data, dict) and models:  # plain unions (domains): the model whose keys the data uses
        return next((m for m in models if set(data) <= {f.alias or n for n, f in m.model_fields.items()}), models[0])
    return models[0] if models else None


_RENAME_HINT = "rename maps names the data source yields to the spec's input names, e.g. `rename: {obs: x, obs_next: x_next}`"
_RENAME_HINT_JEPA = "rename maps names the data source yields to the spec's input names, e.g. `rename = {obs = x}`"


def _diagnostic(err: dict, raw: RawSpec) -> Diagnostic:
    loc = tuple(err["loc"])
    kind = err["type"]
    path = _data_path(loc, raw.data)
    where = ".".join(str(p) for p in path) or "the spec"
    msg, hint = err["msg"], None
    if loc and loc[-1] == "[key]" and not kind.startswith("literal_error"):  # `1: {...}` under blocks
        parent = ".".join(map(str, path[:-1])) or "the spec"
        return Diagnostic(f"`{parent}`: key `{err.get('input')}` must be a name", raw.at(path, key=True),
                          "names start with a letter or `_` and hold letters, digits and `_`")
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
        msg = f"{'the spec' if not path else f'`{where}`'} is missing `{field}`"
        hint = _missing_hint(str(field), path, in_jepa(raw.at(path)))
    elif kind == "string_pattern_mismatch" and path[-1:] == ("type",) and path[:1] == ("blocks",):
        # `type: os.system`: a spec names registered blocks, never Python code
        msg = f"`{err.get('input')}` is not a block type (at `{where}`)"
        hint = "block types are registered names such as `mlp` (list them with `jepa-graph info --blocks`); " \
               "a spec cannot name Python code"
    elif kind == "string_pattern_mismatch":
        msg = f"`{err.get('input')}` is not a valid name (at `{where}`)"
        hint = "names start with a letter or `_` and hold letters, digits and `_`" + (
            "; a composite's output is written `block.output`" if "in" in path else "")
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        msg = f"`{where}` must be a mapping (got {_typename(err.get('input'))} `{err.get('input')}`)"
        hint = "write `key: value` pairs, or `{key: value}`"
        if path[:1] == ("blocks",) and len(path) == 2:
            hint = f"a block is a mapping, e.g. `{path[1]}: {{kind: energy, type: l2, in: [pred, target]}}`"
        if path[:3] == ("train", "data", "rename"):
            hint = _RENAME_HINT_JEPA if in_jepa(raw.at(path)) else _RENAME_HINT
    elif kind == "string_type":
        msg = f"`{where}` must be text (got {_typename(err.get('input'))} `{err.get('input')}`)"
        hint = "write a name such as `my_model`" if path[-1:] == ("name",) else "put the text in quotes"
        if path[:3] == ("train", "data", "rename"):
            hint = _RENAME_HINT_JEPA if in_jepa(raw.at(path)) else _RENAME_HINT
    elif kind in ("list_type", "tuple_type"):
        msg = f"`{where}` must be a list (got {_typename(err.get('input'))} `{err.get('input')}`)"
        hint = "write `[a, b]`"
    elif kind.startswith("literal_error"):
        hint = did_you_mean(str(err.get("input")), _literal_choices(err), "values")
        if loc[-1] == "[key]":  # a mapping whose keys come from a fixed set (a latent's regularizers)
            parent = ".".join(map(str, path[:-1]))
            msg = f"`{parent}`: unknown key `{err.get('input')}`; {err['msg'].lower()}"
            return Diagnostic(msg, raw.at(path, key=True), hint)
        msg = f"`{where}`: {err['msg'].lower()}, got `{err.get('input')}`"
    elif kind == "value_error":
        text = err['msg'].removeprefix('Value error, ')
        path = _value_path(path, text, raw.data)
        msg = f"`{'.'.join(map(str, path))}`: {text}"
        hint = _value_hint(msg)
    elif kind == "less_than_equal" and err.get("ctx", {}).get("le") == MAX_SIZE:  # `obs: 99999999999999999999`
        msg = f"`{where}` is {err.get('input')}; sizes go up to {MAX_SIZE:,}"
        hint = "no tensor that large can be built; use a smaller size"
    elif kind == "int_type" and isinstance(err.get("input"), bool):  # YAML `true` is not the number 1
        msg = f"`{where}` is `{_shown(err['input'])}`, not a number"
        hint = "dims and sizes are positive integers, e.g. `obs: 4`" if path[:1] == ("dims",) else \
            "write a whole number; `true`/`false` are yes/no values"
    elif kind.startswith(("int_", "float_", "bool_", "greater_than", "less_than", "too_short", "too_long")):
        msg = f"`{where}`: {err['msg'].lower()}, got `{err.get('input')}`"
        hint = "dims and sizes are positive integers, e.g. `obs: 4`" if path[:1] == ("dims",) else \
            f"a weight is a number, e.g. `{path[-1]}: 1.0`" if path[:1] in (("objective",), ("costs",)) else \
            "see `jepa-graph schema` for the allowed values"
    else:
        msg = f"`{where}`: {err['msg']}"
        hint = "see `jepa-graph schema` for the allowed values"
    return Diagnostic(msg, raw.at(path), hint)


def _value_path(path: tuple, msg: str, data: Any) -> tuple:
    """A model validator reports on the whole mapping; point at the key its message is about."""
    cur = data
    for p in path:
        cur = cur[p] if isinstance(cur, (dict, list)) else None
    if not isinstance(cur, dict):
        return path
    words = [w.strip("`:,") for w in msg.split(": ", 1)[-1].split()]
    return next((path + (w,) for w in words if w in cur), path)


def _shown(v: Any) -> str:
    """A value as the spec file spells it (``true``, not Python's ``True``)."""
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def _typename(v: Any) -> str:
    return {str: "text", int: "a number", float: "a number", bool: "true/false", list: "a list",
            dict: "a mapping", type(None): "nothing"}.get(type(v), type(v).__name__)


def _literal_choices(err: dict) -> list[str]:
    expected = err.get("ctx", {}).get("expected", "")
    return [x.strip().strip("'") for x in expected.replace(" or ", ", ").split(", ") if x.strip()]


def _value_hint(msg: str) -> str:
    if "needs a `type`" in msg:
        return "add `type:` (list the types with `jepa-graph info --blocks`)"
    if "lo < hi" in msg:
        return "write the lower bound first, e.g. `[-1, 1]`"
    if "remove `type`" in msg:
        return "delete the `type:` key"
    if "exclude each other" in msg:
        return "delete `share:` (the same module applied again) or `ema_of:` (a target that trails it by momentum)"
    return "see `jepa-graph schema` for the allowed values"


def _missing_hint(field: str, path: tuple = (), jepa: bool = False) -> str:
    if field == "name" and path[:1] == ("levels",):  # a level is named too: `encode_low`, `step_low`
        return ("name the level, e.g. `level low encoder=...`" if jepa else "name the level, e.g. `name: low`") + \
            " (its programs are then `encode_low` and `step_low`)"
    if jepa and path[:1] in (("levels",), ("world_model",)):  # `level NAME k=v, ...` / `world_model k=v, ...`
        return f"add `{field}=...` to the `{'level' if path[0] == 'levels' else 'world_model'}` line"
    return {
        "blocks": "a spec needs `blocks:` (the graph's nodes)",
        "name": "add `name: my_model` at the top",
        "shape": "give a per-sample shape, e.g. `shape: [obs]`",
        "kind": "add `kind:` (encoder, predictor, energy, ...)",
    }.get(field, f"add `{field}:`")
