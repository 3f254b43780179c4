"""Scene -> graphviz: notation per kind, clusters, collapsing, shapes on edges, highlighting.

The output is DOT source (deterministic: items and edges in spec order), which ``dot`` lays out.
Everything visual is looked up in :mod:`.notation`; this module only decides what is visible
(collapsed composites) and how it is emphasised (``--highlight``, ``--program``).
"""
from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass, field, replace

import graphviz

from . import notation as N
from .scene import Edge, Item, Scene

RANKDIRS = ("LR", "TB", "BT", "RL")


@dataclass(frozen=True)
class Options:
    """Drawing options (all toggles of ``jepa-graph render``)."""

    shapes: bool = True  # tensor shapes on edges
    params: bool = True  # parameter counts on blocks
    rankdir: str = "LR"  # LR (left to right) or TB (top to bottom); BT is the paper's upward flow
    depth: int | None = None  # composite nesting shown expanded; deeper ones collapse (0: all collapsed)
    highlight: tuple[str, ...] = ()  # blocks or composite instances to outline
    program: str | None = None  # colour the sub-graph this program uses
    legend: bool = False  # add the notation key beside the diagram


@dataclass
class Emphasis:
    """Graph nodes to outline (``marked``), a program's nodes (``used``) and the ones it is given."""

    marked: set[str] = field(default_factory=set)
    used: set[str] | None = None
    given: set[str] = field(default_factory=set)
    note: str = ""


def to_dot(sc: Scene, opts: Options, emph: Emphasis | None = None) -> graphviz.Digraph:
    emph = emph or Emphasis()
    items, edges = _collapse(sc, opts.depth)
    dot = graphviz.Digraph(sc.name, graph_attr={
        "rankdir": opts.rankdir, "fontname": N.FONT, "fontsize": "12", "labelloc": "t", "nodesep": "0.3",
        "ranksep": "0.45", "newrank": "true", "label": _graph_label(sc, emph)},
        node_attr={"fontname": N.FONT, "fontsize": "11", "margin": "0.06,0.03"},
        edge_attr={"fontname": N.FONT, "fontsize": "9", "fontcolor": "#555555", "arrowsize": "0.7"})
    tree: dict[tuple[str, ...], list[Item]] = {}
    for it in items.values():
        tree.setdefault(it.cluster, []).append(it)
    var_w = f"{N.var_width(it.title for it in items.values() if it.kind in N.VAR_KINDS):g}"
    _emit(dot, (), tree, sc, opts, emph, var_w)
    _stack_levels(dot, items, edges, sc, opts)
    if opts.legend:
        from .legend import legend_graph  # a cycle otherwise: the legend is drawn with this module's to_dot
        dot.subgraph(legend_graph(opts.rankdir))
    for e in edges:
        out_side, in_side = _SIDES[opts.rankdir]
        a = _edge_attrs(e, opts, emph)
        if "label" in a:
            a.update(_label_room(items[e.src].cluster, items[e.dst].cluster))
        dot.edge(_end(e.src, e.src_port, out_side), _end(e.dst, e.dst_port, in_side), **a)
    return dot


# ------------------------------------------------------------------------------- visibility
def _collapse(sc: Scene, depth: int | None) -> tuple[dict[str, Item], list[Edge]]:
    """Replace composites nested deeper than ``depth`` by one 3-D box each; drop inner edges."""
    if depth is None:
        return sc.items, sc.edges
    alias: dict[str, str] = {}
    items: dict[str, Item] = {}
    for it in sc.items.values():
        comps = [k for k in it.cluster if sc.clusters[k].kind == "composite"]
        if len(comps) <= depth:
            items[it.id] = it
            continue
        key = comps[depth]
        alias[it.id] = key
        if key not in items:
            c = sc.clusters[key]
            outer = it.cluster[:it.cluster.index(key)]
            inner = [x for x in sc.items.values() if key in x.cluster]
            # blocks written inside, not uses drawn inside: a shared module used outside counts
            # once here and is drawn where its uses are (scene), with its own edges
            items[key] = Item(key, "composite", c.label, f"{c.blocks} blocks", list(c.members), outer,
                              params=c.params, error=c.error or next((x.error for x in inner if x.error), None))
    out, seen = [], set()
    for e in sc.edges:
        s, d = alias.get(e.src, e.src), alias.get(e.dst, e.dst)
        if s == d and (e.src in alias or e.dst in alias):
            continue  # inside one collapsed composite
        e2 = replace(e, src=s, dst=d, src_port=None if s != e.src else e.src_port,
                     dst_port=None if d != e.dst else e.dst_port)
        key = (e2.src, e2.src_port, e2.dst, e2.dst_port, e2.kind, e2.error)
        if key not in seen:
            seen.add(key)
            out.append(e2)
    return items, out


# ------------------------------------------------------------------------------------ nodes
def _emit(parent: graphviz.Digraph, path: tuple[str, ...], tree, sc: Scene, opts: Options, emph: Emphasis,
          var_w: str) -> None:
    for it in tree.get(path, []):
        parent.node(it.id, **_node_attrs(it, opts, emph, var_w))
    children: list[str] = []
    for p in tree:
        if len(p) > len(path) and p[:len(path)] == path and p[len(path)] not in children:
            children.append(p[len(path)])
    for key in children:
        c = sc.clusters[key]
        with parent.subgraph(name="cluster_" + _safe(key)) as sub:
            pad = N.CLUSTER_LABEL_PAD
            attrs = dict(N.cluster_attrs(c.kind, opts.rankdir), label=pad + c.label + pad, fontname=N.FONT,
                         fontsize="11")
            attrs["class"] = f"cluster {c.kind}"
            if key in emph.marked:
                attrs.update(color=N.HIGHLIGHT_COLOR, penwidth="3")
            if c.error:  # an error located on the composite block itself (its `with:`, say)
                esc = html.escape
                attrs.update(color=N.ERROR_COLOR, penwidth="2.2", tooltip=c.error.replace("\n", " "),
                             label=f'<{esc(c.label)}<br/><font point-size="9" color="{N.ERROR_COLOR}">'
                                   f'{_wrap(c.error, "<br/>", 48, esc)}</font>>')
                attrs["class"] += " error"
            sub.attr(**attrs)
            _emit(sub, path + (key,), tree, sc, opts, emph, var_w)


def _node_attrs(it: Item, opts: Options, emph: Emphasis, var_w: str = f"{N.VAR_MIN_WIDTH:g}") -> dict[str, str]:
    g = N.GLYPHS[it.kind]
    a = g.attrs()
    if it.kind == "encoder":
        a.update(N.encoder_attrs(opts.rankdir))
    if it.kind in N.VAR_KINDS:  # one size for every variable of the diagram (notation.var_width)
        a.update(width=var_w, fixedsize="true")
    if it.ema:
        a["style"] += ",dashed"
    shared = len(it.uses) > 1 and it.kind != "composite"
    # a shared module none of whose uses the program computes fades like any unused block; the
    # cell of a use it is given keeps its dashed blue (the encoder that `step` is handed states of)
    faded = emph.used is not None and not (emph.used | (set() if shared else emph.given)) & set(it.uses)
    a["label"] = _label(it, g, opts, faded, emph)
    classes = ["var" if it.kind in N.VAR_KINDS else "block", it.kind] + (["ema"] if it.ema else [])
    if shared:
        classes.append("shared")
    if emph.used is not None:
        # a shared module: its cells (one per use) carry the colour, since one use may be
        # computed while another is only given (act on lecun_agent); the outline stays plain
        if emph.used & set(it.uses):
            if not shared:
                a.update(color=N.HIGHLIGHT_COLOR, penwidth="2.6")
            classes.append("used")
        elif emph.given & set(it.uses):
            if shared:
                a.update(N.FADED)
                classes.append("faded")
            else:
                a.update(color=N.HIGHLIGHT_COLOR, penwidth="2", style=a["style"] + ",dashed")
            classes.append("given")
        else:
            a.update(N.FADED)
            classes.append("faded")
    if emph.marked & set(it.uses + [it.id]):
        a.update(color=N.HIGHLIGHT_COLOR, penwidth="3.2")
        classes.append("highlight")
    if it.error:
        a.update(color=N.ERROR_COLOR, penwidth="2.6", tooltip=it.error.replace("\n", " "))
        classes.append("error")
    a["class"] = " ".join(classes)
    return a


def _label(it: Item, g: N.Glyph, opts: Options, faded: bool = False, emph: Emphasis | None = None) -> str:
    esc = html.escape
    if it.kind in N.VAR_KINDS or it.kind == "missing":
        return f"<{esc(it.title)}>"
    tag = g.tag if it.tag is None else it.tag
    line = " \u00b7 ".join(esc(b) for b in (tag, it.detail) if b)
    count = f"{N.human(it.params)} params" if opts.params and it.params else ""
    # a long detail ("EMA of context_encoder · vit") puts the count on its own line: narrower boxes
    small = line + ("<br/>" if len(line) > 24 else " \u00b7 ") + count if line and count else line or count
    grey = N.FADED["fontcolor"] if faded else "#444444"
    small_html = f'<font point-size="9" color="{grey}">{small}</font>' if small else ""
    # a thin spacer line: the bold title's descenders (an underscore) clear the second line
    gap = '<br/><font point-size="3"> </font><br/>'
    err = ""
    if it.error:
        err = f'<br/><font point-size="9" color="{N.ERROR_COLOR}">{_wrap(it.error, "<br/>", 36, esc)}</font>'
    if len(it.uses) > 1 and it.kind != "composite":
        # one module, several uses: one cell (port) per use, so edges show which use they feed
        # edges run through the cells, so the title sits beside them (vertical flow) or above them
        cells = [_cell(i, u, emph, esc, faded) for i, u in enumerate(it.uses)]
        title = f'<td border="0"><b>{esc(it.title)}</b> (shared \u00d7{len(cells)})' \
                f'{gap + small_html if small_html else ""}{err}</td>'
        rows = f"<tr>{title}{''.join(cells)}</tr>" if opts.rankdir in ("TB", "BT") \
            else f"<tr>{title}</tr>" + "".join(f"<tr>{c}</tr>" for c in cells)
        return f'<<table border="0" cellborder="1" cellspacing="2" cellpadding="2">{rows}</table>>'
    return f"<<b>{esc(it.title)}</b>{gap + small_html if small_html else ''}{err}>"


def _cell(i: int, use: str, emph: Emphasis | None, esc, faded: bool = False) -> str:
    """The table cell (port ``u<i>``) of one use of a shared module, coloured by ``--program``;
    on a ``faded`` module, a use it is given keeps dark text."""
    text, attrs = esc(use.rsplit("/", 1)[-1]), 'bgcolor="#ffffff"'
    if emph is not None and emph.used is not None:
        if use in emph.used:
            attrs += f' color="{N.HIGHLIGHT_COLOR}" border="3"'
        elif use in emph.given:
            attrs += f' color="{N.HIGHLIGHT_COLOR}" border="2" style="dashed"'
            if faded:
                text = f'<font color="#222222">{text}</font>'
        else:
            attrs += f' color="{N.FADED["color"]}"'
            text = f'<font color="{N.FADED["fontcolor"]}">{text}</font>'
    return f'<td port="u{i}" {attrs}>{text}</td>'


# ------------------------------------------------------------------------------------ edges
def _edge_attrs(e: Edge, opts: Options, emph: Emphasis) -> dict[str, str]:
    a = dict(N.STROKES[e.kind].attrs)
    lines = []
    if e.kind in ("ema", "amortize"):
        lines.append(e.label)
    else:
        if opts.shapes and e.shape:
            lines.append(e.shape)
        if e.kind == "stop_grad":
            lines.append("stop-grad")
    a["class"] = e.kind
    if e.error:  # red over the kind's own marks: a stop-gradient keeps its bar and its text
        a.update(N.STROKES["error"].attrs)
        lines.append(_wrap(e.error, "\\n", 40))
        a["class"] = "error" if e.kind == "data" else f"error {e.kind}"
    if lines:
        a["label"] = "\\n".join(lines)  # DOT's escaped line break: the source stays one line per statement
    if emph.used is not None and not e.error:
        src_ok = e.uses[0] in emph.used or e.uses[0] in emph.given
        if src_ok and e.uses[1] in emph.used and e.kind not in ("ema", "amortize"):
            a.update(color=N.HIGHLIGHT_COLOR, penwidth="2")
            a["class"] += " used"
        else:
            a.update(color="#d0d0d0", fontcolor="#c0c0c0")
            a["class"] += " faded"
    return a


def _label_room(tail: tuple[str, ...], head: tuple[str, ...]) -> dict[str, str]:
    """Extra ranks for a labelled edge that crosses a cluster border.

    ``dot`` keeps an edge's label off nodes, and off clusters the edge does not touch, but not
    off the border of a cluster it enters or leaves (h_jepa's labels sat on them). A rank more
    gives the label room beside the border; between two top-level clusters (two hierarchy
    levels, stacked) the label sits in the gap between them unless it gets two. This is a
    nudge, not a guarantee: top to bottom, an edge running down a cluster's side can still
    have its label over that side (h_jepa expanded, TB: two labels)."""
    if tail == head:
        return {}
    return {"minlen": "3" if tail and head and tail[0] != head[0] else "2"}


def _stack_levels(dot: graphviz.Digraph, items: dict[str, Item], edges: list[Edge], sc: Scene, opts: Options) -> None:
    """Top to bottom (or upward), hierarchy levels stack in rank order: level k+1 after level k.

    Left to right they already stack across ranks; along ranks ``dot`` sets a level beside the
    one below whenever their ranks overlap. An invisible edge from each last node of level k
    (none of its successors is in level k) to each first node of level k+1 puts every node of
    level k+1 on a later rank than every node of level k, so the level clusters stack."""
    if opts.rankdir not in ("TB", "BT"):
        return
    level = {}
    for it in items.values():
        lv = next((k for k in it.cluster if sc.clusters[k].kind == "level"), None)
        if lv is not None:
            level[it.id] = int(lv.split(":", 1)[1])
    inner = [(e.src, e.dst) for e in edges if e.src in level and level[e.src] == level.get(e.dst)]
    has_next, has_prev = {s for s, _ in inner}, {d for _, d in inner}
    ks = sorted(set(level.values()))
    for lo, hi in zip(ks, ks[1:]):
        for a in (i for i, k in level.items() if k == lo and i not in has_next):
            for b in (i for i, k in level.items() if k == hi and i not in has_prev):
                dot.edge(a, b, style="invis", weight="0", **{"class": "level_order"})


def _graph_label(sc: Scene, emph: Emphasis) -> str:
    lines = [f"<b>{html.escape(sc.name)}</b>"]
    if emph.note:
        lines.append(f'<font point-size="10" color="{N.HIGHLIGHT_COLOR}">{html.escape(emph.note)}</font>')
    for msg in sc.caption:
        lines.append(f'<font point-size="10" color="{N.ERROR_COLOR}">{_wrap(msg, "<br/>", 100, html.escape)}</font>')
    return "<" + "<br/>".join(lines) + ">"


def _wrap(text: str, sep: str, width: int, esc=lambda s: s) -> str:
    out = []
    for para in text.splitlines() or [""]:
        out += textwrap.wrap(para, width) or [""]
    return sep.join(esc(x) for x in out)


# a shared module's cell is entered from the input side and left from the output side
_SIDES = {"LR": ("e", "w"), "RL": ("w", "e"), "TB": ("s", "n"), "BT": ("n", "s")}


def _end(item: str, port: str | None, side: str) -> str:
    return f"{item}:{port}:{side}" if port else item


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key)
