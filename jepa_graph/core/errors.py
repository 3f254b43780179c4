"""Located diagnostics: every user-facing error points at file:line:col with a snippet and a hint.

A :class:`Diagnostic` is one message about one place in a spec file.  A :class:`SpecError`
carries one or more of them; ``str(err)`` renders them the way a compiler would::

    specs/x.yaml:12:5: error: pred expects [B, 32] on input 1, enc gives [B, 64]
       12 |   pred: {kind: predictor, type: mlp, in: [enc, a], with: {out: state}}
          |     ^
    hint: change enc's `out` to 32, or pred's input dims

Sources are registered by file name (:func:`register_source`) so a location can show its line
long after parsing.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

_SOURCES: dict[str, list[str]] = {}


_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")  # YAML's line breaks (str.splitlines knows more)


def register_source(filename: str, text: str) -> None:
    """Remember ``text`` so diagnostics in ``filename`` can quote their line."""
    lines = _BREAK.split(text)
    _SOURCES[filename] = lines[:-1] if lines and lines[-1] == "" else lines


def position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, col) of character ``index`` in ``text``, counting lines as YAML does."""
    before = _BREAK.split(text[:index])
    return len(before), len(before[-1]) + 1


def source_line(filename: str, line: int) -> str | None:
    """Line ``line`` (1-based) of a registered source; ``""`` just past the end (parsers report
    an unclosed bracket at end of file there), None when unknown."""
    lines = _SOURCES.get(filename)
    if lines is None or not 1 <= line <= len(lines) + 1:
        return None
    return lines[line - 1] if line <= len(lines) else ""


@dataclass(frozen=True)
class Location:
    """A 1-based position in a spec file."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class Diagnostic:
    """One located message. ``severity`` is ``"error"`` or ``"warning"``."""

    message: str
    loc: Location | None = None
    hint: str | None = None
    severity: str = "error"
    related: list[tuple[str, Location]] = field(default_factory=list)

    def format(self) -> str:
        head = f"{self.loc}: " if self.loc else ""
        out = [f"{head}{self.severity}: {self.message}"]
        if self.loc is not None:
            text = source_line(self.loc.file, self.loc.line)
            if text is not None:
                gutter = f"{self.loc.line:>5} | "
                shown = _clip(text, self.loc.col)
                out.append(gutter + shown[0])
                out.append(" " * (len(gutter) - 2) + "| " + " " * shown[1] + "^")
        for what, loc in self.related:
            out.append(f"  note: {what} at {loc}")
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)


def _clip(text: str, col: int, width: int = 160) -> tuple[str, int]:
    """Cut very long lines around the caret; returns (shown text, caret offset)."""
    caret = max(col - 1, 0)
    if len(text) <= width:
        return _printable(text), min(caret, len(text))
    start = max(0, min(caret - width // 2, len(text) - width))
    shown = _printable(text[start:start + width])
    return ("..." if start else "") + shown + "...", caret - start + (3 if start else 0)


def _printable(text: str) -> str:
    """Tabs and control characters would shift or garble the caret line; show each as one cell."""
    return "".join(c if c.isprintable() else ("\ufffd" if c != "\t" else " ") for c in text)


MAX_SHOWN = 20  # a generated spec can hold thousands of errors; the first ones are what helps


class SpecError(Exception):
    """A spec is invalid. Holds every error found (``.diagnostics``), rendered by ``str()``."""

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic] | str,
                 loc: Location | None = None, hint: str | None = None):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics, loc, hint)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        seen: set[tuple] = set()
        self.diagnostics: list[Diagnostic] = []
        for d in diagnostics:  # one fault reached through two paths (a shared block) is one error
            key = (d.message, d.loc, d.severity)
            if key not in seen:
                seen.add(key)
                self.diagnostics.append(d)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        shown = [d.format() for d in self.diagnostics[:MAX_SHOWN]]
        if len(self.diagnostics) > MAX_SHOWN:
            shown.append(f"... and {len(self.diagnostics) - MAX_SHOWN} more errors (fix the first ones first)")
        return "\n".join(shown)

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]


class BlockRuntimeError(RuntimeError):
    """A block failed while running; names the block, its type and where it is defined."""


def in_jepa(loc) -> bool:
    """Whether ``loc`` (a Location, or None) is in a .jepa file: hints then show .jepa syntax."""
    return str(getattr(loc, "file", "") or "").endswith(".jepa")


def article(word: str) -> str:
    """``"an encoder"``, ``"a predictor"``: messages name kinds with their article."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Closest valid names to ``name`` (for "did you mean" hints)."""
    choices = sorted(set(choices))
    hits = difflib.get_close_matches(name, choices, n=n, cutoff=0.6)
    if not hits:
        low = {c.lower(): c for c in choices}
        hits = [low[h] for h in difflib.get_close_matches(name.lower(), list(low), n=n, cutoff=0.6)]
    return hits


def did_you_mean(name: str, choices: Iterable[str], what: str = "") -> str:
    """A hint: "did you mean `pred`?", or the list of valid names when nothing is close."""
    choices = sorted(set(choices))
    hits = closest(name, choices)
    if hits:
        return "did you mean " + " or ".join(f"`{h}`" for h in hits) + "?"
    if not choices:
        return f"no {what or 'names'} are defined here"
    shown = ", ".join(f"`{c}`" for c in choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"valid {what or 'names'}: {shown}"
