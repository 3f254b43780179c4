"""``jepa-graph plot RUN``: a run's loss terms and collapse monitors over steps, as one PNG."""
from __future__ import annotations

from .common import out

HELP = "draw a run's loss terms and collapse monitors to PNG"


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="run folder (or its metrics.jsonl)")
    p.add_argument("-o", "--output", default=None, help="PNG to write (default: RUN/metrics.png)")


def run(args) -> int:
    from ..training.plot import plot_run  # matplotlib, and torch through training's metrics
    path = plot_run(args.run, args.output)
    out(f"wrote {path}")
    return 0
