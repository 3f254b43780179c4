"""The ``.jepa`` front end: lark grammar (``jepa.lark``) -> the same :class:`RawSpec` as the YAML.

The transformer builds plain data with the YAML syntax's keys (``inputs``, ``blocks``,
``objective``, ...) and records a :class:`~jepa_graph.errors.Location` for every path, so
schema, reference and shape errors found later point into the ``.jepa`` file. Sugar that has
no YAML counterpart is expanded here: ``ema(enc)(x)`` and ``enc(goal)`` take their kind from
the block they copy, ``sg(x)`` is ``{ref: x, stop_grad: true}``, and an inline shared block
``cost.goal_distance(pred, enc(goal))`` becomes a block named ``enc_goal`` placed just before
its user (so the conversion to YAML and back is lossless).

Example::

    raw = parse_dsl("jepa tiny\\ninput x : [4]\\nenc = encoder.mlp(x, out=2)\\n", "tiny.jepa")
    raw.data["blocks"]["enc"]  # {'kind': 'encoder', 'type': 'mlp', 'in': ['x'], 'with': {'out': 2}}
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedInput, VisitError

from .dsl_lines import Brackets, tok_loc as _tok_loc
from ..core.errors import Diagnostic, Location, SpecError, register_source
from .parse_yaml import RawSpec

VAR_SECTIONS = {"input": "inputs", "latent": "latents", "action": "actions"}
PYTHON_LITERALS = {"True": "true", "False": "false", "None": "null"}
SPECIAL_FLOATS = {"INF": math.inf, "NAN": math.nan}


@lru_cache(maxsize=1)
def _grammar() -> str:
    return (Path(__file__).with_name("grammars") / "jepa.lark").read_text()


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The LALR parser (built once; lark caches the tables)."""
    return Lark(_grammar(), parser="lalr", lexer="contextual", postlex=Brackets(), propagate_positions=True,
                maybe_placeholders=True)


@dataclass
class V:
    """A parsed value with its position; ``kids`` holds (key location, V) per key, or V per item."""

    data: Any
    loc: Location
    kids: Any = None


def _mapping(pairs: list[tuple[Any, Location, V]], file: str, what: str) -> V:
    data, kids = {}, {}
    for key, kloc, val in pairs:
        if key in kids:
            raise SpecError(Diagnostic(f"`{key}` is given twice in {what}", kloc, "give each key once",
                                       related=[("first given", kids[key][0])]))
        data[key], kids[key] = val.data, (kloc, val)
    loc = pairs[0][1] if pairs else Location(file, 1, 1)
    return V(data, loc, kids)


@dataclass
class Inline:
    """``head(args)`` used as an input: ``sg(x)`` or an inline shared block ``enc(goal)``."""

    head: str
    loc: Location
    edges: list
    kwargs: list


@v_args(inline=True)
class Build(Transformer):
    """Parse tree -> statements (tagged tuples) holding :class:`V` values."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def at(self, x) -> Location:
        if isinstance(x, V):
            return x.loc
        if isinstance(x, Token):
            return _tok_loc(self.file, x)
        return Location(self.file, x.line, x.column)

    # -------------------------------------------------------------------------- values
    def number(self, neg, tok):
        try:
            val = SPECIAL_FLOATS[tok.type] if tok.type in SPECIAL_FLOATS else int(tok) if tok.type == "INT" else float(tok)
        except ValueError:  # an integer past Python's 4,300-digit conversion limit
            raise SpecError(f"number with {len(tok):,} digits is too long", self.at(tok),
                            "a spec's numbers are sizes and coefficients: write a number of sensible size") from None
        return V(-val if neg is not None else val, self.at(neg if neg is not None else tok))

    def neg(self, tok):
        return tok

    def string(self, tok):
        try:
            text = json.loads(tok, strict=False)  # strict=False: a raw tab is fine
            text.encode("utf-8")  # a lone surrogate (`\ud800`) is no character: YAML and files refuse it
        except ValueError:  # UnicodeEncodeError is one
            raise SpecError("bad escape in string", self.at(tok),
                            'strings use JSON escapes: \\" \\\\ \\n \\t \\uXXXX (a \\ud800-\\udfff half needs its pair)') from None
        return V(text, self.at(tok))

    def dotted(self, *names):
        text = ".".join(names)
        if text in PYTHON_LITERALS:
            raise SpecError(f"`{text}` is Python; .jepa writes `{PYTHON_LITERALS[text]}`", self.at(names[0]),
                            f'write `{PYTHON_LITERALS[text]}`, or `"{text}"` for the string')
        return V(text, self.at(names[0]))

    def true(self, tok):
        return V(True, self.at(tok))

    def false(self, tok):
        return V(False, self.at(tok))

    def null(self, tok):
        return V(None, self.at(tok))

    def range(self, lo, hi):
        return V([lo.data, hi.data], lo.loc, [lo, hi])

    @v_args(meta=True, inline=True)
    def list(self, meta, *items):
        items = [i for i in items if i is not None]
        return V([i.data for i in items], Location(self.file, meta.line, meta.column), items)

    @v_args(meta=True, inline=True)
    def mapping(self, meta, *entries):
        out = _mapping([e for e in entries if e is not None], self.file, "this mapping")
        out.loc = Location(self.file, meta.line, meta.column)
        return out

    def entry(self, key, value):
        return (self._key(key), self.at(key), value)

    kwarg = entry

    def _key(self, key):
        return self.string(key).data if key.type == "STRING" else str(key)

    def kwargs(self, *kws):
        return _mapping(list(kws), self.file, "this statement")

    # ------------------------------------------------------------------- block calls
    def ref(self, head, tail):
        return V(f"{head}.{tail}" if tail is not None else str(head), self.at(head))

    def inline(self, head, args):
        return Inline(head, self.at(head), *(args or ([], [])))

    def args(self, *items):
        edges, kwargs = [], []
        for item in items:
            if item is None:
                continue
            if isinstance(item, tuple):  # (key, key location, value)
                kwargs.append(item)
            else:
                if kwargs:
                    raise SpecError("an input comes after a keyword argument", self._edge_loc(item),
                                    "write the inputs first, then the parameters: `mlp(x, y, out=state)`")
                edges.append(item)
        return edges, kwargs

    def _edge_loc(self, item):
        return item.loc

    def callee(self, head, tail):
        return head, tail

    def second_args(self, args):
        return args or ([], [])

    def as_kind(self, name):
        return name

    def call(self, callee, args, second, kind):
        return ("call", callee, args or ([], []), second, False, kind)

    def frozen_call(self, call):
        return call[:4] + (True,) + call[5:]  # ("call", callee, args, second, frozen, kind)

    # -------------------------------------------------------------------- statements
    def header(self, name):
        return ("header", name)

    def description(self, tok):
        return ("description", tok, self.string(tok))

    def schema(self, tok):
        return ("schema", tok, self.string(tok))

    def var_kw(self, tok):
        return tok

    def name_list(self, *names):
        return list(names)

    def var_word(self, name, *values):
        return ("word", name, [v for v in values if v is not None])

    def reg_term(self, name, weight):
        return (str(name), self.at(name), weight)

    def var_reg(self, *terms):
        return ("reg", terms[0][1], list(terms))

    def var_bounds(self, lst):
        return ("bounds", lst.loc, lst)

    def var_infer(self, method, *kws):
        return ("infer", method, [k for k in kws if k is not None])

    def var_decl(self, kw, names, shape, *opts):
        return ("var", kw, names, shape, [o for o in opts if o is not None])

    def block_name(self, tok):
        return tok

    def block(self, name, rhs):
        return ("block", name, rhs)

    def addop(self, tok):
        return tok

    def coef(self, x, *_):
        if isinstance(x, Token):  # unary minus
            return V(-1.0, self.at(x))
        return V(float(x.data), x.loc)

    def word_name(self, *names):
        return V(".".join(names), self.at(names[0]))

    def term(self, coef, name):
        return (name.data, name.loc, coef if coef is not None else V(1.0, name.loc))

    def sum(self, first, *rest):
        terms = [first]
        for op, term in zip(rest[::2], rest[1::2]):
            if op == "-":
                term = (term[0], term[1], V(-term[2].data, term[2].loc))
            terms.append(term)
        return terms

    def objective(self, terms):
        return ("objective", terms)

    def costs(self, terms):
        return ("costs", terms)

    def level(self, name, kwargs):
        return ("level", name, kwargs)

    def section(self, name, body):
        return ("section", name, body)

    def start(self, *stmts):
        return list(stmts)


def parse_dsl(text: str, file: str = "<string>.jepa") -> RawSpec:
    """Parse ``.jepa`` text into a :class:`RawSpec`. Raises :class:`SpecError` with a location."""
    # a cycle otherwise: dsl_build and dsl_errors import this module's node types and parser
    from .dsl_build import assemble
    from .dsl_errors import parse_error

    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    if "\r" in text:  # Windows (CRLF) and old Mac (CR) line ends count as YAML's do: one line break each
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    register_source(file, text)
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise SpecError("the spec file is empty", Location(file, 1, 1), "a .jepa spec starts with `jepa my_model`")
    if "\x00" in text:
        bad = text.index("\x00")
        line = text.count("\n", 0, bad) + 1
        raise SpecError("the spec holds a NUL byte", Location(file, line, bad - text.rfind("\n", 0, bad)),
                        "is this a binary file? .jepa specs are UTF-8 text")
    p = parser()
    try:
        tree = p.options.postlex.parse(p, text, file)
    except UnexpectedInput as e:
        raise parse_error(e, text, file, p.options.postlex.stack) from None
    try:
        stmts = Build(file).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, SpecError):
            raise e.orig_exc from None
        raise
    return assemble(stmts, text, file)
