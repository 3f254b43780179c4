"""The .jepa post-lexer: newlines end statements, except inside brackets.

Newlines inside ``( )`` and ``[ ]`` are dropped (a call or a list may span lines); inside
``{ }`` they separate entries, like commas. The post-lexer also checks that brackets match,
bounds their nesting (deeper input is garbage, and the tree walk is recursive), and ends the
file with a newline so the last statement needs none.
"""
from __future__ import annotations

import threading

from lark import Lark, Token

from ..core.errors import Location, SpecError

MAX_DEPTH = 61  # bracket nesting: `(` + 60 lists, the deepest a `with:` value nests inside YAML's 64 levels
OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
CLOSERS = {v: k for k, v in OPENERS.items()}
SYMBOL = {"LPAR": "(", "RPAR": ")", "LSQB": "[", "RSQB": "]", "LBRACE": "{", "RBRACE": "}"}


class Brackets:
    """Post-lexer: drops newlines inside ( ) and [ ], keeps them as separators inside { }.

    It also ends the file with a newline, and records the open brackets (per thread: the parser
    is shared) so that a parse error can say which bracket was left open.
    """

    always_accept = ("_NL",)

    def __init__(self):
        self._state = threading.local()

    @property
    def stack(self) -> list[Token]:
        return getattr(self._state, "stack", [])

    def process(self, stream):
        stack: list[Token] = []
        self._state.stack = stack
        file = getattr(self._state, "file", "<string>")
        prev, last = None, None
        for tok in stream:
            t = tok.type
            if t == "_NL":
                inside = stack[-1].type if stack else None
                if inside in ("LPAR", "LSQB") or prev in (None, "_NL", "LBRACE") or \
                        (inside == "LBRACE" and prev == "COMMA"):
                    continue  # implicit line joining, blank lines, `a=1,` + newline in { }
                yield tok
            else:
                if t in OPENERS:
                    stack.append(tok)
                    if len(stack) > MAX_DEPTH:
                        raise SpecError(f"brackets nested more than {MAX_DEPTH} deep", tok_loc(file, tok),
                                        "a spec never needs this much nesting; is the file garbled?")
                elif t in CLOSERS:
                    if not stack:
                        raise SpecError(f"unmatched `{SYMBOL[t]}`", tok_loc(file, tok),
                                        "remove it, or add the opening bracket it closes")
                    opened = stack.pop()
                    if OPENERS[opened.type] != t:
                        raise SpecError(f"`{SYMBOL[t]}` closes `{SYMBOL[opened.type]}`", tok_loc(file, tok),
                                        f"close `{SYMBOL[opened.type]}` (opened at line {opened.line}, column "
                                        f"{opened.column}) with `{SYMBOL[OPENERS[opened.type]]}` first")
                yield tok
            prev, last = t, tok
        if prev not in (None, "_NL"):
            yield Token.new_borrow_pos("_NL", "\n", last)

    def parse(self, parser: Lark, text: str, file: str):
        self._state.file = file
        return parser.parse(text)


def tok_loc(file: str, tok) -> Location:
    """Where a lark token (or anything with ``line``/``column``) is, 1-based."""
    return Location(file, getattr(tok, "line", None) or 1, getattr(tok, "column", None) or 1)
