"""Lossless conversion between YAML and ``.jepa``, and canonical formatting (``jepa-graph fmt``).

    format_spec("specs/two_rooms.yaml", to="jepa")    # the .jepa version, comments kept
    format_text(text, "spec.jepa")                     # canonical .jepa text of ``text``

Pipeline: parse (either front end) -> :class:`~jepa_graph.frontend.spec.Spec` -> canonical data ->
emit lines -> put the comments back. Before anything is written the output is parsed again:
it must give an equal spec and hold every comment, otherwise formatting refuses with a
located error instead of losing something.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .comments import attach, place, scan_dsl, scan_yaml
from .emit_yaml import WIDTH, canonical_data, emit_yaml, spec_data
from .emit_jepa import emit_jepa, unwritable
from ..core.errors import Location, SpecError
from ..frontend.spec import Spec
from ..frontend.load import build_spec, parse_file, read_text
from ..frontend.parse_yaml import RawSpec

SYNTAXES = ("yaml", "jepa")


def syntax_of(path: str | Path) -> str:
    return "jepa" if str(path).endswith(".jepa") else "yaml"


def same(a: Any, b: Any) -> bool:
    """Equal plain data, with NaN equal to itself (a spec may hold one as a parameter)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def format_text(text: str, file: str, to: str | None = None) -> str:
    """Canonical text of the spec in ``text`` (read as ``file``'s syntax), written as ``to``.

    Raises :class:`SpecError` for an invalid spec, or when the result would not read back as
    the same spec with the same comments.
    """
    src = syntax_of(file)
    to = to or src
    if to not in SYNTAXES:
        raise SpecError(f"unknown syntax `{to}`", hint="use --to yaml or --to jepa")
    raw = parse_file(file, text)
    spec = build_spec(raw)
    comments = scan_dsl(text) if src == "jepa" else scan_yaml(text)
    attached = attach(comments, raw)
    data = canonical_data(raw.data)
    if to == "jepa":
        bad = unwritable(raw.data)
        if bad:
            raise SpecError(f"cannot write {bad[1]} in .jepa", raw.at(bad[0], key=isinstance(bad[0][-1], str)),
                            "keys in .jepa are names or strings, values are numbers, strings, true/false/null, "
                            "lists and mappings; quote it in the YAML, or keep this spec in YAML")
    lines = emit_jepa(data, attached.paths()) if to == "jepa" else emit_yaml(data)
    out = place(lines, attached, WIDTH)
    _verify(spec, out, file, to, len(comments))
    return out


def _verify(spec: Spec, out: str, file: str, to: str, n_comments: int) -> None:
    name = f"{file} (as {to}).{'jepa' if to == 'jepa' else 'yaml'}"
    where = Location(file, 1, 1)
    try:
        again = build_spec(parse_file(name, out))
    except SpecError as e:
        raise SpecError(f"cannot write this spec as {to}: the result does not parse ({e.first.message})", where,
                        "please report this; the file was left unchanged") from None
    if not same(again.model_dump(by_alias=True), spec.model_dump(by_alias=True)):
        raise SpecError(f"cannot write this spec as {to} without changing it", where,
                        "a name may clash with a .jepa keyword (e.g. a block called `inf` in the objective); "
                        "the file was left unchanged")
    found = len(scan_dsl(out) if to == "jepa" else scan_yaml(out))
    if found != n_comments:
        raise SpecError(f"formatting as {to} would keep {found} of {n_comments} comments", where,
                        "the file was left unchanged; move the comment onto its own line")


def format_spec(spec: Spec | str | Path, to: str = "yaml") -> str:
    """A spec (a loaded :class:`Spec` or a path) as canonical ``to`` text ("yaml" or "jepa").

    Example::

        print(jg.format_spec("specs/seed_world_model.yaml", to="jepa"))
    """
    if isinstance(spec, Spec):
        raw = spec.source
        if raw is not None and raw.text:
            return format_text(raw.text, raw.file, to)
        data = canonical_data(spec_data(spec))
        return place(emit_jepa(data) if to == "jepa" else emit_yaml(data), attach([], _empty()))
    return format_text(read_text(spec), str(spec), to)


def _empty():
    return RawSpec(data={}, file="<python>")
