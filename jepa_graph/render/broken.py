"""A scene for a spec that failed validation: draw what the file says, mark what is wrong in red.

The checked graph does not exist for a bad spec, so the scene comes from the spec's plain data
(its blocks and their ``in:`` references). Each diagnostic is placed by its location: the
source map of the file (:class:`~jepa_graph.parse_yaml.RawSpec`) says which path a
``file:line:col`` belongs to, and the path names the edge (``blocks.E.in.1``) or node
(``blocks.E``) at fault. An edge to a name that does not exist starts at a dashed red ``?`` box.
Errors that name neither (a bad objective term) go in the diagram's caption.
"""
from __future__ import annotations

from typing import Any

from ..errors import Diagnostic, Location
from . import notation as N
from .scene import Edge, Item, Scene, port

_SECTIONS = (("inputs", "input"), ("latents", "latent"), ("actions", "action"))


def from_data(data: Any, diagnostics: list[Diagnostic], raw=None) -> Scene:
    """Scene of raw spec data (a dict as written in YAML); ``raw`` holds positions, if known."""
    data = data if isinstance(data, dict) else {}
    name = data.get("name") if isinstance(data.get("name"), str) else "spec"
    sc = Scene(f"{name} (invalid)", errors=list(diagnostics))
    for section, kind in _SECTIONS:
        for var in _mapping(data.get(section)):
            sc.items[var] = Item(var, kind, var, uses=[var])
            sc.where[var] = (var, None)
    blocks = _mapping(data.get("blocks"))
    owners: dict[str, list[str]] = {}
    for b, blk in blocks.items():
        share = blk.get("share") if isinstance(blk.get("share"), str) else None
        owner = share if share in blocks and share != b and not isinstance(blocks[share].get("share"), str) else b
        owners.setdefault(owner, []).append(b)
    for owner, uses in owners.items():
        blk = blocks[owner]
        kind = blk.get("kind") if blk.get("kind") in N.GLYPHS and blk.get("kind") not in N.VAR_KINDS else "unknown"
        detail = str(blk.get("type") or "")
        ema = blk.get("ema_of") if isinstance(blk.get("ema_of"), str) else None
        if ema:
            detail = f"EMA of {ema}" + (f" \u00b7 {detail}" if detail else "")
        sc.items[owner] = Item(owner, kind, owner, detail, list(uses), ema=bool(ema))
        for i, u in enumerate(uses):
            sc.where[u] = (owner, port(i) if len(uses) > 1 else None)

    edges: dict[tuple[str, int], Edge] = {}
    for b, blk in blocks.items():
        ins = blk.get("in") if isinstance(blk.get("in"), list) else []
        for i, e in enumerate(ins):
            ref, stop = (e, False) if isinstance(e, str) else (
                (e.get("ref"), bool(e.get("stop_grad"))) if isinstance(e, dict) else (None, False))
            head = str(ref).split(".", 1)[0] if ref is not None else "?"
            if head not in sc.where:
                ghost = f"missing__{head}"
                sc.items.setdefault(ghost, Item(ghost, "missing", f"? {head}", uses=[ghost]))
                sc.where.setdefault(ghost, (ghost, None))
                src, sport = ghost, None
            else:
                src, sport = sc.where[head]
            dst, dport = sc.where[b]
            edges[(b, i)] = Edge(src, dst, "stop_grad" if stop else "data", sport, dport, uses=(head, b))
        ema = blk.get("ema_of")
        if isinstance(ema, str) and ema in sc.where:
            edges[(b, -1)] = Edge(sc.where[ema][0], sc.where[b][0], "ema", label="EMA", uses=(ema, b))
    sc.edges = list(edges.values())
    _place(sc, diagnostics, edges, blocks, raw)
    return sc


def _mapping(v: Any) -> dict[str, Any]:
    """A section as {name: dict}; anything malformed is skipped (its error is reported anyway)."""
    if not isinstance(v, dict):
        return {}
    return {str(k): (x if isinstance(x, dict) else {}) for k, x in v.items()}


def _place(sc: Scene, diagnostics: list[Diagnostic], edges: dict[tuple[str, int], Edge], blocks, raw) -> None:
    paths = _paths_by_location(raw)
    for d in diagnostics:
        if d.severity != "error":
            continue
        msg = d.message
        path = _path_of(d.loc, paths)
        if path is None and d.loc is not None and raw is not None and d.loc.file != raw.file:
            path = _composite_using(d.loc.file, blocks)  # an error inside a composite's own file
        if path and path[0] == "blocks" and len(path) >= 2 and path[1] in blocks:
            b = str(path[1])
            if len(path) >= 4 and path[2] == "in" and isinstance(path[3], int) and (b, path[3]) in edges:
                e = edges[(b, path[3])]
                e.kind, e.label = "error", msg if not e.label else e.label + "\n" + msg
                continue
            _mark(sc, sc.where[b][0], msg)
            continue
        if path and path[0] in ("inputs", "latents", "actions") and len(path) >= 2 and str(path[1]) in sc.where:
            _mark(sc, str(path[1]), msg)
            continue
        where = f"{d.loc}: " if d.loc else ""
        sc.caption.append(f"{where}{msg}")


def _mark(sc: Scene, item: str, msg: str) -> None:
    it = sc.items[item]
    it.error = msg if not it.error else it.error + "\n" + msg


def _paths_by_location(raw) -> dict[Location, list[tuple]]:
    out: dict[Location, list[tuple]] = {}
    if raw is None:
        return out
    for table in (raw.values, raw.keys):
        for path, loc in table.items():
            out.setdefault(loc, []).append(tuple(path))
    return out


def _path_of(loc: Location | None, paths: dict[Location, list[tuple]]) -> tuple | None:
    """The most specific path written at ``loc`` (a block-style mapping starts at its first key)."""
    if loc is None or loc not in paths:
        return None
    return max(paths[loc], key=len)


def _composite_using(file: str, blocks: dict[str, dict]) -> tuple | None:
    stem = file.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    for b, blk in blocks.items():
        if blk.get("kind") == "composite" and blk.get("type") == stem:
            return ("blocks", b)
    return None
