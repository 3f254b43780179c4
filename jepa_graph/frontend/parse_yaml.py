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

from ..core.errors import Diagnostic, Location, SpecError, position, register_source, source_line

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 200_000  # bounds alias expansion ("billion laughs")
MAX_DEPTH = 64  # bounds nesting ([[[[...]]]]): a spec is a few levels deep, recursion is not unbounded
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")}
_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}
_scalars = yaml.constructor.SafeConstructor()  # its constructor functions only: construct_object keeps every node

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
        first, second = (self.keys, self.values) if key else (self.values, self.keys)
        while True:
            if path in first:
                return first[path]
            if path in second:
                return second[path]
            if not path:
                return Location(self.file, 1, 1)
            path = path[:-1]


def _loc(file: str, mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _Builder:
    """Node tree -> plain data and positions. Runs after :func:`_measure` bounded size and depth.

    One call per collection (a mapping's scalar values are handled in its loop); a string is the
    node's own text, and each other distinct scalar (``out: 8``, ``frozen: true``) is constructed
    once per parse. Every node's position is kept, as before: the work per value is constant."""

    def __init__(self, raw: RawSpec):
        self.raw = raw
        self.file = raw.file
        self.made: dict[tuple[str, str], Any] = {}  # (tag, text) -> value: plain scalars are immutable

    def build(self, node: yaml.Node, path: Path) -> Any:
        if type(node) is yaml.ScalarNode:
            m = node.start_mark
            self.raw.values.setdefault(path, Location(self.file, m.line + 1, m.column + 1))
            return self.scalar(node)
        want = _COLLECTION_TAGS.get(type(node))
        if want is not None and node.tag != want:  # `!!python/object:x {...}`, `!!set`, `!custom [...]`
            raise SpecError(f"unsupported YAML tag `{_short_tag(node.tag)}`", _loc(self.file, node.start_mark),
                            "specs are plain data: remove the tag")
        file, values = self.file, self.raw.values
        m = node.start_mark
        values.setdefault(path, Location(file, m.line + 1, m.column + 1))
        if isinstance(node, yaml.MappingNode):
            keys, scalar = self.raw.keys, self.scalar
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                if knode.tag == _MERGE:
                    raise SpecError("YAML merge keys (`<<`) are not supported in specs",
                                    _loc(file, knode.start_mark), "write the keys out")
                key = self.build_scalar_key(knode, path)
                m = knode.start_mark
                kloc = Location(file, m.line + 1, m.column + 1)
                sub = path + (key,)
                if key in out:  # the first one's position is the one kept under its path
                    raise SpecError(Diagnostic(f"duplicate key `{key}`", kloc,
                                               "each key may appear once in a mapping; remove or rename one",
                                               related=[("first written", keys[sub])]))
                keys.setdefault(sub, kloc)
                if type(vnode) is yaml.ScalarNode:
                    m = vnode.start_mark
                    values.setdefault(sub, Location(file, m.line + 1, m.column + 1))
                    out[key] = scalar(vnode)
                else:
                    out[key] = self.build(vnode, sub)
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
        tag = node.tag
        if tag == _STR or tag == _TIMESTAMP:  # `date: 2024-01-01` stays the text as written, not a datetime
            return node.value
        key = (tag, node.value)
        if key in self.made:
            return self.made[key]
        if tag not in _PLAIN_TAGS:  # `!!binary`, `!!timestamp`, `!!python/...`: no object from a tag
            raise SpecError(f"unsupported YAML tag `{_short_tag(tag)}`", _loc(self.raw.file, node.start_mark),
                            "specs are plain data: remove the tag")
        try:
            value = self.made[key] = _scalars.yaml_constructors[tag](_scalars, node)
        except yaml.constructor.ConstructorError:
            raise SpecError(f"unsupported YAML tag `{_short_tag(tag)}`", _loc(self.raw.file, node.start_mark),
                            "specs are plain data: remove the tag") from None
        except (ValueError, IndexError, KeyError) as e:
            if isinstance(e, ValueError) and "digits" in str(e):  # an integer past Python's 4,300-digit limit
                raise SpecError(f"number with {len(node.value):,} digits is too long", _loc(self.raw.file, node.start_mark),
                                "a spec's numbers are sizes and coefficients: write a number of sensible size") from None
            # an explicit tag on text that is not of its type: `!!int` alone, `!!float x`, `!!bool maybe`
            raise SpecError(f"`{node.value}` is not a valid `{_short_tag(tag)}` value", _loc(self.raw.file, node.start_mark),
                            "remove the tag, or write a value of that type") from None
        return value


def _measure(node: yaml.Node, file: str, depth: int, memo: dict[int, int]) -> int:
    """How many values ``node`` expands to, aliases counted at every use; each distinct node is
    measured once, so a billion-laughs document is refused in time linear in its text."""
    if depth > MAX_DEPTH:
        raise SpecError(f"YAML nested more than {MAX_DEPTH} levels deep", _loc(file, node.start_mark),
                        "a spec is a few levels deep; is a bracket repeated or never closed?")
    if id(node) in memo:
        return memo[id(node)]
    children = [v for _, v in node.value] if isinstance(node, yaml.MappingNode) else \
        node.value if isinstance(node, yaml.SequenceNode) else ()
    size = 1
    deep = depth + 1 > MAX_DEPTH
    for c in children:  # a scalar child counts 1 (it needs no call unless its depth is refused)
        size += 1 if type(c) is yaml.ScalarNode and not deep else _measure(c, file, depth + 1, memo)
    if size > MAX_NODES:
        raise SpecError(f"YAML expands to more than {MAX_NODES:,} values (an alias bomb?)", _loc(file, node.start_mark),
                        "aliases (`*name`) repeat their anchor's whole value; write the values out once")
    memo[id(node)] = size
    return size


def _refuse_deep_nesting(text: str, file: str) -> None:
    """Raise the :func:`_measure` error at the first collection nested past ``MAX_DEPTH``.

    Only called once libyaml has refused the text for its own, deeper, nesting limit (its scanner
    looks ahead, so its events never reach our bound); the pure-Python parser's events do, so the
    message and its column match what ``_measure`` says about nesting libyaml accepts.
    """
    depth = -1  # the root collection is depth 0, as in _measure
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):  # pure Python: no limit of its own
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError(f"YAML nested more than {MAX_DEPTH} levels deep", _loc(file, event.start_mark),
                                    "a spec is a few levels deep; is a bracket repeated?")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError:
        return  # failed before reaching our bound: the caller reports libyaml's own error


def _short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:python/object:os.system`` -> ``!!python/object:os.system`` (as written)."""
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def parse_yaml(text: str, file: str = "<string>") -> RawSpec:
    """Parse YAML text into a :class:`RawSpec`. Raises :class:`SpecError` with a location."""
    register_source(file, text)
    raw = RawSpec(data=None, file=file, text=text)
    try:
        docs = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as e:
        if "nesting depth" in (e.problem or ""):  # libyaml >= 0.2.6 stops deep nesting itself, further in
            _refuse_deep_nesting(text, file)
        raise SpecError(_yaml_diagnostic(e, file)) from None
    except yaml.reader.ReaderError as e:  # control characters (NUL, escape codes) in the text
        loc = Location(file, *position(text, e.position))
        char = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        raise SpecError(f"invalid character U+{char:04X} in the spec ({e.reason})", loc,
                        "a spec is plain UTF-8 text; remove the control character") from None
    except RecursionError:  # the pure-Python composer on absurd nesting
        raise SpecError("YAML nested too deeply", Location(file, 1, 1),
                        "a spec is a few levels deep; is a bracket repeated or never closed?") from None
    if not docs or docs[0] is None:
        raise SpecError("the spec file is empty", Location(file, 1, 1),
                        "a spec needs at least `name:` and `blocks:`")
    if len(docs) > 1:
        raise SpecError("a spec file holds one YAML document", _loc(file, docs[1].start_mark),
                        "remove the `---` separator or split the file")
    _measure(docs[0], file, 0, {})  # refuse alias bombs and absurd nesting before building anything
    raw.data = _Builder(raw).build(docs[0], ())
    if not isinstance(raw.data, dict):
        raise SpecError("a spec must be a mapping of sections (name, dims, inputs, blocks, ...)",
                        raw.at(()), "start with `name: my_model`")
    return raw


def _yaml_diagnostic(e: yaml.MarkedYAMLError, file: str) -> Diagnostic:
    """A located diagnostic from a YAML scanner/parser error, in words a spec author uses."""
    mark = e.problem_mark or e.context_mark
    loc = _loc(file, mark) if mark is not None else Location(file, 1, 1)
    line = source_line(file, mark.line + 1) if mark is not None else None  # registered: lines split as YAML does
    here = line[mark.column:mark.column + 1] if line else ""
    related = []
    if here == "\t" or "tab" in (e.problem or ""):
        msg = "invalid YAML: a tab character where YAML expects spaces"
    else:
        msg = f"invalid YAML: {e.problem or e.context}"
        if e.context and e.problem:
            msg += f" ({e.context})"
        if e.context_mark is not None and e.problem_mark is not None and "flow" in (e.context or ""):
            related.append(("the bracket opens", _loc(file, e.context_mark)))
    return Diagnostic(msg, loc, _yaml_hint(e.problem or "", here), related=related)


def _yaml_hint(problem: str, here: str = "") -> str:
    if "tab" in problem or here == "\t":
        return "indent with spaces, not tabs"
    if "expected key" in problem or "expected <block end>" in problem:
        return "the indentation of this line does not match the lines above: keys of one mapping start in the same column"
    if "mapping values" in problem:
        return "a `key: value` inside a value needs quotes or braces, e.g. `{a: 1}`"
    if "expected ',' or ']'" in problem or "expected ',' or '}'" in problem:
        return "a bracket or brace is not closed, or a comma is missing"
    if "found undefined alias" in problem:
        return "define the anchor (`&name`) before using `*name`"
    return "check indentation, colons and brackets on this line"


def parse_value(text: str, file: str = "<value>", col: int = 1) -> Any:
    """One YAML value written on a command line (``train.lr=3e-4``'s ``3e-4``, ``{size: 32}``), read
    with the same bounds as a spec file: no tags, no alias bombs, no absurd nesting. ``file`` and
    ``col`` say where the value starts, so an error points at it. Raises :class:`SpecError`."""
    try:
        return parse_fragment(text)
    except SpecError as e:
        d = e.first
        shift = d.loc.col - 1 if d.loc is not None and d.loc.line == 1 else 0
        raise SpecError(Diagnostic(d.message, Location(file, 1, col + shift), d.hint)) from None


def parse_fragment(text: str) -> Any:
    """A YAML fragment -> plain data, through the same checks as :func:`parse_yaml`."""
    file = "<value>"
    register_source(file, text)
    raw = RawSpec(data=None, file=file, text=text)
    try:
        docs = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as e:
        if "nesting depth" in (e.problem or ""):
            _refuse_deep_nesting(text, file)
        raise SpecError(_yaml_diagnostic(e, file)) from None
    except yaml.reader.ReaderError as e:
        raise SpecError(f"invalid character in the value ({e.reason})", Location(file, *position(text, e.position)),
                        "write plain text") from None
    except RecursionError:
        raise SpecError("YAML nested too deeply", Location(file, 1, 1), "a value is a few levels deep") from None
    if not docs or docs[0] is None:
        return None
    if len(docs) > 1:
        raise SpecError("a value holds one YAML document", _loc(file, docs[1].start_mark), "remove the `---`")
    _measure(docs[0], file, 0, {})  # the alias-bomb and nesting bounds of spec files
    return _Builder(raw).build(docs[0], ())
