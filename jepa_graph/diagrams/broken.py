"""A scene for a spec that failed validation: draw what is known, mark what is wrong in red.

Two cases, by how far the checks got:

* the spec inlines (every reference resolves; relations, wiring or shapes failed): the scene is
  the partial graph's, drawn like a good spec (composites expanded, shared modules, EMA
  momentum, R(z) terms), with tensor shapes and parameter counts where shape inference got
  that far. Each diagnostic is placed by its location: an ``in:`` entry names an edge, a block's
  own keys its node, a composite block's keys its cluster;
* otherwise the scene comes from the spec's plain data (its blocks and their ``in:``
  references), and the file's source map (:class:`~jepa_graph.parse_yaml.RawSpec`) says which
  path a ``file:line:col`` belongs to (``blocks.E.in.1`` an edge, ``blocks.E`` a node). An
  edge to a name that does not exist starts at a dashed red ``?`` box.

Errors that name neither (a bad objective term) go in the diagram's caption. An offending edge
keeps its kind's marks (a stop-gradient its bar and ``stop-grad``) under the red.
"""
from __future__ import annotations

from typing import Any


from ..compiler.checks import check_graph
from ..compiler.composite import Inliner
from ..compiler.graph import Graph
from ..compiler.shapes import infer_shapes
from ..core.errors import Diagnostic, Location, SpecError
from . import notation as N
from .programs import partial_param_counts
from .scene import Edge, Item, Scene, from_graph, port, raw_ema_label, regularizer_item

_SECTIONS = (("inputs", "input"), ("latents", "latent"), ("actions", "action"))


def from_spec(spec, diagnostics: list[Diagnostic], search_path: list[str] | None = None,
              params: bool = True) -> Scene:
    """Scene of a spec model that failed :func:`~jepa_graph.model.check` with ``diagnostics``."""
    try:
        g = partial_graph(spec, search_path)
    except SpecError:  # inlining stopped at an error it raises (e.g. a composite file that fails to load)
        g = None
    if g is None:
        raw = spec.source
        data = raw.data if raw is not None else spec.model_dump(by_alias=True, exclude_none=True)
        return from_data(data, diagnostics, raw)
    counts = None
    if params:
        counts = partial_param_counts(g)
    sc = from_graph(g, counts)
    sc.name, sc.errors = f"{spec.name} (invalid)", list(diagnostics)
    _place_on_graph(sc, g, diagnostics)
    return sc


def partial_graph(spec, search_path: list[str] | None = None):
    """The graph as far as the checks got: inlined, relations resolved, shapes where inferable.

    None when inlining fails (an unknown reference: there is no graph) or the graph has a cycle
    (nothing downstream of it can be ordered)."""
    g = Graph(spec)
    errors: list[Diagnostic] = []
    Inliner(g, errors, search_path).add_spec(spec, scope="", dims=dict(spec.dims), bindings=None)
    if errors:
        return None
    check_graph(g, errors)
    if g.cycle() is not None:
        return None
    if not errors:  # the failure is in shape inference: it fills every node it gets to
        try:
            infer_shapes(g)
        except SpecError:
            pass  # these are the diagnostics being drawn (check() raised them already)
    return g


def _place_on_graph(sc: Scene, g, diagnostics: list[Diagnostic]) -> None:
    edges_at: dict[Location, list[Edge]] = {}
    for e in sc.edges:
        for name, i in e.refs:
            r = g.nodes[name].inputs[i]
            if r.loc is not None:
                edges_at.setdefault(r.loc, []).append(e)
    # every written position of a node (its keys and values) and of a composite block, by the
    # (file, top-level path) it is under: ("blocks", "E") is block E, ("inputs", "x") input x
    owners: dict[Location, list[tuple[str, str]]] = {}  # loc -> [("node" | "cluster", name)]
    under: dict[tuple[int, tuple], list[tuple[str, str]]] = {}
    raws: dict[int, Any] = {}
    for n in g.nodes.values():
        owners.setdefault(n.loc, []).append(("node", n.name))
        if n.src is not None and n.path:
            raws[id(n.src)] = n.src
            under.setdefault((id(n.src), tuple(n.path[:2])), []).append(("node", n.name))
    for key, info in g.composites.items():
        if info.get("loc") is not None:
            owners.setdefault(info["loc"], []).append(("cluster", key))
        parent = key.rsplit("/", 1)[0] if "/" in key else ""
        src = next((n.src for n in g.nodes.values() if n.scope == parent and n.src is not None), None)
        if src is not None:
            raws[id(src)] = src
            under.setdefault((id(src), ("blocks", key.rsplit("/", 1)[-1])), []).append(("cluster", key))
    for rid, raw in raws.items():
        for loc, paths in _paths_by_location(raw).items():
            for p in paths:
                owners.setdefault(loc, []).extend(under.get((rid, p[:2]), []))
    for d in diagnostics:
        if d.severity != "error":
            continue
        hits = _named(edges_at.get(d.loc, []) if d.loc else [], d.message, lambda e: e.uses)
        if hits:
            for e in hits:
                e.error = d.message if not e.error else e.error + "\n" + d.message
            continue
        targets = _named(list(dict.fromkeys(owners.get(d.loc, []))) if d.loc else [], d.message,
                         lambda t: (t[1],))
        if not targets:
            sc.caption.append(f"{d.loc}: {d.message}" if d.loc else d.message)
        for what, name in targets:
            if what == "node" and name in sc.where:
                _mark(sc, sc.where[name][0], d.message)
                continue
            key = name if what == "cluster" else g.nodes[name].scope  # a composite input: its block
            c = sc.clusters.get(key)
            if c is None:
                sc.caption.append(f"{d.loc}: {d.message}")
                continue
            c.error = d.message if not c.error else c.error + "\n" + d.message


def _named(cands: list, message: str, names) -> list:
    """The candidates the message names in backticks, when several share one location (two
    instances of one composite file); all of them when it names none."""
    if len(cands) < 2:
        return cands
    named = [c for c in cands if any(f"`{x}`" in message for x in names(c))]
    return named or cands


# ------------------------------------------------------------------- from the plain data
def from_data(data: Any, diagnostics: list[Diagnostic], raw=None) -> Scene:
    """Scene of raw spec data (a dict as written in YAML); ``raw`` holds positions, if known."""
    data = data if isinstance(data, dict) else {}
    name = data.get("name") if isinstance(data.get("name"), str) else "spec"
    sc = Scene(f"{name} (invalid)", errors=list(diagnostics))
    dims = data.get("dims") if isinstance(data.get("dims"), dict) else {}
    shapes: dict[str, str] = {}
    for section, kind in _SECTIONS:
        for var, decl in _mapping(data.get(section)).items():
            sc.items[var] = Item(var, kind, var, uses=[var])
            sc.where[var] = (var, None)
            shapes[var] = _shape(decl.get("shape"), dims)
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
            edges[(b, i)] = Edge(src, dst, "stop_grad" if stop else "data", sport, dport,
                                 shapes.get(str(ref), ""), uses=(head, b))
        ema = blk.get("ema_of")
        if isinstance(ema, str) and ema in sc.where:
            edges[(b, -1)] = Edge(sc.where[ema][0], sc.where[b][0], "ema", label=raw_ema_label(blk.get("with")),
                                  uses=(ema, b))
    sc.edges = list(edges.values())
    _raw_regularizers(sc, data, shapes)
    _place(sc, diagnostics, edges, blocks, raw)
    return sc


def _shape(shape: Any, dims: dict) -> str:
    """``[B, 2]`` for a declared per-sample shape whose sizes are known, else ``""``."""
    if not isinstance(shape, list):
        return ""
    sizes = [d if isinstance(d, int) and not isinstance(d, bool) else dims.get(d) for d in shape]
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
        return ""
    return "[" + ", ".join(["B"] + [str(s) for s in sizes]) + "]"


def _raw_regularizers(sc: Scene, data: dict, shapes: dict[str, str]) -> None:
    """R(z) items of the latents as written: every declared capacity term, weighted as listed."""
    objective = data.get("objective") if isinstance(data.get("objective"), dict) else {}
    for z, decl in _mapping(data.get("latents")).items():
        regs = decl.get("regularizer") if isinstance(decl.get("regularizer"), dict) else {}
        for reg, coef in regs.items():
            if reg == "none":
                continue
            w = objective.get(f"{z}.{reg}")
            it = regularizer_item(z, str(reg), coef, w if isinstance(w, (int, float)) or w is None else 1.0)
            sc.items[it.id] = it
            sc.where[it.id] = (it.id, None)
            sc.edges.append(Edge(z, it.id, shape=shapes.get(z, ""), uses=(z, it.id)))


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
                e.error = msg if not e.error else e.error + "\n" + msg
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
