"""Comments survive formatting: find them, attach them to spec entries, put them back.

Both syntaxes are handled the same way. A full-line comment belongs to the next entry (the
outermost path whose key starts on the next line that has one); an end-of-line comment belongs
to the entry on its line. The emitters in :mod:`jepa_graph.emit` write lines tagged with the
path they start; :func:`place` puts every comment back before (or after) the line of its entry,
or of the nearest entry that has a line of its own in the target syntax (``dims.obs`` -> the
``dims`` line). No comment is ever dropped: :func:`jepa_graph.fmt.format_text` counts them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from ..frontend.parse_yaml import RawSpec

Path = tuple


@dataclass
class Comment:
    line: int  # 1-based
    text: str  # starts with "#", no trailing whitespace
    full: bool  # alone on its line (else it ends a line of code)


@dataclass
class Line:
    """One emitted line; ``path`` is the spec entry that starts on it (None for continuations)."""

    text: str
    path: Path | None = None


@dataclass
class Attached:
    leading: dict[Path, list[str]] = field(default_factory=dict)
    trailing: dict[Path, list[str]] = field(default_factory=dict)
    end: list[str] = field(default_factory=list)  # after the last entry

    def paths(self) -> set[Path]:
        return set(self.leading) | set(self.trailing)

    def count(self) -> int:
        return sum(map(len, self.leading.values())) + sum(map(len, self.trailing.values())) + len(self.end)


def scan_dsl(text: str) -> list[Comment]:
    """Comments of .jepa text: `#` outside a double-quoted string, to the end of the line."""
    out = []
    for n, line in enumerate(text.split("\n"), 1):  # lark counts "\n" only
        in_str, esc = False, False
        for i, ch in enumerate(line):
            if in_str:
                esc, in_str = (False, in_str) if esc else (ch == "\\", ch != '"')
            elif ch == '"':
                in_str = True
            elif ch == "#":
                out.append(Comment(n, line[i:].rstrip(), not line[:i].strip()))
                break
    return out


def scan_yaml(text: str) -> list[Comment]:
    """Comments of YAML text: `#` at a line start or after a space, outside every scalar token."""
    spans = []
    for tok in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(tok, yaml.ScalarToken):
            spans.append((tok.start_mark.index, tok.end_mark.index))
    spans.sort()
    out, offset, k = [], 0, 0
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        for i, ch in enumerate(line):
            if ch != "#" or (i and not line[i - 1].isspace()):
                continue
            pos = offset + i
            while k < len(spans) and spans[k][1] <= pos:
                k += 1
            if k < len(spans) and spans[k][0] <= pos < spans[k][1]:
                continue
            out.append(Comment(n, line[i:].rstrip(), not line[:i].strip()))
            break
        offset += len(line)
    return out


def _starts(raw: RawSpec) -> dict[int, Path]:
    """Line -> the outermost entry whose key (or list item) starts on it."""
    best: dict[int, tuple[int, int, Path]] = {}
    cands = list(raw.keys.items()) + [(p, loc) for p, loc in raw.values.items() if p and isinstance(p[-1], int)]
    for path, loc in cands:
        if not path or loc.file != raw.file:
            continue
        rank = (len(path), loc.col, path)
        if loc.line not in best or rank[:2] < best[loc.line][:2]:
            best[loc.line] = rank
    return {line: r[2] for line, r in best.items()}


def attach(comments: list[Comment], raw: RawSpec) -> Attached:
    """Give every comment an owner entry (see the module docstring)."""
    starts = _starts(raw)
    lines = sorted(starts)
    out = Attached()
    for c in comments:
        if c.full:
            nxt = next((ln for ln in lines if ln > c.line), None)
            if nxt is None:
                out.end.append(c.text)
            else:
                out.leading.setdefault(starts[nxt], []).append(c.text)
        else:
            here = starts.get(c.line) or next((starts[ln] for ln in reversed(lines) if ln < c.line), None)
            if here is None:
                out.leading.setdefault(starts[lines[0]] if lines else (), []).append(c.text)
            else:
                out.trailing.setdefault(here, []).append(c.text)
    return out


def _resolve(path: Path, order: list[Path], have: set[Path]) -> Path | None:
    """The emitted line for ``path``: itself, its first descendant with a line, or an ancestor's."""
    p = tuple(path)
    while True:
        if p in have:
            return p
        if p:
            for q in order:
                if q[:len(p)] == p:
                    return q
            p = p[:-1]
        else:
            return None


def place(lines: list[Line], att: Attached, width: int | None = None) -> str:
    """Join emitted lines, putting each comment back beside its entry.

    An end-of-line comment that would take its line past ``width`` goes above the line instead.
    """
    order = [ln.path for ln in lines if ln.path is not None]
    have = set(order)
    lead: dict[Path | None, list[str]] = {}
    trail: dict[Path, str] = {}
    for path, texts in att.leading.items():
        lead.setdefault(_resolve(path, order, have), []).extend(texts)
    first_text = {}
    for ln in lines:
        if ln.path is not None:
            first_text.setdefault(ln.path, ln.text)
    for path, texts in att.trailing.items():
        target = _resolve(path, order, have)
        for t in texts:
            fits = width is None or target is None or len(first_text[target]) + 2 + len(t) <= width
            if target is not None and target not in trail and fits:
                trail[target] = t
            else:  # one end-of-line comment per line; the rest go above it
                lead.setdefault(target, []).append(t)
    out = list(lead.pop(None, []))
    seen: set[Path] = set()
    for ln in lines:
        text = ln.text
        if ln.path is not None and ln.path not in seen:
            seen.add(ln.path)
            indent = text[:len(text) - len(text.lstrip())]
            out += [indent + c for c in lead.get(ln.path, [])]
            if ln.path in trail:
                text = f"{text}  {trail[ln.path]}"
        out.append(text)
    out += att.end
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n"
