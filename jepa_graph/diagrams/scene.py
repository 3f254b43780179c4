"""What a diagram shows, before any graphviz: items (drawn nodes), edges and clusters.

A :class:`Scene` is built from a checked :class:`~jepa_graph.graph.Graph` here, or from a spec
that failed validation in :mod:`.broken`; :mod:`.layout` turns either into graphviz. Keeping
this step separate is what lets a broken spec draw with the same notation as a good one.

Rules applied here, from the graph:

* composite ports are pass-throughs, so they are elided: an edge from outside a composite goes
  straight to the block inside that consumes the port (stop-gradients on either leg survive);
* blocks that apply the same weights (``share:``) become one item with one cell per use;
* EMA targets get a dashed edge from their source, labelled with the momentum range;
* a shared module sits in the innermost cluster holding all its uses (top level when a use is
  outside the composite that owns the weights), so a use outside never looks like a member;
* every latent capacity term R(z) (an objective term ``z.l1``, or a declared one that energy
  minimisation adds) is a regulariser item fed by its latent;
* composite instances become clusters (nested by scope), and the nodes of each hierarchy level
  (``levels:``) a level cluster.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..compiler.graph import SCALAR_KINDS, Graph, Node
from ..frontend.spec import EmaParams


@dataclass
class Item:
    """One drawn node. ``uses`` lists the graph nodes drawn by it (several for a shared module)."""

    id: str
    kind: str  # a key of notation.GLYPHS
    title: str
    detail: str = ""  # second label line: block type, parameter count
    uses: list[str] = field(default_factory=list)
    cluster: tuple[str, ...] = ()  # keys of the clusters it sits in, outermost first
    ema: bool = False
    params: int | None = None
    error: str | None = None
    tag: str | None = None  # replaces the glyph's tag ("R(z)" for a latent's regulariser)


@dataclass
class Edge:
    src: str
    dst: str
    kind: str = "data"  # data | stop_grad | ema | amortize (notation.STROKES)
    src_port: str | None = None
    dst_port: str | None = None
    shape: str = ""  # tensor type flowing along the edge, "[B, 32]"
    label: str = ""  # EMA momentum
    uses: tuple[str, str] = ("", "")  # graph nodes at both ends (program highlighting)
    error: str = ""  # the message of a spec that failed validation: drawn red, over the kind's marks
    refs: tuple[tuple[str, int], ...] = ()  # (graph node, input index) of each `in:` entry drawn by the edge


@dataclass
class Cluster:
    key: str
    label: str
    kind: str  # composite | level
    members: list[str] = field(default_factory=list)  # graph nodes inside (composites)
    blocks: int = 0  # blocks written inside (a shared one counts once, wherever it is drawn)
    params: int | None = None  # parameters of the modules owned inside
    outputs: dict[str, str] = field(default_factory=dict)  # exported name -> graph node (`low.pred`)
    error: str | None = None


@dataclass
class Scene:
    name: str
    items: dict[str, Item] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    where: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # graph node -> (item, port)
    errors: list[Any] = field(default_factory=list)  # Diagnostics (broken specs)
    caption: list[str] = field(default_factory=list)  # errors that name no node or edge


def port(i: int) -> str:
    return f"u{i}"


def from_graph(g: Graph, params: dict[str, int] | None = None) -> Scene:
    """Scene of a checked graph (or of a partial one, :mod:`.broken`); ``params`` maps module
    name -> parameter count."""
    sc = Scene(g.spec.name)
    for key, info in sorted(g.composites.items()):
        sc.clusters[key] = Cluster(key, f"{key.rsplit('/', 1)[-1]} : {info['type']}", "composite",
                                   outputs=dict(info.get("outputs", {})))
    levels = _levels(g)
    for i, lv in enumerate(g.levels):
        sc.clusters[f"level:{i}"] = Cluster(f"level:{i}", f"level {i}: {lv.name} (stride {lv.stride})", "level")

    groups: dict[str, list[Node]] = {}
    for n in g.nodes.values():
        if n.op == "call":
            groups.setdefault(n.module, []).append(n)
    for uses in groups.values():  # the block that owns the weights first (cell u0), then its shares
        uses.sort(key=lambda u: bool(u.share_of))
    for n in g.nodes.values():
        if n.op == "port":
            continue
        if n.is_var:
            sc.items[n.name] = Item(n.name, n.op, n.name, str(n.ttype) if n.ttype else "", [n.name],
                                    _cluster(g, n, levels))
            sc.where[n.name] = (n.name, None)
            continue
        uses = groups[n.module]
        owner = uses[0]
        if owner.name not in sc.items:
            where = _common([_cluster(g, u, levels) for u in uses])
            sc.items[owner.name] = _call_item(g, owner, uses, params, where)
        sc.where[n.name] = (owner.name, port(uses.index(n)) if len(uses) > 1 else None)

    for n in g.nodes.values():
        if n.op != "call":
            continue
        for i, r in enumerate(n.inputs):
            src, stop, through = _source(g, r.src, r.stop_grad)
            if src not in sc.where:
                continue  # an unbound composite input (a spec with errors): nothing to draw from
            s_item, s_port = sc.where[src]
            d_item, d_port = sc.where[n.name]
            t = g.nodes[src].ttype
            sc.edges.append(Edge(s_item, d_item, "stop_grad" if stop else "data", s_port, d_port,
                                 str(t) if t is not None else "", uses=(src, n.name),
                                 refs=((n.name, i),) + through))
        if n.ema_of and n.ema_of in sc.where:
            s_item, _ = sc.where[n.ema_of]
            label = ema_label(n.ema) if n.ema is not None else raw_ema_label(n.raw_params)
            sc.edges.append(Edge(s_item, sc.where[n.name][0], "ema", label=label, uses=(n.ema_of, n.name)))
    for n in g.nodes.values():  # amortised inference: a block predicts where minimisation over z starts
        enc = getattr(n.decl, "encoder", None) if n.op == "latent" else None
        if enc in g.nodes:
            sc.edges.append(Edge(sc.where[enc][0], n.name, "amortize", sc.where[enc][1], label="amortised z₀",
                                 uses=(enc, n.name)))
    _latent_regularizers(g, sc, levels)
    for key, c in sc.clusters.items():
        c.members = [n.name for n in g.nodes.values() if n.scope == key or n.scope.startswith(key + "/")]
        calls = [g.nodes[m] for m in c.members if g.nodes[m].op == "call"]
        c.blocks = len(calls)
        owned = {n.module for n in calls if not n.share_of}  # weights owned inside, each module once
        counted = [params[m] for m in owned if m in params] if params is not None else []
        c.params = sum(counted) if counted else None
    return sc


def ema_label(ema: Any) -> str:
    """``EMA m=0.99→1`` from an EMA target's momentum range and schedule (checks.EmaParams)."""
    lo, hi = ema.range()
    m = f"{lo:g}" if lo == hi else f"{lo:g}\u2192{hi:g}"
    sched = "" if lo == hi or ema.schedule == "linear" else f" {ema.schedule}"
    return f"EMA m={m}{sched}"


def raw_ema_label(params: Any) -> str:
    """The EMA label from an EMA target's ``with:`` as written, for a spec with errors: its
    momentum and schedule when those validate (another key may be the error), else ``EMA``."""
    known = {k: v for k, v in params.items() if k in EmaParams.model_fields} if isinstance(params, dict) else {}
    try:
        return ema_label(EmaParams.model_validate(known))
    except ValueError:  # pydantic's ValidationError: that error is among the diagnostics drawn
        return "EMA"


def regularizer_item(latent: str, reg: str, coef: Any, weight: float | None, cluster=()) -> Item:
    """The R(z) item of latent ``latent``'s capacity term ``reg`` (id and title: ``z.l1``, as in
    the objective); ``weight`` is its objective weight, None when only minimisation adds it."""
    detail = f"{reg} {coef:g}" if isinstance(coef, (int, float)) else reg
    if weight is None:
        detail += " \u00b7 inference only"
    elif weight != 1.0:
        detail += f" \u00b7 obj \u00d7{weight:g}"
    key = f"{latent}.{reg}"
    return Item(key, "regularizer", key, detail, [key], cluster, tag=f"R({latent})")


def _latent_regularizers(g: Graph, sc: Scene, levels: dict[str, int]) -> None:
    """One R(z) item per declared capacity term of each latent, with an edge from the latent.

    Read from the spec's objective (not ``g.objective``), so a spec whose later checks failed
    still shows them. A declared term the objective leaves out is the one energy minimisation
    adds on its own (``latents.LatentSpace.extra_regs``)."""
    objective = g.spec.objective or {}
    for n in g.nodes.values():
        if n.op != "latent" or n.scope:
            continue
        for reg, coef in n.decl.regularizer.items():
            if reg == "none":
                continue
            it = regularizer_item(n.name, reg, coef, objective.get(f"{n.name}.{reg}"), _cluster(g, n, levels))
            sc.items[it.id] = it
            sc.where[it.id] = (it.id, None)
            sc.edges.append(Edge(n.name, it.id, shape=str(n.ttype) if n.ttype else "", uses=(n.name, it.id)))


def _common(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The longest cluster path all ``paths`` start with: the innermost cluster holding them all."""
    out = paths[0]
    for p in paths[1:]:
        k = 0
        while k < min(len(out), len(p)) and out[k] == p[k]:
            k += 1
        out = out[:k]
    return out


def _source(g: Graph, name: str, stop: bool) -> tuple[str, bool, tuple[tuple[str, int], ...]]:
    """Follow ports back to the node that computes the value; a stop-gradient anywhere sticks.

    Also returns the ports passed, as ``(port, 0)`` refs: the composite's ``in:`` entries."""
    n = g.nodes[name]
    through: tuple[tuple[str, int], ...] = ()
    while n.op == "port" and n.inputs:
        stop = stop or n.inputs[0].stop_grad
        through += ((n.name, 0),)
        n = g.nodes[n.inputs[0].src]
    return n.name, stop, through


def _call_item(g: Graph, owner: Node, uses: list[Node], params: dict[str, int] | None, cluster) -> Item:
    kind = owner.kind if owner.kind in ("encoder", "predictor", "actor", "op", "energy", "regularizer",
                                        "cost", "critic") else "unknown"
    detail = owner.type or ""
    unroll = getattr(owner.decl, "unroll", None)  # the world model's step over sequences (compiler/sequence.py)
    if unroll:
        mode = getattr(owner.params, "mode", "unrolled")
        detail = f"unrolls {unroll}" + (f" \u00d7{owner.ttype.shape[0]}" if owner.ttype else "") + \
            (" \u00b7 teacher-forced" if mode == "teacher" else "")
    if getattr(owner.decl, "each_step", False):
        detail += " \u00b7 each step"
    if owner.ema_of:
        detail = f"EMA of {g.nodes[owner.ema_of].name.rsplit('/', 1)[-1]} \u00b7 {detail}"
    if owner.frozen:
        detail += " \u00b7 frozen"
    # weights of the objective and planning-cost terms, where they are not 1
    for what, terms in (("obj", g.objective), ("cost", g.costs)):
        w = next((t.weight for t in terms if t.node == owner.name and not t.latent_reg), None)
        if w is not None and w != 1.0:
            detail += f" \u00b7 {what} \u00d7{w:g}"
    p = params.get(owner.module) if params is not None else None
    title = owner.name.rsplit("/", 1)[-1]
    return Item(owner.name, kind, title, detail, [u.name for u in uses], cluster, ema=bool(owner.ema_of), params=p)


def _cluster(g: Graph, n: Node, levels: dict[str, int]) -> tuple[str, ...]:
    """Cluster path of a node: its level (if any), then each enclosing composite instance."""
    parts = n.scope.split("/") if n.scope else []
    comps = tuple("/".join(parts[:i + 1]) for i in range(len(parts)))
    top = parts[0] if parts else n.name
    lv = levels.get(top)
    return ((f"level:{lv}",) if lv is not None else ()) + comps


def _levels(g: Graph) -> dict[str, int]:
    """Level index of top-level names (blocks, latents, actions, composite instances).

    Level k holds what its encoder and predictor are computed from, less what lower levels
    claimed (observed inputs stay outside: they are the data). Then: a block follows its EMA or
    share source; an energy or cost joins the highest level it reads (its prediction); any other
    block joins the lowest level that reads it (a level-k target encoder), else the highest it reads.
    """
    if not g.levels:
        return {}
    top = lambda name: name.split("/", 1)[0]  # noqa: E731 - composite members count as their instance
    out: dict[str, int] = {}
    for k, lv in enumerate(g.levels):
        core = g.ancestors([lv.encoder, lv.predictor, *lv.steps])
        for name in core:
            if g.nodes[name].op != "input" and top(name) not in out:
                out[top(name)] = k
    order = [n for n in g.topo() if n.op != "input"]

    def reads(n: Node) -> list[int]:
        return [out[top(r.src)] for r in n.inputs if top(r.src) in out and top(r.src) != top(n.name)]

    for n in order:
        rel = n.ema_of or n.share_of
        if top(n.name) not in out and rel and top(rel) in out:
            out[top(n.name)] = out[top(rel)]
        elif top(n.name) not in out and n.kind in SCALAR_KINDS and reads(n):
            out[top(n.name)] = max(reads(n))
    for n in reversed(order):
        ks = [out[top(c)] for c in g.consumers(n.name) if top(c) in out and top(c) != top(n.name)]
        if top(n.name) not in out and ks:
            out[top(n.name)] = min(ks)
    for n in order:
        if top(n.name) not in out and reads(n):
            out[top(n.name)] = max(reads(n))
    return out
