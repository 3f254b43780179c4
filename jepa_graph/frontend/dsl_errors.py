"""Friendly .jepa parse errors: a table of example bad inputs, matched with lark's ``match_examples``.

A parse error is compared against the examples of :mod:`jepa_graph.dsl_mistakes`: when the parser fails in the same state
(on the same token where possible) as one of them, the user gets that entry's message and hint.
Where LALR shares one state between contexts (`[64 64]`, `mlp(x 4)` and `{a=1 b=2}` all fail
just after a number), :func:`_relabel` picks the entry by the innermost open bracket or the
word before the caret. Otherwise the message says what was found and what was expected, in
words, and the hint is built from what would fit there. Either way the error is a
:class:`~jepa_graph.errors.SpecError` with ``file:line:col``, the line, a caret and a hint.

Mistakes caught after parsing (an input after a keyword argument, an unknown block copied...)
have their messages in :mod:`jepa_graph.dsl_build`; ``dsl_mistakes.CHECKED`` lists example
inputs for them so that ``tests/frontend/test_dsl_errors.py`` covers both kinds with one loop.
"""
from __future__ import annotations

import re
from functools import lru_cache

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from .dsl_lines import CLOSERS, OPENERS, SYMBOL
from .dsl_mistakes import MISTAKES
from .parse_dsl import parser
from ..core.errors import Location, SpecError, did_you_mean

KEYWORDS = ("jepa", "description", "schema", "input", "latent", "action", "objective", "costs", "level")
SECTIONS = ("dims", "world_model", "outputs")


def _alternatives(names: set[str], terminals: dict[str, str]) -> list[str]:
    """Terminal names -> ["a name", "`=`", "the end of the line"] (one phrase per kind of token)."""
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
    return out


def _or(words: list[str]) -> str:
    return "" if not words else words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _words(names: set[str], terminals: dict[str, str]) -> str:
    """Terminal names -> "a name, `=` or the end of the line"."""
    return _or(_alternatives(names, terminals))


def _generic_hint(names: set[str], terminals: dict[str, str]) -> str:
    """A hint built from what the parser accepts here: "add `,` or `)` here", "end the line here"."""
    alts = _alternatives(names, terminals)
    ends = [a for a in alts if a.startswith("the end of")]
    rest = [a for a in alts if not a.startswith("the end of")]
    parts = []
    if rest and len(rest) <= 4:
        parts.append(f"add {_or(rest)} here")
    if ends:
        parts.append("end the line here" if "the end of the line" in ends else "end the file here")
    how = " or ".join(parts) if parts else "check this statement's form"
    return f"{how}; docs/jepa_syntax.md shows the form of each statement"


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


# Mistakes told apart by where they are rather than by the parser state (LALR shares states
# between contexts: `[64 64]`, `mlp(x 4)` and `{a=1 b=2}` all fail just after a number).
COMMA_LABELS = ("missing_comma_args", "missing_comma_list", "missing_comma_mapping", "missing_comma_names")
VALUE_START = {"NAME", "INT", "FLOAT", "INF", "NAN", "STRING", "LSQB", "LBRACE", "MINUS", "TRUE", "FALSE", "NULL"}
DOMAINS = ("real", "box", "discrete")
VAR_KEYWORDS = ("input", "latent", "action")


def _prev_word(text: str, loc: Location) -> str:
    """The word just before ``loc`` on its line (``sg`` in ``sg y``, ``extra`` in ``stride=2 extra``)."""
    lines = text.splitlines()
    before = lines[loc.line - 1][:loc.col - 1] if 0 < loc.line <= len(lines) else ""
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", before)
    return m.group(1) if m else ""


def _first_col(text: str, line: int) -> int:
    """The column of the first word on ``line``."""
    lines = text.splitlines()
    ln = lines[line - 1] if 0 < line <= len(lines) else ""
    return len(ln) - len(ln.lstrip()) + 1


def _keyword_typo(text: str, loc: Location, line: int, first: str) -> bool:
    """``inptu x : [obs]``: the statement's first word is a misspelt keyword. Not a block (``name = ...``),
    and not a section that parses up to its first ``key=value`` (``costs_cfg a=1 b`` is no ``costs``)."""
    if loc.line != line or not first or first in KEYWORDS + SECTIONS \
            or not did_you_mean(first, KEYWORDS).startswith("did you mean"):
        return False
    eq = text.splitlines()[line - 1].find("=")
    return eq < 0 or loc.col <= eq + 1


def _relabel(label: str | None, e: UnexpectedInput, stack: list, first: str, prev: str,
             expected: set[str]) -> str | None:
    """Pick the entry by context where the parser state alone cannot tell mistakes apart."""
    tok = getattr(e, "token", None)
    ttype = getattr(tok, "type", None)
    if ttype in VALUE_START and prev == "sg" and ("COMMA" in expected or "RPAR" in expected):
        return "sg_without_parens"
    if label in ("reg_missing_weight", "reg_then_domain"):
        return "reg_then_domain" if prev in DOMAINS else "reg_missing_weight"
    comma = label in COMMA_LABELS or (label is None and "COMMA" in expected and ttype in VALUE_START)
    if comma:
        inner = stack[-1].type if stack else None
        if inner == "LPAR":
            return "missing_comma_args"
        if inner == "LSQB":
            return "missing_comma_list"
        if inner == "LBRACE":
            return "missing_comma_mapping"
        if first in VAR_KEYWORDS:
            return "missing_comma_names"
        return None if label in COMMA_LABELS else label
    if label is None and "_NL" in expected and tok is not None and re.fullmatch(r"[A-Za-z_]\w*", str(tok)) \
            and not stack:
        return "statement_run_on"
    return label


def parse_error(e: UnexpectedInput, text: str, file: str, open_brackets: list) -> SpecError:
    """A lark error -> :class:`SpecError` with a location, a message in words and a hint."""
    loc = _where(e, text, file)
    stack = list(open_brackets)
    terminals = {t.name: t.pattern.value for t in parser().terminals if t.pattern.type == "str"}
    expected = _expected(e)
    # LALR merges states, so the parse table also accepts `]` inside ( ) and a newline inside [ ]:
    # only the innermost bracket's closer is really possible, and newlines do not count inside ( ) and [ ]
    inner = stack[-1].type if stack else None
    expected -= {c for o, c in OPENERS.items() if o != inner}
    if inner in ("LPAR", "LSQB"):
        expected -= {"_NL"}
    words = _words(expected, terminals) if expected else ""
    tok = getattr(e, "token", None)
    # at the end of the file: the post-lexer's last newline (none reaches the parser inside ( ) or [ ]) or $END
    at_end = isinstance(e, UnexpectedEOF) or getattr(tok, "type", None) == "$END" or (
        getattr(tok, "type", None) == "_NL" and bool(stack) and stack[-1].type in ("LPAR", "LSQB"))
    if stack and (stack[-1].line < loc.line or at_end):
        opened = stack[-1]
        sym = SYMBOL[opened.type]
        close = {'(': ')', '[': ']', '{': '}'}[sym]
        where = "before the end of the file" if at_end else f"before line {loc.line}"
        return SpecError(f"`{sym}` opened on line {opened.line} is never closed",
                         Location(file, opened.line, opened.column), f"close it with `{close}` {where}")
    if tok is not None and tok.type in CLOSERS:  # the lexer rejects a closer before the post-lexer sees it
        if not stack:
            return SpecError(f"unmatched `{SYMBOL[tok.type]}`", loc, "remove it, or add the bracket it closes")
        if OPENERS[stack[-1].type] != tok.type:
            o = stack[-1]
            return SpecError(f"`{SYMBOL[tok.type]}` closes `{SYMBOL[o.type]}`", loc,
                             f"close `{SYMBOL[o.type]}` (line {o.line}, column {o.column}) "
                             f"with `{SYMBOL[OPENERS[o.type]]}` first")
    line = _statement_line(text, loc)
    first = _first_word(text, line)
    found = _found(e, text)
    prev = _prev_word(text, loc)
    char = text[e.pos_in_stream] if isinstance(e, UnexpectedCharacters) and e.pos_in_stream < len(text) else ""
    if _keyword_typo(text, loc, line, first):
        label = "unknown_statement"
        loc = Location(file, line, _first_col(text, line))  # the caret on the word the message names
    elif char == ";":
        label = "semicolon"
    else:
        label = _relabel(match(e), e, stack, first, prev, expected)
    if label is None:
        hint = None
        if isinstance(e, UnexpectedCharacters):
            hint = ("names are ASCII letters, digits and `_`; put other text in a string \"...\""
                    if char.isprintable() and not char.isascii() else
                    "remove the control character: a .jepa spec is plain text" if char and not char.isprintable() else None)
        return SpecError(f"{found}" + (f"; expected {words}" if words else ""), loc,
                         hint or _generic_hint(expected, terminals))
    if label in ("unknown_statement", "section_key_colon"):  # same parser state: tell them apart by the word
        close = did_you_mean(first, KEYWORDS)
        label = "unknown_statement" if close.startswith("did you mean") and first not in SECTIONS + KEYWORDS \
            else "section_key_colon"
    if label == "entry_without_value" and prev:  # point at the word, not at the end of the line
        at = text.splitlines()[loc.line - 1].rstrip()[:loc.col - 1].rstrip()
        loc = Location(file, loc.line, len(at) - len(prev) + 1)
    m = MISTAKES[label]
    msg = m.message.format(first=first)
    token = _clip(str(tok).strip(), 20) if tok is not None and tok.type not in ("_NL", "$END") else "..."
    hint = m.hint.format(first=first or "input", token=token, prev=prev or "name")
    if label == "unknown_statement":
        close = did_you_mean(first, KEYWORDS + SECTIONS)
        if close.startswith("did you mean"):
            hint = f"{close} ({hint})"
    short = m.details and words and words.count(",") < 4  # a long list of alternatives only hides the friendly hint
    return SpecError(msg, loc, hint + (f" [{found}; expected {words}]" if short else ""))
