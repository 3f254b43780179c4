"""Friendly .jepa parse errors: a table of example bad inputs, matched with lark's ``match_examples``.

A parse error is compared against the examples below: when the parser fails in the same state
(on the same token where possible) as one of them, the user gets that entry's message and hint.
Otherwise the message says what was found and what was expected, in words. Either way the
error is a :class:`~jepa_graph.errors.SpecError` with ``file:line:col``, the line and a caret.

Mistakes caught after parsing (an input after a keyword argument, an unknown block copied...)
have their messages in :mod:`jepa_graph.dsl_build`; :data:`CHECKED` lists example inputs for
them so that ``tests/test_dsl_errors.py`` covers both kinds with one loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from .errors import Location, SpecError, did_you_mean

KEYWORDS = ("jepa", "description", "schema", "input", "latent", "action", "objective", "costs", "level")
SECTIONS = ("dims", "world_model", "outputs")


@dataclass(frozen=True)
class Mistake:
    """One common mistake: example bad inputs, the message and a hint showing the fix.

    ``{first}`` in the message or hint is replaced by the first word of the statement.
    """

    message: str
    hint: str
    examples: tuple[str, ...]


MISTAKES: dict[str, Mistake] = {
    "colon_definition": Mistake(
        "`{first}:` looks like YAML; .jepa definitions use `=` or a keyword",
        "write `enc = encoder.mlp(x, out=state)`, `dims obs=4`, or use a .yaml file for YAML",
        ("enc: encoder.mlp(x)\n", "name: foo\n", "blocks:\n")),
    "unknown_statement": Mistake(
        "`{first}` is not a statement",
        "statements start with `jepa`, `input`, `latent`, `action`, `objective`, `costs`, `level`, "
        "a section name (`dims obs=4`), or `name = ...` for a block",
        ("inptu x : [obs]\n", "lantent z : [2]\n")),
    "missing_equals": Mistake(
        "a block definition needs `=` after the block's name",
        "write `{first} = encoder.mlp(x, out=state)`",
        ("enc encoder.mlp(x)\n", "enc encoder(x)\n")),
    "missing_block_name": Mistake(
        "a block definition needs the block's name before `=`",
        "write `enc = encoder.mlp(x, out=state)`",
        ("= encoder.mlp(x)\n", "  = enc(y)\n")),
    "double_equals": Mistake(
        "a block is written `name = kind.type(inputs, params)`",
        "after `=` comes `kind.type(...)`, `block(...)` to share weights, or `ema(block)(...)`",
        ("enc = = encoder.mlp(x)\n", "enc = 3\n", "enc = [x]\n")),
    "call_without_parens": Mistake(
        "a block needs its inputs in parentheses",
        "write `{first} = encoder.mlp(x)`; a block with no inputs is written `encoder.mlp()`",
        ("enc = encoder.mlp\n", "enc = encoder.mlp x\n", "enc = encoder.mlp, x\n")),
    "kind_dot_missing": Mistake(
        "expected `.` or `(` after the block kind",
        "a new block is `kind.type(...)`, e.g. `encoder.mlp(x)`",
        ("enc = encoder mlp(x)\n",)),
    "colon_param": Mistake(
        "parameters are written `key=value`, not `key: value`",
        "write `encoder.mlp(x, out=state)`",
        ("enc = encoder.mlp(x, out: state)\n", "enc = encoder.mlp(out: state)\n")),
    "missing_comma_args": Mistake(
        "missing `,` between the arguments",
        "separate inputs and parameters with commas: `mlp(x, y, out=state)`",
        ("enc = encoder.mlp(x y)\n", "enc = encoder.mlp(x out=state)\n", "enc = encoder.mlp(x, out=4 hidden=[3])\n")),
    "sum_with_equals": Mistake(
        "`{first}` is a weighted sum of terms, not a list of assignments",
        "write `{first} E + 0.5 * reg` (a term alone has weight 1)",
        ("objective E = 1\n", "costs reach = 1.0\n", "objective E + reg = 0.5\n")),
    "missing_comma_list": Mistake(
        "missing `,` between list items",
        "write `[64, 64]`",
        ("enc = encoder.mlp(x, hidden=[64 64])\n", "input x : [obs 2]\n")),
    "param_missing_value": Mistake(
        "a parameter needs a value after `=`",
        "write `key=value`, e.g. `out=state` or `hidden=[64, 64]`",
        ("enc = encoder.mlp(x, out=)\n", "enc = encoder.mlp(x, out=,)\n")),
    "var_missing_colon": Mistake(
        "`{first}` needs `:` between the names and the shape",
        "write `{first} x : [obs]`",
        ("input x [obs]\n", "latent z [2]\n", "input x, y [obs]\n")),
    "var_missing_shape": Mistake(
        "the shape is a list in brackets",
        "write `{first} x : [obs]`, or `[]` for a scalar",
        ("input x :\n", "input x : obs\n", "action a : 2\n")),
    "var_missing_name": Mistake(
        "`{first}` needs a name",
        "write `{first} x : [obs]`; several inputs of one shape: `input x, x_next : [obs]`",
        ("input : [obs]\n", "latent\n")),
    "reg_missing_weight": Mistake(
        "a latent regulariser needs its weight in parentheses",
        "write `latent z : [2] ~ l1(0.05)`",
        ("latent z : [2] ~ l1\n", "latent z : [2] ~ l1 0.05\n")),
    "reg_weight_name": Mistake(
        "a regulariser's weight is a number",
        "write `~ l1(0.05)`",
        ("latent z : [2] ~ l1(a)\n", "latent z : [2] ~ l1()\n")),
    "bounds_not_list": Mistake(
        "action bounds are a list `[lo, hi]`",
        "write `action a : [act] in [-1, 1]`",
        ("action a : [2] in -1..1\n", "action a : [2] in 1\n")),
    "objective_weight_after": Mistake(
        "the weight comes before the term",
        "write `objective E + 0.5 * reg`",
        ("objective E + reg * 0.5\n", "costs reach * 2\n")),
    "objective_comma": Mistake(
        "terms of a sum are joined with `+` or `-`",
        "write `objective E + 0.5 * reg` (a weight `w * term`, default 1)",
        ("objective E, reg\n", "costs reach, 0.1 * effort\n", "objective E reg\n")),
    "objective_equals": Mistake(
        "`{first}` is followed directly by its sum, without `=`",
        "write `{first} E + 0.5 * reg`",
        ("objective = E + reg\n", "costs: reach\n", "objective: E\n")),
    "objective_empty": Mistake(
        "`{first}` needs at least one term",
        "write `{first} E`, or remove the line",
        ("objective\n", "costs\n")),
    "level_name": Mistake(
        "a level starts with its name",
        "write `level low encoder=enc, predictor=pred, stride=1`",
        ("level encoder=enc\n", "level\n")),
    "header_name": Mistake(
        "`jepa` needs the spec's name",
        "write `jepa my_model` (letters, digits and `_`)",
        ("jepa\n", "jepa 3\n", 'jepa "my model"\n')),
    "header_extra": Mistake(
        "`jepa NAME` takes one name",
        "the name is one word: `jepa my_model`; write a description on its own line: `description \"...\"`",
        ("jepa my model\n", "jepa my-model\n")),
    "description_unquoted": Mistake(
        "a description is a string in double quotes",
        'write `description "what this spec is"`',
        ("description hello world\n", "description\n")),
    "single_quotes": Mistake(
        "strings use double quotes",
        'write `"text"`, not `\'text\'`',
        ("description 'x'\n", "enc = encoder.mlp(x, act='relu')\n")),
    "unclosed_string": Mistake(
        "this string is not closed before the end of the line",
        'add the closing `"`; a string cannot span lines (write `\\n` for a newline)',
        ('description "abc\n', 'enc = encoder.mlp(x, act="relu)\n')),
    "semicolon": Mistake(
        "statements end at the end of the line; `;` is not used",
        "put each statement on its own line",
        ("input x : [4];\n", "jepa a; input x : [4]\n")),
    "section_key_colon": Mistake(
        "section entries are written `key=value`",
        "write `{first} obs=4, state=8` or `{first} {{ key = value }}` on several lines",
        ("dims obs: 4\n", "world_model encoder: enc\n")),
    "section_missing_value": Mistake(
        "`{first}` needs `key=value` entries",
        "write `dims obs=4, state=8`, `world_model encoder=enc, predictor=pred`, or `{first} {{ ... }}`",
        ("dims\n", "world_model\n")),
    "ema_syntax": Mistake(
        "an EMA target is written `ema(block)(inputs, params)`",
        "write `target = ema(enc)(x_next, momentum=0.99..1.0)`",
        ("target = ema enc(x_next)\n",)),
    "range_incomplete": Mistake(
        "a range needs both ends: `lo..hi`",
        "write `momentum=0.99..1.0`",
        ("target = ema(enc)(y, momentum=0.99..)\n",)),
}


# Mistakes found after parsing: (example, a fragment of the message it must produce).
CHECKED: list[tuple[str, str]] = [
    ("jepa a\ninput x : [4]\nenc = encoder.mlp(out=2, x)\n", "an input comes after a keyword argument"),
    ("jepa a\ninput x : [4]\nenc = mlp(x)\n", "`enc` copies `mlp`, which is not a block in this file"),
    ("jepa a\ninput x : [4]\ne = encoder.mlp(x)\ne = encoder.mlp(x)\n", "block `e` is written twice"),
    ("jepa a\ninput x : [4]\ne = encoder.mlp(x, out=2, out=3)\n", "`out` is given twice"),
    ("jepa a\ninput x : [4]\ne = encoder.mlp(x, bias=True)\n", "`True` is Python"),
    ("jepa a\ninput x : [4]\ne = encoder.mlp(x)\nt = ema(e, x)(x)\n", "a second argument list is only for EMA"),
    ("jepa a\ninput x : [4]\ne = encoder.mlp(x)\nE = energy.l2(e, sg(e, x))\n", "`sg(...)` takes one input"),
    ("jepa a\ninput x : [4] ~ l1(0.1)\ne = encoder.mlp(x)\n", "only a latent takes a regulariser"),
    ("jepa a\naction a : [2] real\n", "does not belong in an action declaration"),
    ("input x : [4]\ne = encoder.mlp(x)\n", "a .jepa spec starts with `jepa NAME`"),
    ("jepa a\njepa b\n", "`jepa NAME` is written twice"),
    ("jepa a\nobjective E\nobjective F\n", "`objective` is written twice"),
    ("jepa a\ndims obs = " + "9" * 5000 + "\n", "number with 5,000 digits is too long"),
    ("# only a comment\n", "the spec file is empty"),
    ("jepa a\ne = encoder.mlp(x, h=" + "[" * 70 + "1" + "]" * 70 + ")\n", "brackets nested more than"),
    ("jepa a\ne = encoder.mlp(x))\n", "unmatched `)`"),
    ("jepa a\ne = encoder.mlp(x]\n", "`]` closes `(`"),
    ("jepa a\ninput x : [4]\na = encoder.mlp(x)\ng = a(x)\nh = g(x)\ng2 = h2(x)\n", "which is not a block in this file"),
    ("jepa a\ne = encoder.mlp(x, s=\"\\q\")\n", "bad escape in string"),
    ("jepa a\ndescription \"\\ud800\"\n", "bad escape in string"),  # half a surrogate pair
    ("jepa a\ne = encoder.mlp(x, \"\\q\"=1)\n", "bad escape in string"),
    ("jepa a\nenc = encoder.mlp(x\npred = predictor.mlp(enc)\n", "`(` opened on line 2 is never closed"),
]


def _words(names: set[str], terminals: dict[str, str]) -> str:
    """Terminal names -> "a name, `=` or the end of the line"."""
    named = {"NAME": "a name", "INT": "a number", "FLOAT": "a number", "INF": "a number", "NAN": "a number",
             "STRING": "a string in double quotes", "_NL": "the end of the line", "$END": "the end of the file",
             "LSQB": "a list `[...]`", "LBRACE": "a mapping `{...}`"}
    names = set(names)
    if {"INT", "STRING", "LSQB", "NAME"} <= names:  # everything a value can start with
        names -= {"INT", "FLOAT", "INF", "NAN", "STRING", "LSQB", "LBRACE", "NAME", "TRUE", "FALSE", "NULL", "MINUS"}
        names.add("VALUE")
    statements = {k.upper() for k in KEYWORDS}
    if len(names & statements) >= 3:  # the start of a statement: say so rather than list every keyword
        names = (names - statements - {"NAME"}) | {"STATEMENT"}
    words = {"VALUE": "a value", "STATEMENT": "a statement (`jepa`, `input`, `enc = ...`, ...)"}
    out = []
    for n in sorted(names):
        w = words.get(n) or named.get(n) or (f"`{terminals[n]}`" if n in terminals else n.lower())
        if w not in out:
            out.append(w)
    return out[0] if len(out) == 1 else ", ".join(out[:-1]) + " or " + out[-1]


def _expected(e: UnexpectedInput) -> set[str]:
    """Terminals the parser accepts where it failed (the lexer's own set also lists newlines
    and comments everywhere, so ask the parse table)."""
    state = e.state
    try:
        actions = state.parse_conf.parse_table.states[state.position]
        return {name for name in actions if name.isupper() or name == "$END"}
    except (AttributeError, KeyError, TypeError):
        return set(getattr(e, "expected", None) or getattr(e, "allowed", None) or ())


def _found(e: UnexpectedInput, text: str) -> str:
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        return f"unexpected character `{ch}`" if ch.isprintable() else f"unexpected character {ch!r}"
    if isinstance(e, UnexpectedEOF):
        return "unexpected end of the file"
    tok = e.token
    if tok.type == "$END":
        return "unexpected end of the file"
    if tok.type == "_NL":
        return "unexpected end of the line"
    return f"unexpected `{_clip(str(tok))}`"


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[:n] + "..."


def _where(e: UnexpectedInput, text: str, file: str) -> Location:
    tok = getattr(e, "token", None)
    line = getattr(tok, "line", None) if tok is not None else getattr(e, "line", None)
    col = getattr(tok, "column", None) if tok is not None else getattr(e, "column", None)
    if not line or line < 1:  # end of the file
        lines = text.splitlines() or [""]
        return Location(file, len(lines), len(lines[-1]) + 1)
    return Location(file, line, col or 1)


def _first_word(text: str, line: int) -> str:
    lines = text.splitlines()
    words = lines[line - 1].split() if 0 < line <= len(lines) else []
    return words[0].rstrip(":=") if words else ""


def _statement_line(text: str, loc: Location) -> int:
    """The line where the statement holding ``loc`` starts (statements may span lines inside brackets)."""
    lines = text.splitlines()
    line = loc.line
    while line > 1 and line - 1 <= len(lines) and lines[line - 2].rstrip().endswith(("(", "[", ",", "{")):
        line -= 1
    return line


def _signature(e: UnexpectedInput) -> tuple:
    """(parser state, error class, token type, token text): what makes two parse errors alike."""
    state = getattr(e.state, "position", e.state)
    if isinstance(e, UnexpectedCharacters):
        return (state, "char", "CHAR", e.char)
    tok = getattr(e, "token", None)
    return (state, "token", getattr(tok, "type", None), str(tok) if tok is not None else None)


@lru_cache(maxsize=None)
def _example_signatures(example: str) -> tuple[tuple, ...]:
    """How ``example`` fails as the first, second and a later statement of a file (at a
    statement's start the parser's state depends on how many statements came before)."""
    from .parse_dsl import parser
    out = []
    for text in (example, "jepa x\n" + example, "jepa x\njepa y\n" + example):
        try:
            parser().parse(text)
        except UnexpectedInput as e:
            out.append(_signature(e))
        except SpecError:
            pass
    return tuple(out)


def match(e: UnexpectedInput) -> str | None:
    """The key of the :data:`MISTAKES` entry whose examples fail like ``e``, or None.

    Like lark's ``match_examples`` (same parser state; the same token wins over the same token
    type), but comparing state numbers only: lark also compares the depth of the parse stack,
    which differs between the first statement and later ones. Unlike it, the state alone is not
    a match, nor is an unexpected character other than the example's.
    """
    sig = _signature(e)
    if sig[0] is None:
        return None
    best, rank = None, 0
    for label, mistake in MISTAKES.items():
        for other in (s for example in mistake.examples for s in _example_signatures(example)):
            if other[0] != sig[0]:
                continue
            r = 3 if other[1:] == sig[1:] else 2 if other[1:3] == sig[1:3] else 1
            if r > rank:
                best, rank = label, r
    # The state alone says too little (`objective E = 1` fails in the state of `[64 64]`), and so
    # does "some character" (a stray `é` is not a stray `;`): those fall back to found/expected.
    return best if rank == 3 or (rank == 2 and sig[1] == "token") else None


def parse_error(e: UnexpectedInput, text: str, file: str, open_brackets: list) -> SpecError:
    """A lark error -> :class:`SpecError` with a location, a message in words and a hint."""
    from .dsl_lines import CLOSERS, OPENERS, SYMBOL
    from .parse_dsl import parser

    loc = _where(e, text, file)
    stack = list(open_brackets)
    terminals = {t.name: t.pattern.value for t in parser().terminals if t.pattern.type == "str"}
    expected = _expected(e)
    words = _words(expected, terminals) if expected else ""
    if stack and stack[-1].line < loc.line:
        opened = stack[-1]
        sym = SYMBOL[opened.type]
        return SpecError(f"`{sym}` opened on line {opened.line} is never closed",
                         Location(file, opened.line, opened.column),
                         f"close it with `{ {'(': ')', '[': ']', '{': '}'}[sym] }` before line {loc.line}")
    tok = getattr(e, "token", None)
    if tok is not None and tok.type in CLOSERS:  # the lexer rejects a closer before the post-lexer sees it
        if not stack:
            return SpecError(f"unmatched `{SYMBOL[tok.type]}`", loc, "remove it, or add the bracket it closes")
        if OPENERS[stack[-1].type] != tok.type:
            o = stack[-1]
            return SpecError(f"`{SYMBOL[tok.type]}` closes `{SYMBOL[o.type]}`", loc,
                             f"close `{SYMBOL[o.type]}` (line {o.line}, column {o.column}) "
                             f"with `{SYMBOL[OPENERS[o.type]]}` first")
    label = match(e)
    first = _first_word(text, _statement_line(text, loc))
    found = _found(e, text)
    if label is None:
        hint = None
        if first and first not in KEYWORDS + SECTIONS and loc.line == _statement_line(text, loc):
            close = did_you_mean(first, KEYWORDS + SECTIONS)
            hint = close if close.startswith("did you mean") else None
        if hint is None and isinstance(e, UnexpectedCharacters):
            ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
            hint = ("names are ASCII letters, digits and `_`; put other text in a string \"...\""
                    if ch.isprintable() and not ch.isascii() else
                    "remove the control character: a .jepa spec is plain text" if not ch.isprintable() else None)
        return SpecError(f"{found}" + (f"; expected {words}" if words else ""), loc, hint)
    if label in ("unknown_statement", "section_key_colon"):  # same parser state: tell them apart by the word
        close = did_you_mean(first, KEYWORDS)
        label = "unknown_statement" if close.startswith("did you mean") and first not in SECTIONS else "section_key_colon"
    m = MISTAKES[label]
    msg = m.message.format(first=first)
    hint = m.hint.format(first=first or "input")
    if label == "unknown_statement":
        close = did_you_mean(first, KEYWORDS + SECTIONS)
        if close.startswith("did you mean"):
            hint = f"{close} ({hint})"
    short = words and words.count(",") < 4  # a long list of alternatives only hides the friendly hint
    return SpecError(msg, loc, hint + (f" [{found}; expected {words}]" if short else ""))
