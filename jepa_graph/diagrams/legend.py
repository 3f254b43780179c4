"""The notation as a diagram: every glyph and edge kind once (the gallery's ``legend.svg``, and
the key that ``render(..., legend=True)`` / ``--legend`` adds beside a diagram)."""
from __future__ import annotations

import graphviz

from . import notation as N
from .layout import Options, to_dot
from .scene import Edge, Item, Scene

_ORDER = ("input", "latent", "action", "encoder", "predictor", "actor", "op", "energy", "regularizer",
          "cost", "critic", "composite")
_EDGES = (("input", "encoder", "data", "[B, 16]"), ("encoder", "predictor", "data", "[B, 32]"),
          ("latent", "predictor", "data", "[B, 2]"), ("action", "predictor", "data", "[B, 4]"),
          ("predictor", "energy", "data", "[B, 32]"), ("ema_target", "energy", "stop_grad", "[B, 32]"),
          ("encoder", "ema_target", "ema", "EMA m=0.996\u21921"), ("encoder", "latent", "amortize", "amortised z\u2080"),
          ("encoder", "actor", "data", "[B, 32]"), ("predictor", "cost", "data", "[B, 32]"),
          ("predictor", "critic", "data", "[B, 32]"), ("encoder", "regularizer", "data", "[B, 32]"),
          ("encoder", "op", "data", "[B, 32]"), ("op", "composite", "data", "[B, 64]"))


def legend_scene(prefix: str = "") -> Scene:
    """One item per glyph (an EMA target too) and one edge per stroke; ids start with ``prefix``."""
    sc = Scene("notation")
    for k in _ORDER:
        g = N.GLYPHS[k]
        sc.items[prefix + k] = Item(prefix + k, k, k, g.meaning.split(" (")[0] if g.tag else "", [prefix + k])
    sc.items[prefix + "ema_target"] = Item(prefix + "ema_target", "encoder", "target", "EMA of encoder",
                                           [prefix + "ema_target"], ema=True)
    for src, dst, kind, text in _EDGES:
        shape, label = (text, "") if kind in ("data", "stop_grad") else ("", text)
        sc.edges.append(Edge(prefix + src, prefix + dst, kind, shape=shape, label=label))
    return sc


def legend_graph(rankdir: str = "LR") -> graphviz.Digraph:
    """The legend as a cluster to place beside a diagram (node ids prefixed ``legend__``)."""
    g = to_dot(legend_scene("legend__"), Options(rankdir=rankdir))
    g.name = "cluster_legend"
    g.graph_attr.update(style="rounded", color="#bbbbbb", fontsize="11")
    return g
