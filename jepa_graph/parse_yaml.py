"""YAML front end: safe loading with source positions, duplicate-key and alias-bomb checks.

The YAML is composed into a node tree (libyaml when available) and walked by hand, so that no
object is ever constructed from a tag and every value keeps where it came from. The result is a
:class:`RawSpec`: plain Python data plus a map from each path (``("blocks", "enc", "in", 0)``)
to its :class:`~jepa_graph.errors.Location`. The ``.jepa`` front end produces the same thing,
and :mod:`jepa_graph.validate` turns either into a :class:`~jepa_graph.spec.Spec`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Location, SpecError, Diagnostic, register_source

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 200_000  # bounds alias expansion ("billion laughs")
_scalars = yaml.constructor.SafeConstructor()

Path = tuple


@dataclass
class RawSpec:
    """Parsed but unvalidated spec data with source positions.

    ``values[path]`` is where the value at ``path`` starts; ``keys[path]`` is where its mapping
    key is written. :meth:`at` falls back to the nearest enclosing path.
    """

    data: Any
    file: str
    values: dict[Path, Location] = field(default_factory=dict)
    keys: dict[Path, Location] = field(default_factory=dict)
    text: str = ""

    def at(self, path: Path, key: bool = False) -> Location:
        path = tuple(path)
        while True:
            table = (self.keys, self.values) if key else (self.values, self.keys)
            for t in table:
                if path in t:
                    return t[path]
            if not path:
                return Location(self.file, 1, 1)
            path = path[:-1]


def _loc(file: str, mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, raw: RawSpec):
        self.raw = raw
        self.count = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise SpecError("YAML expands to too many nodes (alias bomb?)", _loc(self.raw.file, node.start_mark),
                            f"a spec may hold at most {MAX_NODES} values after alias expansion")
        self.raw.values.setdefault(path, _loc(self.raw.file, node.start_mark))
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            first: dict[Any, Location] = {}
            for knode, vnode in node.value:
                if knode.tag == "tag:yaml.org,2002:merge":
                    raise SpecError("YAML merge keys (`<<`) are not supported in specs",
                                    _loc(self.raw.file, knode.start_mark), "write the keys out")
                key = self.build_scalar_key(knode, path)
                kloc = _loc(self.raw.file, knode.start_mark)
                if key in first:
                    raise SpecError(Diagnostic(f"duplicate key `{key}`", kloc,
                                               "each key may appear once in a mapping; remove or rename one",
                                               related=[("first written", first[key])]))
                first[key] = kloc
                self.raw.keys.setdefault(path + (key,), kloc)
                out[key] = self.build(vnode, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, path + (i,)) for i, v in enumerate(node.value)]
        return self.scalar(node)

    def build_scalar_key(self, node: yaml.Node, path: Path) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise SpecError("mapping keys must be plain names", _loc(self.raw.file, node.start_mark),
                            "use a name such as `enc` as the key")
        key = self.scalar(node)
        if isinstance(key, bool) or key is None:
            # `on:`/`yes:`/`null:` silently becoming True/None is a classic YAML trap
            key = node.value
        return key

    def scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            return _scalars.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as e:
            raise SpecError(f"unsupported YAML tag `{node.tag}`", _loc(self.raw.file, node.start_mark),
                            "specs are plain data: remove the `!tag`") from None


def parse_yaml(text: str, file: str = "<string>") -> RawSpec:
    """Parse YAML text into a :class:`RawSpec`. Raises :class:`SpecError` with a location."""
    register_source(file, text)
    raw = RawSpec(data=None, file=file, text=text)
    try:
        docs = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = _loc(file, mark) if mark is not None else Location(file, 1, 1)
        msg = f"invalid YAML: {e.problem or e.context}"
        if e.context and e.problem:
            msg += f" ({e.context})"
        raise SpecError(msg, loc, _yaml_hint(e.problem or "")) from None
    except yaml.YAMLError as e:  # reader errors: bad bytes, control characters
        mark = getattr(e, "position", None)
        raise SpecError(f"invalid YAML: {e}".splitlines()[0], Location(file, 1, 1),
                        "a spec must be UTF-8 text") from None
    if not docs or docs[0] is None:
        raise SpecError("the spec file is empty", Location(file, 1, 1),
                        "a spec needs at least `name:` and `blocks:`")
    if len(docs) > 1:
        raise SpecError("a spec file holds one YAML document", _loc(file, docs[1].start_mark),
                        "remove the `---` separator or split the file")
    raw.data = _Builder(raw).build(docs[0], ())
    if not isinstance(raw.data, dict):
        raise SpecError("a spec must be a mapping of sections (name, dims, inputs, blocks, ...)",
                        raw.at(()), "start with `name: my_model`")
    return raw


def _yaml_hint(problem: str) -> str:
    if "tab" in problem:
        return "indent with spaces, not tabs"
    if "mapping values" in problem:
        return "a `key: value` inside a value needs quotes or braces, e.g. `{a: 1}`"
    if "expected ',' or ']'" in problem or "expected ',' or '}'" in problem:
        return "a bracket or brace is not closed, or a comma is missing"
    if "found undefined alias" in problem:
        return "define the anchor (`&name`) before using `*name`"
    return "check indentation, colons and brackets on this line"
