"""The diagram notation of LeCun's "A Path Towards Autonomous Machine Intelligence", as data.

One :class:`Glyph` per node kind, one :class:`Stroke` per edge kind, one style per cluster
kind. The layout reads these tables and nothing else decides how a kind looks, so the README's
notation table, the legend and the tests all come from here.

=============== ============================================ =====================================
kind            drawn as                                     why
=============== ============================================ =====================================
input           shaded grey circle                           an observed variable (x, y)
latent          open circle                                  inferred by energy minimisation (z)
action          open double circle, amber                    optimised by planning (a)
encoder         trapezoid narrowing toward the representation  Enc: x -> s_x, loses information
predictor       rounded box, green                           a deterministic function
actor           rounded box, orange                          policy s -> a (Mode-1)
op              small rounded box, grey                      plumbing (concat, pool, mask...)
energy          red box, "E"                                 D(s_y, Pred(s_x, z)): a scalar term
regularizer     light red box with cut corners, "R"          anti-collapse / capacity term
cost            dark red box, "IC"                           intrinsic cost: fixed, not trained
critic          red box with a double outline, "TC"          trainable cost (critic)
composite       3-D box                                      a collapsed composite block
=============== ============================================ =====================================

EMA targets keep their kind's glyph with a dashed outline; a dashed grey edge labelled with the
momentum runs from the source to the target. Stop-gradient edges end in a bar at their tail
(where gradient would have flowed back) and say ``stop-grad``. A module used twice (``share:``)
is one node with one cell per use. A latent's capacity term R(z) (objective term ``z.l1``) is a
regulariser box tagged ``R(z)``, fed by the latent. The offending edge of a spec with errors is
red over its own marks (a stop-gradient keeps its bar and ``stop-grad``).
"""
from __future__ import annotations

from dataclasses import dataclass

FONT = "Helvetica"


@dataclass(frozen=True)
class Glyph:
    """How one node kind is drawn (graphviz node attributes) and what it means."""

    shape: str  # graphviz shape; "encoder" is oriented by the layout direction
    fill: str
    border: str
    tag: str  # short symbol from the paper shown before the name ("" for variables)
    meaning: str
    style: str = "filled"
    peripheries: int = 1
    penwidth: float = 1.2
    margin: str | None = None  # label margin (inches, "x,y") when the default is too tight

    def attrs(self) -> dict[str, str]:
        a = {"shape": self.shape, "style": self.style, "fillcolor": self.fill, "color": self.border,
             "penwidth": f"{self.penwidth:g}"}
        if self.peripheries > 1:
            a["peripheries"] = str(self.peripheries)
        if self.margin:
            a["margin"] = self.margin
        return a


GLYPHS: dict[str, Glyph] = {
    "input": Glyph("circle", "#c8c8c8", "#222222", "", "observed variable (shaded circle)"),
    "latent": Glyph("circle", "#ffffff", "#222222", "", "latent variable (open circle)"),
    "action": Glyph("doublecircle", "#fff4d6", "#8a5a00", "", "action, optimised by planning (double circle)",
                    peripheries=2),
    "encoder": Glyph("trapezium", "#dbe8f7", "#2b5c8a", "Enc", "encoder (trapezoid narrowing toward s)"),
    "predictor": Glyph("box", "#e2f0d9", "#38761d", "Pred", "predictor (rounded box)", style="rounded,filled"),
    "actor": Glyph("box", "#fce5cd", "#b45f06", "A", "actor / policy (rounded box)", style="rounded,filled"),
    "op": Glyph("box", "#f3f3f3", "#777777", "", "deterministic op (small rounded box)", style="rounded,filled",
                penwidth=1.0),
    "energy": Glyph("box", "#f4cccc", "#cc0000", "E", "energy term D (red box)", penwidth=1.6),
    "regularizer": Glyph("box", "#fbe3e3", "#cc0000", "R", "regulariser term (red box, cut corners)",
                         style="filled,diagonals", penwidth=1.6, margin="0.17,0.05"),  # text clears the cut corners
    "cost": Glyph("box", "#ea9999", "#990000", "IC", "intrinsic cost, fixed (dark red box)", penwidth=1.6),
    "critic": Glyph("box", "#f4cccc", "#990000", "TC", "critic, trainable cost (red box, double outline)",
                    peripheries=2, penwidth=1.6),
    "composite": Glyph("box3d", "#eeeeee", "#555555", "", "collapsed composite block (3-D box)"),
    "unknown": Glyph("box", "#ffffff", "#555555", "?", "block of an unknown kind (spec with errors)"),
    "missing": Glyph("box", "#ffffff", "#d00000", "?", "reference to a name that does not exist",
                     style="dashed", penwidth=1.6),
}

VAR_KINDS = ("input", "latent", "action")
VAR_FONTSIZE = 11  # the node font size (layout's node_attr)
VAR_MIN_WIDTH = 0.45  # inches: a one-letter variable's circle

# Helvetica advance widths (1/1000 em, Adobe's AFM) of printable ASCII, from " " to "~"
_HELVETICA = [278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
              556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
              1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
              667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
              333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
              556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584]


def text_width(text: str, size: float) -> float:
    """Width in points of ``text`` set in Helvetica at ``size`` (other characters count as wide)."""
    return size * sum(_HELVETICA[ord(c) - 32] if 32 <= ord(c) < 127 else 1000 for c in text) / 1000


def var_width(titles) -> float:
    """Diameter (inches) of every variable circle in a diagram: one size, fitting the longest title.

    ``dot`` sizes a circle to its label (``x`` small, ``x_next`` large), so the circles would read
    as different things; they are drawn ``fixedsize`` at this width instead: the widest title's
    text box and margins (Helvetica metrics) and 30% more, so the box's corners stay inside
    the circle, with room for a somewhat wider fallback font."""
    widest = max((text_width(t, VAR_FONTSIZE) for t in titles), default=0.0)
    return round(max(VAR_MIN_WIDTH, 1.3 * (widest + 2 * 0.06 * 72) / 72), 2)


def encoder_attrs(rankdir: str) -> dict[str, str]:
    """The trapezoid's wide side faces the observation, its narrow side the representation."""
    return {"LR": {"shape": "trapezium", "orientation": "270"},
            "RL": {"shape": "trapezium", "orientation": "90"},
            "TB": {"shape": "invtrapezium"},
            "BT": {"shape": "trapezium"}}[rankdir]


@dataclass(frozen=True)
class Stroke:
    """How one edge kind is drawn."""

    attrs: tuple[tuple[str, str], ...]
    meaning: str


STROKES: dict[str, Stroke] = {
    "data": Stroke((("color", "#333333"), ("arrowhead", "normal")), "a tensor flowing forward"),
    "stop_grad": Stroke((("color", "#333333"), ("dir", "both"), ("arrowtail", "tee"), ("arrowhead", "normal")),
                        "stop-gradient: a bar where the gradient is cut, labelled `stop-grad`"),
    "ema": Stroke((("color", "#7f7f7f"), ("style", "dashed"), ("arrowhead", "empty")),
                  "EMA: target follows source by momentum (dashed, labelled with m)"),
    "amortize": Stroke((("color", "#6a3d9a"), ("style", "dotted"), ("arrowhead", "open")),
                       "amortised inference: a block predicts the latent's starting value (dotted)"),
    "error": Stroke((("color", "#d00000"), ("fontcolor", "#d00000"), ("penwidth", "2.2")),
                    "the offending edge of a spec that failed validation, with the error"),
}

CLUSTERS: dict[str, dict[str, str]] = {
    "composite": {"style": "rounded,dashed", "color": "#666666", "bgcolor": "#fafafa", "fontcolor": "#333333"},
    "level": {"style": "rounded", "color": "#6a3d9a", "bgcolor": "#f6f1fb", "fontcolor": "#6a3d9a", "penwidth": "1.5"},
}
CLUSTER_LABEL_PAD = "  "  # each side of a cluster's label: off the rounded corners where it sets the width


def cluster_attrs(kind: str, rankdir: str) -> dict[str, str]:
    """A cluster kind's style, with its label on the side fewer edges cross.

    ``dot`` routes edges across cluster labels. Edges come into a level (from the inputs, from
    the level below) over its top, so its label goes at the bottom (h_jepa --depth 0), in every
    direction. A composite's inputs enter over its top when the flow is vertical (several of
    them; its output leaves over the bottom, usually once), so there its label goes at the bottom
    too; left to right they enter at its side and the label stays on top. Each cluster says its
    own, as a cluster inherits the one it sits in."""
    a = dict(CLUSTERS[kind])
    a["labelloc"] = "b" if kind == "level" or rankdir in ("TB", "BT") else "t"
    return a

ERROR_COLOR = "#d00000"
HIGHLIGHT_COLOR = "#1f6fd1"  # --highlight and --program outlines and edges
FADED = {"fillcolor": "#f7f7f7", "color": "#d0d0d0", "fontcolor": "#b0b0b0"}


def human(n: int) -> str:
    """Parameter count for a label: 950, 3.4k, 1.2M."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return f"{n / 1_000_000:.1f}M".replace(".0M", "M")


def table() -> list[tuple[str, str, str]]:
    """(kind, graphviz shape/style, meaning) rows: the notation as documentation."""
    rows = [(k, f"{g.shape}, {g.style}, fill {g.fill}" + (f", {g.peripheries} outlines" if g.peripheries > 1 else ""),
             g.meaning) for k, g in GLYPHS.items()]
    rows += [(f"edge:{k}", ", ".join(f"{a}={v}" for a, v in s.attrs), s.meaning) for k, s in STROKES.items()]
    return rows
